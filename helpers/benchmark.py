"""Timing and memory measurements for the inference lessons: ratios measured in one run, never absolute asserts.

Introduced in 11_decoding_kv_cache.ipynb.
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
