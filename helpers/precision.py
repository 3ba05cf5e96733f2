"""Numeric precision for a device, decided in one place: every lesson that trains or runs a model asks here.

- A GPU with native bf16 (compute capability 8.0 or newer: A100, L4, H100): **bf16** mixed precision.
- An older GPU (a T4 is 7.5): **fp16** mixed precision. bf16 is only *emulated* there, and
  ``torch.cuda.is_bf16_supported()`` (which counts emulation by default) has been seen saying True on a T4.
- CPU and Apple MPS: **fp32**.

In every case the weights that are trained stay in fp32 ("master weights") and autocast runs the matmuls in
the compute dtype. AMP's fp16 grad scaler can only unscale fp32 gradients: fp16 weights with ``fp16=True``
fail with "Attempting to unscale FP16 gradients", and so do the bf16 adapters TRL makes for QLoRA
(see :func:`trainable_to_fp32`).

``COURSE_EMULATE_T4=1`` makes any CUDA GPU take the T4 path (``python -m course gpu-check`` sets it).

Introduced in 03_sft.ipynb.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

T4_CAPABILITY = (7, 5)
# Largest expected |logits(a) - logits(b)| relative to max |logits| when two mathematically equal models
# (an adapter and its merged copy) run in this precision: the dtype's rounding (eps 2^-23, 2^-10, 2^-7)
# accumulated over the layers of a forward pass. Measured with CPU autocast (tiny:sft with a random rank-16 LoRA,
# adapter vs merged, 8 test rows): fp32 2.1e-6, fp16 3.3e-3, bf16 2.3e-2 of the logits' scale.
LOGITS_RTOL = {"fp32": 2e-5, "fp16": 1e-2, "bf16": 5e-2}


@dataclass(frozen=True)
class Precision:
    """How a device trains and runs models. Introduced in 03_sft.ipynb."""

    name: str  # "bf16", "fp16" or "fp32"
    device: str  # "cuda", "mps" or "cpu"

    @property
    def compute_dtype(self) -> torch.dtype:
        """dtype of the matmuls: autocast, inference, ``bnb_4bit_compute_dtype``."""
        return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[self.name]

    @property
    def load_dtype(self) -> torch.dtype:
        """dtype to load weights that will be trained in: always fp32 (mixed precision keeps fp32 masters)."""
        return torch.float32

    @property
    def trainer_args(self) -> dict:
        """``bf16`` / ``fp16`` / ``use_cpu`` for any transformers or TRL training config."""
        return {"bf16": self.name == "bf16", "fp16": self.name == "fp16", "use_cpu": self.device == "cpu"}

    @property
    def logits_rtol(self) -> float:
        """Tolerance, relative to max |logits|, for two equal models compared in this precision."""
        return LOGITS_RTOL[self.name]

    def autocast(self):
        """A context that runs the forward pass in this precision (a no-op in fp32)."""
        if self.name == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device, dtype=self.compute_dtype)

    def __str__(self) -> str:
        kind = "full precision" if self.name == "fp32" else "mixed precision, fp32 master weights"
        return f"{self.name} on {self.device} ({kind})"


def choose(device: str, capability: tuple[int, int] | None = None, emulate_t4: bool | None = None,
           rocm: bool | None = None) -> Precision:
    """The precision for ``device``; ``capability`` is the CUDA compute capability (read from the GPU when None).

    A pure decision, so tests can fake a T4 or an A100. Introduced in 03_sft.ipynb.
    """
    if device != "cuda":
        return Precision("fp32", device)
    if emulate_t4 is None:
        emulate_t4 = os.environ.get("COURSE_EMULATE_T4", "") not in ("", "0")
    if rocm is None:
        rocm = bool(torch.version.hip)
    if emulate_t4:
        capability, rocm = T4_CAPABILITY, False
    if capability is None:
        capability = torch.cuda.get_device_capability()
    return Precision("bf16" if rocm or tuple(capability) >= (8, 0) else "fp16", device)


def for_device(device: str, verbose: bool = True) -> Precision:
    """:func:`choose` for this machine's GPU, printed. Introduced in 03_sft.ipynb."""
    precision = choose(device)
    if verbose:
        print(f"precision: {precision}")
    return precision


def trainable_to_fp32(model) -> int:
    """Cast the trainable parameters of ``model`` to fp32 in place; returns how many tensors changed.

    TRL's trainers cast LoRA adapters on a quantized (QLoRA) model to bf16, following the QLoRA paper, and no
    config option turns it off (trl 1.16). fp16 AMP (a T4) cannot unscale bf16 gradients ("not implemented for
    'BFloat16'"), and bf16 master weights lose small AdamW updates. Call this after building the trainer and
    before ``train()``: the optimizer is created in ``train()``. Introduced in 04_lora_qlora.ipynb.
    """
    changed = 0
    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()
            changed += 1
    return changed
