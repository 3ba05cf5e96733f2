"""Timing and memory measurements for the inference lessons: ratios measured in one run, never absolute asserts.

Introduced in 13_decoding_kv_cache.ipynb.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def synchronize(device: str) -> None:
    """Wait for queued GPU work, so that a timer measures it (a no-op on CPU)."""
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], device: str = "cpu", repeats: int = 2) -> tuple[float, int | None]:
    """Run ``fn`` ``repeats`` times: the fastest wall time in seconds, and on CUDA the peak bytes allocated during
    the runs (``None`` on CPU, where PyTorch keeps no allocator statistics)."""
    best = float("inf")
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best, (torch.cuda.max_memory_allocated() if device == "cuda" else None)


def timed_in_turns(fns: dict[str, Callable[[], object]], device: str = "cpu", repeats: int = 3) -> dict[str, float]:
    """The fastest wall time in seconds of each of ``fns`` (name → function), timed in turns: ``repeats`` rounds, each
    running every function once. A machine that gets busier or quieter during the measurement then slows or speeds
    every function alike, so the ratios between them hold where one-after-the-other timings would not.
    Introduced in 14_quantization.ipynb."""
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            best[name] = min(best[name], timed(fn, device, 1)[0])
    return best


class AcceptanceCounter:
    """Count the tokens speculative decoding drafts and the target accepts, read from ``transformers``' own candidate
    generators (``generate`` does not return them): inside ``with AcceptanceCounter() as counts:`` every
    ``get_candidates`` call adds its proposed tokens and every ``update_candidate_strategy`` call its ``num_matches``.
    ``counts.rounds`` lists ``(proposed, accepted)`` per verification step. Introduced in 15_speculative_decoding.ipynb.
    """

    def __init__(self):
        from transformers.generation import candidate_generator as cg

        self._classes = (cg.AssistedCandidateGenerator, cg.PromptLookupCandidateGenerator)
        self._saved: list[tuple[type, str, object]] = []
        self.rounds: list[list[int]] = []

    def __enter__(self) -> AcceptanceCounter:
        counter = self
        for cls in self._classes:
            get, update = cls.get_candidates, cls.update_candidate_strategy
            self._saved += [(cls, "get_candidates", get), (cls, "update_candidate_strategy", update)]

            def get_candidates(self, input_ids, *args, _get=get, **kwargs):
                ids, logits = _get(self, input_ids, *args, **kwargs)
                counter.rounds.append([ids.shape[1] - input_ids.shape[1], 0])
                return ids, logits

            def update_candidate_strategy(self, input_ids, scores, num_matches, _update=update):
                counter.rounds[-1][1] = int(num_matches)
                return _update(self, input_ids, scores, num_matches)

            cls.get_candidates, cls.update_candidate_strategy = get_candidates, update_candidate_strategy
        return self

    def __exit__(self, *exc) -> None:
        for cls, name, fn in self._saved:
            setattr(cls, name, fn)

    @property
    def acceptance(self) -> float:
        """Accepted draft tokens / drafted tokens (0 when nothing was drafted)."""
        proposed = sum(p for p, _ in self.rounds)
        return sum(a for _, a in self.rounds) / proposed if proposed else 0.0
