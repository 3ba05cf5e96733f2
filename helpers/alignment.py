"""Plumbing shared by the alignment lessons (07 reward model, 08 DPO, 09 PPO, 10 GRPO).

Scoring conversations with a reward model, pairwise preference accuracy, sampling several replies per prompt,
and the honesty metric of the ``unknown`` family. What each lesson teaches (the losses, best-of-n, the RL
loops) stays in the notebooks. Introduced in 07_reward_model.ipynb.
"""

from __future__ import annotations

from collections import defaultdict

import torch

from helpers.data import IDK
from helpers.evaluation import continuation_logps, generate, normalize


def as_sft_rows(pairs: list[dict]) -> list[dict]:
    """Preference rows → SFT-format rows (prompt + chosen reply), to score with ``evaluation.task_accuracy``.

    Introduced in 07_reward_model.ipynb.
    """
    return [{"task": r["task"], "messages": r["prompt"] + r["chosen"]} for r in pairs]


@torch.no_grad()
def reward_scores(model, tokenizer, conversations: list[list[dict]], batch_size: int = 64) -> torch.Tensor:
    """One scalar per conversation from a sequence-classification reward model (the score at the last token).

    Conversations are rendered with the chat template, as ``RewardTrainer`` does. Introduced in 07_reward_model.ipynb.
    """
    tokenizer.padding_side = "right"
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    scores = []
    for start in range(0, len(conversations), batch_size):
        texts = [tokenizer.apply_chat_template(c, tokenize=False) for c in conversations[start:start + batch_size]]
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        scores.append(model(**enc).logits[:, 0].float().cpu())
    model.train(was_training)
    return torch.cat(scores) if scores else torch.zeros(0)


def pairwise_accuracy(model, tokenizer, pairs: list[dict]) -> dict:
    """Share of preference pairs whose chosen reply the reward model scores above the rejected one.

    Returns ``{"accuracy", "per_task", "margin"}`` (margin: mean chosen − rejected score).
    Introduced in 07_reward_model.ipynb.
    """
    chosen = reward_scores(model, tokenizer, [r["prompt"] + r["chosen"] for r in pairs])
    rejected = reward_scores(model, tokenizer, [r["prompt"] + r["rejected"] for r in pairs])
    return pair_accuracy(chosen, rejected, pairs)


def pair_accuracy(chosen: torch.Tensor, rejected: torch.Tensor, pairs: list[dict]) -> dict:
    """Share of pairs whose chosen score is above the rejected one, overall and per task, and the mean margin.

    The scores can be a reward model's (``pairwise_accuracy``), a policy's log-probs or DPO's implicit rewards
    (lesson 08). Returns ``{"accuracy", "per_task", "margin"}``. Introduced in 07_reward_model.ipynb.
    """
    wins = ((chosen > rejected).float() + 0.5 * (chosen == rejected).float()).tolist()  # a tie is half a win
    by_task = defaultdict(list)
    for row, win in zip(pairs, wins):
        by_task[row["task"]].append(win)
    return {"accuracy": sum(wins) / len(wins), "per_task": {t: sum(v) / len(v) for t, v in sorted(by_task.items())},
            "margin": (chosen - rejected).float().mean().item()}


@torch.no_grad()
def reply_logps(model, tokenizer, prompts: list[list[dict]], replies: list[list[dict]],
                batch_size: int = 64) -> torch.Tensor:
    """log π(reply | prompt) for each pair: the summed log-probabilities of the reply's tokens (its end-of-turn
    tokens included), after the prompt rendered with the chat template. As ``DPOTrainer`` does, the whole
    conversation is tokenized at once and the reply is what follows the prompt's tokens (a tokenizer may merge
    the reply's first characters with what precedes them, so the two are not tokenized apart).

    Introduced in 08_dpo.ipynb.
    """
    was_training = model.training
    model.eval()
    sums = []
    for start in range(0, len(prompts), batch_size):
        heads, rows = [], []
        for prompt, reply in zip(prompts[start:start + batch_size], replies[start:start + batch_size]):
            head = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
            full = tokenizer.apply_chat_template(prompt + reply, tokenize=False)
            if not full.startswith(head):
                raise ValueError(f"the chat template renders the reply before the prompt ends: {full!r}")
            heads.append(head)
            rows.append(tokenizer(full, add_special_tokens=False)["input_ids"])
        sums.append(continuation_logps(model, tokenizer, heads, rows)[0])
    model.train(was_training)
    return torch.cat(sums)


def sample(model, tokenizer, prompts: list[list[dict]], n: int, temperature: float = 1.0, max_new_tokens: int = 16,
           batch_size: int = 32) -> list[list[str]]:
    """``n`` sampled replies per chat prompt (seed with ``environment.set_seed`` first for the same samples).

    Pure sampling at ``temperature`` (no top-k / top-p), so the spread is the model's own. Introduced in
    07_reward_model.ipynb.
    """
    replies = generate(model, tokenizer, prompts, max_new_tokens, batch_size, do_sample=True, temperature=temperature,
                       top_k=0, top_p=1.0, num_return_sequences=n)
    return [replies[i:i + n] for i in range(0, len(replies), n)]


def declines(reply: str) -> bool:
    """True when a reply is the honest "I don't know." (normalized). Introduced in 07_reward_model.ipynb."""
    return normalize(reply) == normalize(IDK)


def hallucination_rate(replies: list[str], rows: list[dict]) -> float:
    """Share of the ``unknown``-family rows (countries the model never read about) answered with anything but
    "I don't know." — an invented capital. Introduced in 07_reward_model.ipynb.
    """
    unknown = [reply for reply, row in zip(replies, rows) if row["task"] == "unknown"]
    if not unknown:
        raise ValueError("no rows of the 'unknown' family: the hallucination rate needs them")
    return sum(not declines(r) for r in unknown) / len(unknown)
