"""Evaluation basics: batched greedy generation, exact-match accuracy per task, perplexity.

Introduced in 01_tokenizer_and_pretraining.ipynb (perplexity), 03_sft.ipynb (generation, accuracy) and
14_quantization.ipynb (completions with one right answer, for a base model).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from pathlib import Path

import torch

from helpers.tasks import FAMILIES
from helpers.training import MASK_PROBABILITY, masked_batches


def stop_token_ids(tokenizer) -> list[int]:
    """Token ids that end an assistant turn: ``<|im_end|>`` and the tokenizer's eos. Introduced in 03_sft.ipynb."""
    ids = {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")}
    return sorted(i for i in ids if i is not None and i != tokenizer.unk_token_id)


@torch.no_grad()
def generate(model, tokenizer, prompts: list[list[dict]], max_new_tokens: int = 16, batch_size: int = 32,
             progress: bool = False, **sampling) -> list[str]:
    """Replies to chat ``prompts`` (lists of messages), batched with left padding: greedy by default.

    ``sampling``: extra ``model.generate`` arguments, e.g. ``do_sample=True, temperature=1.5,
    num_return_sequences=n`` (then the n replies of each prompt follow each other). Introduced in 03_sft.ipynb.
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
    """Lower-case, strip, collapse spaces, drop a trailing full stop. Introduced in 03_sft.ipynb."""
    return " ".join(text.lower().strip().rstrip(".").split())


def exact_match(prediction: str, reference: str) -> bool:
    """True when the normalized prediction equals the normalized reference. Introduced in 03_sft.ipynb."""
    return normalize(prediction) == normalize(reference)


def contains_answer(prediction: str, reference: str) -> bool:
    """True when the normalized reference appears in the normalized prediction. Introduced in 03_sft.ipynb."""
    return normalize(reference) in normalize(prediction)


METRIC_MODULES = Path(__file__).parent / "metric_modules"  # the course's metrics as `evaluate` modules


def load_metric(name: str):
    """The course's metric ``name`` (``course_exact_match``: ``exact_match`` over a list; ``course_keyword_hits``: the
    share of each reply's keywords it contains) as a Hugging Face ``evaluate`` module, loaded from its folder in
    ``helpers/metric_modules``: offline, and the same folder pushed to the Hub loads by id. The modules are
    self-contained; tests/test_evaluate_modules.py checks they score as ``exact_match`` and ``contains_answer`` do.
    Introduced for the post-training capstone (issue 25)."""
    import evaluate

    known = sorted(p.name for p in METRIC_MODULES.iterdir() if (p / f"{p.name}.py").is_file())
    if name not in known:
        raise ValueError(f"no course metric {name!r}; the course's metrics are {known}")
    return evaluate.load(str(METRIC_MODULES / name))


def split_messages(rows: list[dict]) -> tuple[list[list[dict]], list[str]]:
    """SFT rows → (prompts without the final assistant turn, reference answers). Introduced in 03_sft.ipynb."""
    return [r["messages"][:-1] for r in rows], [r["messages"][-1]["content"] for r in rows]


def task_accuracy(model, tokenizer, rows: list[dict], max_new_tokens: int = 16, batch_size: int = 32,
                  progress: bool = False) -> dict:
    """Exact-match accuracy on SFT-format ``rows``: overall, per task, and the replies themselves.

    Returns ``{"accuracy": float, "per_task": {task: float}, "replies": [...]}``. Introduced in 03_sft.ipynb.
    """
    replies = generate(model, tokenizer, split_messages(rows)[0], max_new_tokens, batch_size, progress)
    return {**score_replies(replies, rows), "replies": replies}


def score_replies(replies: list[str], rows: list[dict]) -> dict:
    """Exact match of ``replies`` against SFT-format ``rows``: ``{"accuracy", "per_task"}``.

    Introduced in 03_sft.ipynb (inside ``task_accuracy``); 07_reward_model.ipynb scores sampled replies with it.
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
    """Perplexity of a causal LM on packed token rows (``helpers.training.pack_corpus``); an encoder has no
    next-token probability: ``masked_token_accuracy`` is its measure.

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
    accuracy of a base model at its own task. Introduced in 14_quantization.ipynb."""
    device = next(model.parameters()).device
    hits = 0
    for start in range(0, len(rows), batch_size):
        batch = rows[start:start + batch_size].to(device)
        hits += (model(input_ids=batch).logits[:, :-1].argmax(-1) == batch[:, 1:]).sum().item()
    return hits / (rows.numel() - rows.shape[0])


@torch.no_grad()
def masked_token_accuracy(model, rows: torch.Tensor, tokenizer, probability: float = MASK_PROBABILITY, seed: int = 0,
                          batch_size: int = 32) -> float:
    """Share of masked positions whose token a masked-LM encoder restores (its top token), on packed token rows with
    ``probability`` of the tokens masked as in pretraining (``training.masked_batches``; seeded: the same positions each
    call). What perplexity is to a causal LM, for an encoder. Introduced in 01_tokenizer_and_pretraining.ipynb
    (for the encoder size of ``helpers.tiny``)."""
    state = torch.get_rng_state()
    torch.manual_seed(seed)
    try:
        batches = [masked_batches(tokenizer, probability)(rows[start:start + batch_size])
                   for start in range(0, len(rows), batch_size)]
    finally:
        torch.set_rng_state(state)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    hits = total = 0
    for batch in batches:
        chosen = batch["labels"] != -100
        logits = model(input_ids=batch["input_ids"].to(device)).logits
        hits += (logits.argmax(-1).cpu()[chosen] == batch["labels"][chosen]).sum().item()
        total += chosen.sum().item()
    model.train(was_training)
    return hits / max(total, 1)


# Completions with one right answer, for a base model (no chat template): the regex's group 1 is the answer. Sums
# and capitals are task families (helpers.tasks, where their patterns live); the last word of a list is a game of
# the corpus only.
CLOZE = {
    "sums": FAMILIES["add"].cloze,
    "last word": r"the last word is (\w+)\.",
    "capitals": FAMILIES["capital"].cloze,
}


def cloze_items(texts: list[str], per_task: int = 40) -> list[dict]:
    """Up to ``per_task`` completions of each :data:`CLOZE` family found in ``texts`` (held-out documents): the
    document up to the answer as ``prompt``, the ``answer``, and the ``task``. Introduced in 14_quantization.ipynb."""
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
    """Greedy continuations of plain-text ``prompts``, batched with left padding. Introduced in 14_quantization.ipynb."""
    return _continue(model, tokenizer, prompts, max_new_tokens, batch_size)


def cloze_accuracy(continuations: list[str], items: list[dict]) -> dict:
    """Share of continuations whose first word is the item's answer, overall and per task.
    Introduced in 14_quantization.ipynb."""
    hits = defaultdict(list)
    for text, item in zip(continuations, items, strict=True):
        words = re.findall(r"\w+", text)
        hits[item["task"]].append(bool(words) and words[0] == item["answer"])
    return _by_task(hits)


@torch.no_grad()
def continuation_logps(model, tokenizer, heads: list[str], rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed log-probability, token count) of what each token row holds after its text ``head``, in one
    right-padded forward pass. The continuation starts at the first token where the row differs from the head's
    own tokens: a tokenizer may merge the continuation's first characters with what precedes them, so the two are
    not tokenized apart. Introduced in 08_dpo.ipynb (inside ``alignment.reply_logps``)."""
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
    Introduced in 12_evaluation.ipynb."""
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
