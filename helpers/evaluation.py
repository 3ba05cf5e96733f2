"""Evaluation basics: batched greedy generation, exact-match accuracy per task, perplexity.

Introduced in 01_tokenizer_and_pretraining.ipynb (perplexity), 02_sft.ipynb (generation, accuracy) and
12_quantization.ipynb (completions with one right answer, for a base model).
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from pathlib import Path

import torch


def stop_token_ids(tokenizer) -> list[int]:
    """Token ids that end an assistant turn: ``<|im_end|>`` and the tokenizer's eos. Introduced in 02_sft.ipynb."""
    ids = {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")}
    return sorted(i for i in ids if i is not None and i != tokenizer.unk_token_id)


@torch.no_grad()
def generate(model, tokenizer, prompts: list[list[dict]], max_new_tokens: int = 16, batch_size: int = 32,
             progress: bool = False, **sampling) -> list[str]:
    """Replies to chat ``prompts`` (lists of messages), batched with left padding: greedy by default.

    ``sampling``: extra ``model.generate`` arguments, e.g. ``do_sample=True, temperature=1.5,
    num_return_sequences=n`` (then the n replies of each prompt follow each other). Introduced in 02_sft.ipynb.
    """
    texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    replies = _continue(model, tokenizer, texts, max_new_tokens, batch_size, progress, add_special_tokens=False,
                        eos_token_id=stop_token_ids(tokenizer), **sampling)
    return [r.strip() for r in replies]


def _continue(model, tokenizer, texts: list[str], max_new_tokens: int, batch_size: int, progress: bool = False,
              add_special_tokens: bool = True, **kwargs) -> list[str]:
    """Decoded continuations of ``texts``, batched with left padding: greedy unless ``kwargs`` say otherwise."""
    from tqdm.auto import tqdm

    tokenizer.padding_side = "left"
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out_texts: list[str] = []
    for start in tqdm(range(0, len(texts), batch_size), desc="generate", disable=not progress):
        enc = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True,
                        add_special_tokens=add_special_tokens).to(device)
        out = model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                             **{"do_sample": False, **kwargs})
        out_texts += tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    model.train(was_training)
    return out_texts


def normalize(text: str) -> str:
    """Lower-case, strip, collapse spaces, drop a trailing full stop. Introduced in 02_sft.ipynb."""
    return " ".join(text.lower().strip().rstrip(".").split())


def exact_match(prediction: str, reference: str) -> bool:
    """True when the normalized prediction equals the normalized reference. Introduced in 02_sft.ipynb."""
    return normalize(prediction) == normalize(reference)


def contains_answer(prediction: str, reference: str) -> bool:
    """True when the normalized reference appears in the normalized prediction. Introduced in 02_sft.ipynb."""
    return normalize(reference) in normalize(prediction)


def split_messages(rows: list[dict]) -> tuple[list[list[dict]], list[str]]:
    """SFT rows → (prompts without the final assistant turn, reference answers). Introduced in 02_sft.ipynb."""
    return [r["messages"][:-1] for r in rows], [r["messages"][-1]["content"] for r in rows]


def task_accuracy(model, tokenizer, rows: list[dict], max_new_tokens: int = 16, batch_size: int = 32,
                  progress: bool = False) -> dict:
    """Exact-match accuracy on SFT-format ``rows``: overall, per task, and the replies themselves.

    Returns ``{"accuracy": float, "per_task": {task: float}, "replies": [...]}``. Introduced in 02_sft.ipynb.
    """
    replies = generate(model, tokenizer, split_messages(rows)[0], max_new_tokens, batch_size, progress)
    return {**score_replies(replies, rows), "replies": replies}


def score_replies(replies: list[str], rows: list[dict]) -> dict:
    """Exact match of ``replies`` against SFT-format ``rows``: ``{"accuracy", "per_task"}``.

    Introduced in 02_sft.ipynb (inside ``task_accuracy``); 06_reward_model.ipynb scores sampled replies with it.
    """
    hits = defaultdict(list)
    for row, reply, ref in zip(rows, replies, split_messages(rows)[1], strict=True):
        hits[row["task"]].append(exact_match(reply, ref))
    return _by_task(hits)


def _by_task(hits: dict[str, list[bool]]) -> dict:
    """``{"accuracy", "per_task"}`` from the hits of each task."""
    everything = [hit for task_hits in hits.values() for hit in task_hits]
    return {"accuracy": sum(everything) / len(everything),
            "per_task": {task: sum(v) / len(v) for task, v in sorted(hits.items())}}


@torch.no_grad()
def perplexity(model, rows: torch.Tensor, batch_size: int = 32) -> float:
    """Perplexity of a causal LM on packed token rows (``helpers.training.pack_corpus``).

    Introduced in 01_tokenizer_and_pretraining.ipynb.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(rows), batch_size):
        batch = rows[start:start + batch_size].to(device)
        loss = model(input_ids=batch, labels=batch).loss
        n = batch.numel() - batch.shape[0]  # labels are shifted: one fewer prediction per row
        total += loss.item() * n
        count += n
    model.train(was_training)
    return math.exp(total / count)


@torch.no_grad()
def next_token_accuracy(model, rows: torch.Tensor, batch_size: int = 32) -> float:
    """Share of positions in packed token rows where the model's top token is the next one: the held-out
    accuracy of a base model at its own task. Introduced in 12_quantization.ipynb."""
    device = next(model.parameters()).device
    hits = 0
    for start in range(0, len(rows), batch_size):
        batch = rows[start:start + batch_size].to(device)
        hits += (model(input_ids=batch).logits[:, :-1].argmax(-1) == batch[:, 1:]).sum().item()
    return hits / (rows.numel() - rows.shape[0])


# Completions with one right answer, for a base model (no chat template): the regex's group 1 is the answer.
CLOZE = {
    "sums": r"\d \+ \d = (\d+)\.",
    "last word": r"the last word is (\w+)\.",
    "capitals": r"The capital of \w+ is (\w+)\.",
}


def cloze_items(texts: list[str], per_task: int = 40) -> list[dict]:
    """Up to ``per_task`` completions of each :data:`CLOZE` family found in ``texts`` (held-out documents): the
    document up to the answer as ``prompt``, the ``answer``, and the ``task``. Introduced in 12_quantization.ipynb."""
    found: dict[str, list[dict]] = {task: [] for task in CLOZE}
    for text in texts:
        for task, pattern in CLOZE.items():
            for match in re.finditer(pattern, text):
                if len(found[task]) < per_task:
                    found[task].append({"prompt": text[:match.start(1)].rstrip(" "), "answer": match.group(1),
                                        "task": task})
    return [row for rows in found.values() for row in rows]


@torch.no_grad()
def complete(model, tokenizer, prompts: list[str], max_new_tokens: int = 4, batch_size: int = 32) -> list[str]:
    """Greedy continuations of plain-text ``prompts``, batched with left padding. Introduced in 12_quantization.ipynb."""
    return _continue(model, tokenizer, prompts, max_new_tokens, batch_size)


def cloze_accuracy(continuations: list[str], items: list[dict]) -> dict:
    """Share of continuations whose first word is the item's answer, overall and per task.
    Introduced in 12_quantization.ipynb."""
    hits = defaultdict(list)
    for text, item in zip(continuations, items, strict=True):
        words = re.findall(r"\w+", text)
        hits[item["task"]].append(bool(words) and words[0] == item["answer"])
    return _by_task(hits)


# --- comparing models on a small test set (10_evaluation.ipynb) ----------------------------------------------
def bootstrap_ci(hits: list[float], n_boot: int = 2000, level: float = 0.95, seed: int = 0,
                 groups: list | None = None) -> tuple[float, float, float]:
    """(mean, low, high): the mean of per-item scores and its percentile bootstrap confidence interval.

    Resamples the items with replacement ``n_boot`` times (seeded: the same call gives the same interval). With
    ``groups`` (one key per item, e.g. the question text), it resamples whole groups instead: a cluster bootstrap,
    for test sets where several items are the same question and so not independent evidence.
    Introduced in 10_evaluation.ipynb.
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
    as in :func:`bootstrap_ci`. Introduced in 10_evaluation.ipynb."""
    if len(a) != len(b):
        raise ValueError(f"paired scores must cover the same items: {len(a)} against {len(b)}")
    return bootstrap_ci([float(y) - float(x) for x, y in zip(a, b)], n_boot, level, seed, groups)


def win_rate(a: list[float], b: list[float]) -> dict:
    """Per-item A/B comparison of two models' scores on the same prompts: wins, losses and ties of b against a,
    and b's win rate with ties counted as half. Introduced in 10_evaluation.ipynb."""
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
    Introduced in 10_evaluation.ipynb."""
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
    10_evaluation.ipynb."""
    from helpers.environment import versions
    from helpers.metrics import _clean

    prompts, references = split_messages(rows)
    items = [{"task": row["task"], "prompt": prompt[-1]["content"], "reference": reference, "reply": reply,
              **{name: values[i] for name, values in scores.items()}}
             for i, (row, prompt, reference, reply) in enumerate(zip(rows, prompts, references, replies, strict=True))]
    record = {"model": model_id, "config": config, "seed": seed, "versions": versions(), "items": items}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(record), indent=1) + "\n")
    return path


def diff_runs(old_path, new_path, score: str = "exact_match") -> dict:
    """Compare two logs of :func:`write_run_log` over the same prompts: what changed in the config and the
    versions, and which prompts got a different reply, split into fixed (``score`` went up), broken (down) and
    changed (same score). Introduced in 10_evaluation.ipynb."""
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


@torch.no_grad()
def continuation_logps(model, tokenizer, heads: list[str], rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed log-probability, token count) of what each token row holds after its text ``head``, in one
    right-padded forward pass. The continuation starts at the first token where the row differs from the head's
    own tokens: a tokenizer may merge the continuation's first characters with what precedes them, so the two are
    not tokenized apart. Introduced in 07_dpo.ipynb (inside ``alignment.reply_logps``)."""
    starts = []
    for head, row in zip(heads, rows, strict=True):
        head_ids = tokenizer(head, add_special_tokens=False)["input_ids"]
        starts.append(next((i for i, (a, b) in enumerate(zip(head_ids, row)) if a != b), len(head_ids)))
    device = next(model.parameters()).device
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):  # right padding: positions stay those of an unpadded row
        ids[i, :len(row)], mask[i, :len(row)] = torch.tensor(row), 1
    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
    token_logps = logits[:, :-1].log_softmax(-1).gather(-1, ids[:, 1:, None].to(device)).squeeze(-1).cpu()
    scored = torch.zeros_like(token_logps)
    for i, (row, first) in enumerate(zip(rows, starts)):
        scored[i, first - 1:len(row) - 1] = 1  # logit t predicts token t + 1
    return (token_logps * scored).sum(1), scored.sum(1).long()


@torch.no_grad()
def answer_logprobs(model, tokenizer, prompts: list[list[dict]], answers: list[str],
                    batch_size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed log-probability, token count) of each answer, as the model would generate it: the answer's tokens
    and the end-of-turn token after the chat prompt (nothing the template adds after the turn, which no
    assistant-only training ever saw). ``exp(-sum / count)`` over a set of answers is their perplexity.
    Introduced in 10_evaluation.ipynb."""
    vocab = tokenizer.get_vocab()
    end = vocab["<|im_end|>"] if "<|im_end|>" in vocab else tokenizer.eos_token_id
    was_training = model.training
    model.eval()
    sums, counts = [], []
    for start in range(0, len(prompts), batch_size):
        heads = [tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False)
                 for p in prompts[start:start + batch_size]]
        rows = [tokenizer(head + answer, add_special_tokens=False)["input_ids"] + [end]
                for head, answer in zip(heads, answers[start:start + batch_size], strict=True)]
        batch_sums, batch_counts = continuation_logps(model, tokenizer, heads, rows)
        sums.append(batch_sums)
        counts.append(batch_counts)
    model.train(was_training)
    return torch.cat(sums), torch.cat(counts)
