"""Stand-ins for Hub models: random weights with exactly the architecture of each model the ``t4`` profile
loads, plus the course tokenizer, saved as local folders. Time and memory of a lesson are those of the real
model (the tokenizer only changes which rows of the embedding are read); accuracy is meaningless.

Used by ``python -m course gpu-check`` so the T4 budget can be measured on any CUDA machine, Hub or not.
Introduced for maintainers (course/gpucheck.py); no lesson imports it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from helpers.profiles import HUB_SHAPES


def stand_in_config(hub_id: str, tokenizer=None):
    """The transformers config of ``hub_id``'s architecture, with the course tokenizer's special ids."""
    from transformers import AutoConfig

    if hub_id not in HUB_SHAPES:
        raise KeyError(f"no shape for {hub_id!r} in helpers/profiles.py HUB_SHAPES; copy it from its config.json")
    shape = dict(HUB_SHAPES[hub_id])
    config = AutoConfig.for_model(shape.pop("model_type"), **shape)
    if tokenizer is not None:
        config.bos_token_id, config.eos_token_id = tokenizer.bos_token_id, tokenizer.eos_token_id
        config.pad_token_id = tokenizer.pad_token_id
    return config


def build(hub_id: str, root: Path, dtype: torch.dtype = torch.bfloat16, device: str = "cpu") -> Path:
    """Save a random-weight stand-in of ``hub_id`` under ``root`` (cached by its shape); returns the folder.

    Saved in bf16, as the real checkpoints are; lessons load it in the dtype they choose.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from helpers import cache, tiny

    key = hashlib.sha256(json.dumps([hub_id, HUB_SHAPES[hub_id], str(dtype)], sort_keys=True).encode()).hexdigest()[:10]
    folder = Path(root) / f"{hub_id.replace('/', '--')}-{key}"
    if (folder / "config.json").exists():
        return folder
    tokenizer = AutoTokenizer.from_pretrained(tiny.tokenizer_path())
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(stand_in_config(hub_id, tokenizer), dtype=dtype)

    def save(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    cache.atomic_save(folder, save)
    return folder


def build_all(hub_ids: list[str], root: Path, device: str = "cpu") -> dict[str, str]:
    """Stand-ins for every id; returns ``{hub id: folder}``, the file ``$COURSE_STAND_INS`` points at."""
    return {hub_id: str(build(hub_id, root, device=device)) for hub_id in hub_ids}
