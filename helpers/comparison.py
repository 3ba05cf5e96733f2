"""Comparing models on a small test set: bootstrap confidence intervals (plain, paired, by question), A/B win
counts, a judge's verdict read from one forward pass, and per-question run logs with their diff.

Introduced in 12_evaluation.ipynb.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from helpers.environment import versions
from helpers.evaluation import split_messages
from helpers.metrics import clean


def bootstrap_ci(hits: list[float], n_boot: int = 2000, level: float = 0.95, seed: int = 0,
                 groups: list | None = None) -> tuple[float, float, float]:
    """(mean, low, high): the mean of per-item scores and its percentile bootstrap confidence interval.

    Resamples the items with replacement ``n_boot`` times (seeded: the same call gives the same interval). With
    ``groups`` (one key per item, e.g. the question text), it resamples whole groups instead: a cluster bootstrap,
    for test sets where several items are the same question and so not independent evidence.
    Introduced in 12_evaluation.ipynb.
    """
    values = torch.tensor([float(h) for h in hits], dtype=torch.float64)
    if len(values) == 0:
        raise ValueError("bootstrap_ci needs at least one item")
    if groups is not None and len(groups) != len(values):
        raise ValueError(f"groups must name one group per item: {len(groups)} groups for {len(values)} items")
    keys = list(range(len(values))) if groups is None else groups
    number = {key: k for k, key in enumerate(dict.fromkeys(keys))}
    index = torch.tensor([number[key] for key in keys])
    sums = torch.zeros(len(number), dtype=torch.float64).index_add_(0, index, values)
    sizes = torch.zeros(len(number), dtype=torch.float64).index_add_(0, index, torch.ones_like(values))
    generator = torch.Generator().manual_seed(seed)
    draws = torch.randint(len(number), (n_boot, len(number)), generator=generator)
    means = sums[draws].sum(1) / sizes[draws].sum(1)
    tail = (1 - level) / 2
    low, high = torch.quantile(means, torch.tensor([tail, 1 - tail], dtype=torch.float64)).tolist()
    return values.mean().item(), low, high


def paired_difference_ci(a: list[float], b: list[float], n_boot: int = 2000, level: float = 0.95,
                         seed: int = 0, groups: list | None = None) -> tuple[float, float, float]:
    """(mean of b - a, low, high) over the same items, resampled together: the paired bootstrap that says whether
    model b beats model a on this test set (the interval excludes 0) or the set cannot tell them apart. ``groups``
    as in :func:`bootstrap_ci`. Introduced in 12_evaluation.ipynb."""
    if len(a) != len(b):
        raise ValueError(f"paired scores must cover the same items: {len(a)} against {len(b)}")
    return bootstrap_ci([float(y) - float(x) for x, y in zip(a, b)], n_boot, level, seed, groups)


def win_rate(a: list[float], b: list[float]) -> dict:
    """Per-item A/B comparison of two models' scores on the same prompts: wins, losses and ties of b against a,
    and b's win rate with ties counted as half. Introduced in 12_evaluation.ipynb."""
    if len(a) != len(b) or not a:
        raise ValueError(f"win_rate needs two equal, non-empty lists of scores: {len(a)} against {len(b)}")
    wins = sum(y > x for x, y in zip(a, b))
    losses = sum(y < x for x, y in zip(a, b))
    ties = len(a) - wins - losses
    return {"wins": wins, "losses": losses, "ties": ties, "win_rate": (wins + ties / 2) / len(a)}


@torch.no_grad()
def next_token_margin(model, tokenizer, texts: list[str], first: str, second: str, batch_size: int = 32) -> torch.Tensor:
    """For each text, the logit of token ``second`` minus that of token ``first`` at the next position: > 0 when the
    model would rather continue with ``second``. A judge's verdict between answers "A" and "B" read from one
    forward pass instead of sampled text. Texts are left-padded, so the last position is every row's next token.
    Introduced in 12_evaluation.ipynb."""
    vocab = tokenizer.get_vocab()
    if first not in vocab or second not in vocab:
        raise ValueError(f"{first!r} and {second!r} must each be one token of this tokenizer")
    ids = [vocab[first], vocab[second]]
    tokenizer.padding_side = "left"
    device = next(model.parameters()).device
    margins = []
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True,
                        add_special_tokens=False).to(device)
        logits = model(**enc).logits[:, -1].float()
        margins.append((logits[:, ids[1]] - logits[:, ids[0]]).cpu())
    return torch.cat(margins) if margins else torch.zeros(0)


def write_run_log(path, model_id: str, config: dict, seed: int, rows: list[dict], replies: list[str],
                  scores: dict[str, list]) -> Path:
    """Write one evaluation run as JSON: model, config, seed, library versions, and per prompt its task, prompt,
    reference, reply and every score. Two logs can be compared with :func:`diff_runs`. Introduced in
    12_evaluation.ipynb."""
    prompts, references = split_messages(rows)
    items = [{"task": row["task"], "prompt": prompt[-1]["content"], "reference": reference, "reply": reply,
              **{name: values[i] for name, values in scores.items()}}
             for i, (row, prompt, reference, reply) in enumerate(zip(rows, prompts, references, replies, strict=True))]
    record = {"model": model_id, "config": config, "seed": seed, "versions": versions(), "items": items}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(clean(record), indent=1) + "\n")
    return path


def diff_runs(old_path, new_path, score: str = "exact_match") -> dict:
    """Compare two logs of :func:`write_run_log` over the same prompts: what changed in the config and the
    versions, and which prompts got a different reply, split into fixed (``score`` went up), broken (down) and
    changed (same score). Introduced in 12_evaluation.ipynb."""
    old, new = (json.loads(Path(p).read_text()) for p in (old_path, new_path))
    if [i["prompt"] for i in old["items"]] != [i["prompt"] for i in new["items"]]:
        raise ValueError(f"{old_path} and {new_path} cover different prompts: compare runs on the same test set")
    changes: dict[str, list] = {"fixed": [], "broken": [], "changed": []}
    for a, b in zip(old["items"], new["items"]):
        if a["reply"] != b["reply"]:
            kind = "fixed" if b[score] > a[score] else "broken" if b[score] < a[score] else "changed"
            changes[kind].append({"prompt": a["prompt"], "old": a["reply"], "new": b["reply"], "task": a["task"]})
    different = {section: sorted(k for k in {*old[section], *new[section]} if old[section].get(k) != new[section].get(k))
                 for section in ("config", "versions")}
    return {"model": (old["model"], new["model"]), **{f"{s}_keys": keys for s, keys in different.items()}, **changes}
