"""Stand-ins for Hub models: random-weight models of each ``t4`` Hub model's architecture class (a causal LM, or an
encoder with a masked-LM head), with the course tokenizer, saved in a Hugging Face cache folder *under the Hub ids*
(``models--ORG--NAME/snapshots/...``). With ``HF_HUB_CACHE`` pointing there and ``HF_HUB_OFFLINE=1``,
``from_pretrained("ORG/NAME")`` and ``snapshot_download`` find them exactly as they find a download on Colab: code
that treats a Hub id differently from a folder runs as it would there. Accuracy on random weights is meaningless.

Two scales:

- ``exact``: the real config (``helpers.profiles.HUB_SHAPES``), so time and memory are the real model's
  (the tokenizer only changes which rows of the embedding are read). ``python -m course gpu-check`` measures
  the T4 budget with them on any CUDA machine.
- ``small``: the same architecture class shrunk to a few hundred thousand parameters (a larger Hub model stays
  larger), for ``python -m course run --profile t4 --stand-ins``: every lesson's t4 code path on a CPU, in CI.
  A random model never ends its reply, so every generation loop (the lessons', TRL's, lm-eval's, the server's)
  would run to its token limit: the small stand-ins' embeddings are tilted so that the end-of-reply token is
  likely after a few tokens, as a chat model's is (``tilt_towards_stop``).

Introduced for maintainers (course/gpucheck.py, course/runner.py); no lesson imports it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from helpers.profiles import HUB_SHAPES

SCALES = ("exact", "small")
# model types built as a masked-LM encoder (AutoModelForMaskedLM, the course tokenizer with a mask token); every
# other type is a causal LM (AutoModelForCausalLM)
ENCODER_TYPES = ("bert", "modernbert", "roberta", "distilbert")


def is_encoder(hub_id: str) -> bool:
    """True when ``hub_id``'s architecture class is an encoder (``ENCODER_TYPES``)."""
    return HUB_SHAPES[hub_id]["model_type"] in ENCODER_TYPES


def shape(hub_id: str, scale: str = "exact") -> dict:
    """The config fields of ``hub_id``'s stand-in: its ``HUB_SHAPES`` entry, or that shrunk (``small``).

    Small keeps the model type, tied embeddings and grouped-query attention (4 query heads on 2 KV heads; an
    encoder's 4 heads, as it has no GQA): width 64 per 896 of the real width (rounded), MLP twice as wide, 2 layers
    (3 when wider). A 1.5B model's stand-in stays several times a 0.5B one's, so teacher > student and target >
    draft still hold.
    """
    if hub_id not in HUB_SHAPES:
        raise KeyError(f"no shape for {hub_id!r} in helpers/profiles.py HUB_SHAPES; copy it from its config.json")
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    full = dict(HUB_SHAPES[hub_id])
    if scale == "exact":
        return full
    hidden = 64 * max(1, round(full["hidden_size"] / 896))
    heads = {"num_attention_heads": 4} if is_encoder(hub_id) else {"num_attention_heads": 4, "num_key_value_heads": 2}
    return {**full, "hidden_size": hidden, "intermediate_size": 2 * hidden, **heads,
            "num_hidden_layers": min(3, full["num_hidden_layers"]) if hidden > 64 else 2}


def stand_in_config(hub_id: str, tokenizer=None, scale: str = "exact"):
    """The transformers config of ``hub_id``'s stand-in, with the course tokenizer's special ids (and, small,
    its vocabulary size)."""
    from transformers import AutoConfig

    fields = shape(hub_id, scale)
    if scale == "small" and tokenizer is not None:
        fields["vocab_size"] = len(tokenizer)
    config = AutoConfig.for_model(fields.pop("model_type"), **fields)
    if tokenizer is not None:
        config.bos_token_id, config.eos_token_id = tokenizer.bos_token_id, tokenizer.eos_token_id
        config.pad_token_id = tokenizer.pad_token_id
    return config


def auto_class(hub_id: str):
    """The transformers auto class that builds ``hub_id``'s stand-in: ``AutoModelForMaskedLM`` for an encoder,
    ``AutoModelForCausalLM`` otherwise."""
    import transformers

    return transformers.AutoModelForMaskedLM if is_encoder(hub_id) else transformers.AutoModelForCausalLM


def tilt_towards_stop(model, stop_id: int, margin: float = 6.0) -> None:
    """Make ``stop_id`` the likeliest next token by about ``margin`` logits, from any context.

    Every token's embedding gets one shared direction ``u`` (so the residual stream, and after the final norm the
    last hidden state, points mostly along ``u``); the stop token's embedding gets more of it. With tied embeddings
    the shared part adds the same logit to every token except the stop token. Greedy decoding then stops at once
    (an empty reply); sampling at temperature 1-2 stops after 1-7 tokens (measured). Only for stand-ins (random weights).
    """
    embeddings = model.get_input_embeddings().weight
    generator = torch.Generator().manual_seed(0)
    u = torch.randn(embeddings.shape[1], generator=generator)
    u = (u / u.norm()).to(embeddings.dtype)
    extra = margin / embeddings.shape[1] ** 0.5
    with torch.no_grad():
        for weight in {id(w): w for w in (embeddings, model.get_output_embeddings().weight)}.values():
            weight += u
            weight[stop_id] += extra * u


def build(hub_id: str, hub_cache: Path, scale: str = "exact", dtype: torch.dtype = torch.bfloat16,
          device: str = "cpu") -> Path:
    """Save a random-weight stand-in of ``hub_id`` into the Hugging Face cache folder ``hub_cache`` under its Hub
    id (a snapshot named by its shape's hash, ``refs/main`` pointing at it); returns the snapshot folder.

    Cached: a snapshot that exists is returned. Saved in bf16, as the real checkpoints are; lessons load it in
    the dtype they choose.
    """
    from transformers import AutoTokenizer

    from helpers import cache, tiny

    tokenizer_dir = tiny.tokenizer_path(version=2 if is_encoder(hub_id) else 1)  # an encoder needs a mask token
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = stand_in_config(hub_id, tokenizer, scale)
    key = cache.entry_key((build, shape, stand_in_config, tilt_towards_stop, auto_class),
                          parts=(hub_id, config.to_dict(), str(dtype), tokenizer_dir.name))
    revision = hashlib.sha1(key.encode()).hexdigest()  # 40 hex digits, like a commit
    repo = Path(hub_cache) / ("models--" + hub_id.replace("/", "--"))
    folder = repo / "snapshots" / revision
    if not (folder / "config.json").exists():
        torch.manual_seed(int(revision[:8], 16))
        with torch.device(device):
            model = auto_class(hub_id).from_config(config, dtype=dtype)
        if scale == "small" and not is_encoder(hub_id):  # an encoder generates nothing: no reply to end
            tilt_towards_stop(model, tokenizer.eos_token_id)

        def save(tmp: Path) -> None:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)

        folder.parent.mkdir(parents=True, exist_ok=True)
        cache.atomic_save(folder, save)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return folder


def build_all(hub_ids: list[str], hub_cache: Path, scale: str = "exact", device: str = "cpu") -> dict[str, str]:
    """Stand-ins of every id in ``hub_cache``; returns ``{hub id: snapshot folder}``."""
    return {hub_id: str(build(hub_id, hub_cache, scale, device=device)) for hub_id in hub_ids}


def environment(hub_cache: Path) -> dict[str, str]:
    """The variables under which a process loads the stand-ins in ``hub_cache`` for their Hub ids, offline."""
    return {"HF_HUB_CACHE": str(Path(hub_cache).resolve()), "HF_HUB_OFFLINE": "1"}
