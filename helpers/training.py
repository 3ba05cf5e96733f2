"""Training pieces any lesson uses on any model, tiny or from the Hub: packing a corpus into rows, chat rows into
tensors with an assistant-only loss mask, the learning-rate schedule, and the pretraining loop that builds the
course's tiny models (``helpers.tiny``). The same loop is written out step by step in 01_tokenizer_and_pretraining.ipynb.

Introduced in 01_tokenizer_and_pretraining.ipynb.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

MASK_PROBABILITY = 0.15  # share of tokens a masked-LM encoder learns to restore (BERT's)


@dataclass(frozen=True)
class PretrainRecipe:
    """How a cached tiny model is pretrained. Part of the cache key."""

    steps: int = 300
    batch_size: int = 16
    seq_len: int = 128
    lr: float = 3e-3
    warmup: int = 20
    seed: int = 0


def pack_corpus(texts: list[str], tokenizer, seq_len: int) -> torch.Tensor:
    """Tokenize documents, join them with ``<|endoftext|>`` and cut into rows of ``seq_len`` tokens.

    Introduced in 01_tokenizer_and_pretraining.ipynb.
    """
    sep = tokenizer.bos_token_id
    ids: list[int] = []
    for enc in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        ids.extend(enc + [sep])
    n = len(ids) // seq_len
    return torch.tensor(ids[: n * seq_len]).view(n, seq_len)


def tokenize_chats(rows: list[dict], tokenizer) -> dict[str, torch.Tensor]:
    """SFT rows (``messages``) → right-padded ``input_ids``, ``attention_mask`` and ``labels`` tensors, one row per
    conversation, with the chat template; ``labels`` are the token ids on the assistant's tokens (the template's
    generation markers) and -100 elsewhere, as ``SFTTrainer`` with ``assistant_only_loss``. Introduced in
    06_distillation.ipynb."""
    encoded = [tokenizer.apply_chat_template(r["messages"], return_dict=True, return_assistant_tokens_mask=True)
               for r in rows]
    width = max(len(e["input_ids"]) for e in encoded)
    ids = torch.full((len(encoded), width), tokenizer.pad_token_id, dtype=torch.long)
    mask, labels = torch.zeros_like(ids), torch.full_like(ids, -100)
    for i, e in enumerate(encoded):
        n = len(e["input_ids"])
        ids[i, :n], mask[i, :n] = torch.tensor(e["input_ids"]), 1
        answer = torch.tensor(e["assistant_masks"], dtype=torch.bool)
        labels[i, :n][answer] = ids[i, :n][answer]
    if not (labels != -100).any(1).all():
        raise ValueError("a conversation has no assistant tokens: the chat template needs {% generation %} markers")
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def lr_at(step: int, steps: int, lr: float, warmup: int) -> float:
    """Linear warmup then cosine decay to 10 %. Introduced in 01_tokenizer_and_pretraining.ipynb."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def pretrain(model, rows: torch.Tensor, recipe: PretrainRecipe, progress: bool = True, collate=None) -> list[float]:
    """Pretraining with AdamW on packed rows; returns the loss per step. Causal LM (each row is its own labels)
    unless ``collate(batch) -> model inputs`` makes another objective's batch (``masked_batches``: masked LM).

    The same loop is written out step by step in 01_tokenizer_and_pretraining.ipynb; this copy builds the
    cached models the later lessons start from.
    """
    from tqdm.auto import tqdm

    gen = torch.Generator().manual_seed(recipe.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=0.1, betas=(0.9, 0.95))
    model.train()
    losses = []
    for step in tqdm(range(recipe.steps), desc="pretrain", disable=not progress, mininterval=2):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, recipe.steps, recipe.lr, recipe.warmup)
        batch = rows[torch.randint(len(rows), (recipe.batch_size,), generator=gen)]
        loss = model(**(collate(batch) if collate else {"input_ids": batch, "labels": batch})).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    model.eval()
    return losses


def masked_batches(tokenizer, probability: float = MASK_PROBABILITY):
    """``collate(rows) -> {"input_ids", "labels"}`` of masked-LM pretraining: ``transformers``'
    ``DataCollatorForLanguageModeling`` (``probability`` of the tokens chosen; of those 80 % become the mask token,
    10 % a random token, 10 % stay; labels -100 elsewhere), drawing from torch's global generator (seed it
    first). Introduced in 01_tokenizer_and_pretraining.ipynb (for the encoder size of ``helpers.tiny``)."""
    from transformers import DataCollatorForLanguageModeling

    collator = DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=probability, return_tensors="pt")

    def collate(rows: torch.Tensor) -> dict[str, torch.Tensor]:
        batch = collator.torch_call([{"input_ids": row} for row in rows])
        return {"input_ids": batch["input_ids"], "labels": batch["labels"]}

    return collate


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """The distillation term (Hinton et al.): ``T² · KL(softmax(teacher / T) ‖ softmax(student / T))``, averaged over
    the rows (one row of logits per position). Lesson 06 writes it by hand over a teacher's top-k and checks it
    against this; lesson 18 recovers a pruned model with it. Introduced in 06_distillation.ipynb."""
    import torch.nn.functional as F

    return F.kl_div(F.log_softmax(student_logits / temperature, -1), F.log_softmax(teacher_logits / temperature, -1),
                    reduction="batchmean", log_target=True) * temperature**2


def distill(student, teacher, tensors: dict, steps: int, lr: float, batch_size: int, temperature: float, precision,
            seed: int = 0, alpha: float = 0.5, warmup: int = 10, device: str = "cpu", progress: bool = True) -> list:
    """Train ``student`` on ``tensors`` (``tokenize_chats``) with lesson 06's loss against a live ``teacher``:
    ``alpha`` of the cross-entropy on the answer tokens plus ``1 - alpha`` of ``kd_loss`` at every real position;
    AdamW (no weight decay), linear warmup then cosine decay (``lr_at``), loss scaling in fp16, batches drawn with a
    generator seeded by ``seed``. Returns the loss per step. Lesson 06 writes its loop out (with a cached top-k
    teacher); introduced in 18_pruning.ipynb, which recovers a pruned model with it."""
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    from helpers import environment

    environment.set_seed(seed)
    student.train()
    optimizer = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_at(step, steps, 1.0, warmup))
    scaler = torch.amp.GradScaler(device, enabled=precision.name == "fp16")
    order = torch.Generator().manual_seed(seed)
    losses = []
    for _ in tqdm(range(steps), desc="distill", disable=not progress):
        pick = torch.randint(len(tensors["input_ids"]), (batch_size,), generator=order)
        ids, mask, labels = (tensors[k][pick].to(device) for k in ("input_ids", "attention_mask", "labels"))
        with precision.autocast():
            logits = student(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            with torch.no_grad():
                target = teacher(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            real = mask[:, 1:].bool()
            kd = kd_loss(logits[real], target[real], temperature)
            loss = alpha * F.cross_entropy(logits.flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100) \
                + (1 - alpha) * kd
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        schedule.step()
        losses.append(loss.item())
    student.eval()
    return losses

