"""The estimated T4 budget of every ready lesson: GPU memory and host RAM from the models each lesson holds at once.

Each lesson's ``PHASES`` list what is resident together at its heaviest moments (read from the notebook's cells): a
model by its ``t4`` profile field, and how it is held. Parameters are counted on the meta device from the models'
configs (``helpers.profiles.HUB_SHAPES``, ``helpers.tiny.SIZES``): no hand arithmetic, no download. Bytes per
parameter at the t4 dtypes (fp32 weights, fp16 compute, ``helpers.precision``):

- ``fp32`` / ``fp16``: weights only (inference); ``int8`` / ``nf4``: bitsandbytes, linear layers at 1 / 0.5 bytes
  (plus nf4's block scales), embeddings in fp16;
- ``train``: full fine-tuning with AdamW: fp32 weights, gradients and two moments (16 bytes), plus activations;
- ``lora`` / ``nf4-lora``: frozen fp32 (or nf4) weights and a rank-``lora_r`` adapter on every linear layer trained
  with AdamW, plus activations;
- activations of a training step: its tokens × layers × hidden × 34 bytes (fp16, attention by SDPA's
  memory-efficient kernel) and the logits, fp16 then fp32 with their gradient (10 bytes per token × vocab). A
  step's tokens: ``batch_size`` rows of ``CHAT_ROW_TOKENS`` (the course's chats, padded to the batch's longest), twice
  that for preference pairs, a full ``seq_len`` per row when pretraining; an item's ``tokens`` says otherwise.

Host RAM: the Python process with torch, CUDA and transformers loaded (``HOST_BASE_GIB``), plus the larger of the
largest model as loaded before it moves to the GPU and what a lesson keeps on the CPU at once (``host`` items).
Every number is an estimate, marked so in ``colab/t4-budget.md``; ``python -m course gpu-check`` replaces a row by
its measurement. ``tests/test_gpucheck.py`` fails when an estimate exceeds a T4.
"""

from __future__ import annotations

from functools import cache

from helpers.profiles import HUB_SHAPES, PROFILES, downloaded_id

GIB = 2**30
T4_GPU_LIMIT_GIB = 14.0  # a T4's 14.74 GiB less the CUDA context and the allocator's fragmentation
HOST_LIMIT_GIB = 11.0  # a free Colab's 12.7 GiB less the notebook server and the OS
HOST_BASE_GIB = 2.5  # python + torch (CUDA) + transformers + trl imported
CUDA_CONTEXT_GIB = 0.4
CHAT_ROW_TOKENS = 48  # the longest SFT / preference chat is 40 / 42 tokens with the course tokenizer (fewer with Qwen's)
BYTES = {"fp32": 4, "fp16": 2, "train": 16}

# lesson → phases; a phase: {"gpu": [(profile field, kind, config overrides)], "host": [...]} (items resident at once)
PHASES: dict[str, list[dict]] = {
    "00": [],
    "01": [{"gpu": [("size:small", "train", {"tokens": "seq_len"})]}],
    "03": [{"gpu": [("base_model", "train", {})]}],
    "04": [{"gpu": [("base_model", "train", {})]},  # the full fine-tuning recipe
           {"gpu": [("base_model", "lora", {})]},
           {"gpu": [("qlora_model", "nf4-lora", {})]}],
    "05": [],
    "06": [{"gpu": [("teacher_model", "fp16", {}), ("student_model", "train", {})],
            "host": [("student_model", "fp32", {})]},  # the on-policy snapshot waits in host RAM
           {"gpu": [("teacher_model", "fp16", {}), ("student_model", "train", {})],  # GKD on the snapshot
            "host": [("student_model", "fp32", {}), ("student_model", "fp32", {})]}],  # hard and KD students
    "07": [{"gpu": [("sft_model", "fp32", {}), ("sft_model", "train", {})]}],  # policy answers, reward model trains
    "08": [{"gpu": [("sft_model", "lora", {"pairs": True}), ("sft_model", "lora", {"pairs": True})]}],  # DPO kept, ORPO
    # PPO: 32 rollouts a step in 2 minibatches; RLOO: 32 completions (8 tokens each) of 8 prompts
    "09": [{"gpu": [("sft_model", "fp16", {}), ("sft_model", "fp16", {}), ("sft_model", "fp32", {}),
                    ("sft_model", "train", {"tokens": 16 * CHAT_ROW_TOKENS})]},  # reference, RM, PPO policy, β = 0
           {"gpu": [("sft_model", "fp16", {}), ("sft_model", "fp16", {}), ("sft_model", "fp32", {}),
                    ("sft_model", "train", {"tokens": 32 * CHAT_ROW_TOKENS, "logit_tokens": 32 * 8})],  # RLOO: ref,
            # RM, TRL's reference, its policy
            "host": [("sft_model", "fp32", {}), ("sft_model", "fp32", {})]}],  # both PPO policies
    # 32 completions of 8 tokens a step; β = 0: no reference model
    "10": [{"gpu": [("sft_model", "train", {"tokens": 32 * CHAT_ROW_TOKENS, "logit_tokens": 32 * 8})]}],
    "12": [{"gpu": [("base_model", "fp16", {}), ("sft_model", "fp16", {}), ("sft_model", "fp16", {}),
                    ("inference_model", "fp16", {}), ("sft_model", "fp16", {})]}],  # 3 models, judge, reward model
    "13": [{"gpu": [("inference_model", "fp32", {}),
                    ("inference_model", "fp32", {"num_hidden_layers": 2, "num_key_value_heads": "heads"})]}],
    "14": [{"gpu": [("inference_model", "fp32", {}), ("inference_model", "int8", {})]},
           {"gpu": [("inference_model", "fp32", {})], "host": [("inference_model", "fp32", {})]}],  # f32 GGUF
    "15": [{"gpu": [("inference_model", "fp32", {}), ("draft_model", "fp32", {})]}],
    "16": [{"gpu": [("inference_model", "fp16", {})]}],  # the notebook's copy; the server is another process
    "17": [],  # tiny:draft on CPU processes in every profile
    "18": [{"gpu": [("sft_model", "fp32", {}),  # the dense model, the recovery's teacher, and the pruned one (KEEP)
                    ("sft_model", "train", {"intermediate_size": 0.15})]}],
    # the masked-LM encoder stays (fill-mask), the embedder's trainer keeps its AdamW state, the reader trains
    "02": [{"gpu": [("encoder_model", "fp32", {}), ("encoder_model", "train", {"tokens": 2 * 32 * 24}),
                    ("sft_model", "train", {})]}],
    # the answer-only student beside the trace student's SFT, then GRPO: 64 completions of up to 40 tokens, taken in
    # t4's reasoning_rl_accumulation = 4 passes of 16
    "11": [{"gpu": [("reasoning_model", "fp32", {}), ("reasoning_model", "train", {})]},
           {"gpu": [("reasoning_model", "train", {"tokens": 16 * (CHAT_ROW_TOKENS + 40), "logit_tokens": 16 * 40})]}],
    # one stage at a time: SFT's adapter on the base (8-bit there: counted as lora, an upper bound), DPO's on the
    # merged SFT model, then a served copy (another process, the same GPU) beside nothing the notebook still holds
    "19": [{"gpu": [("base_model", "lora", {})]},
           {"gpu": [("base_model", "lora", {"pairs": True})]},
           {"gpu": [("base_model", "fp16", {})]}],
    # one stage at a time: DAPT's adapter on the base, the Q&A adapter on the merged DAPT model (and again on the
    # base, SFT only), then the 8-bit model served (another process) beside nothing the notebook still holds
    "20": [{"gpu": [("base_model", "lora", {})]},
           {"gpu": [("base_model", "fp16", {})]}],
}


@cache
def _shape(model: str) -> dict:
    """Config fields of a profile's model (or ``size:NAME`` of helpers.tiny.SIZES)."""
    if model.startswith("size:"):
        from helpers import tiny

        size = tiny.SIZES[model.removeprefix("size:")]
        return {"model_type": size.architecture, "vocab_size": 32000, "tie_word_embeddings": True, **size.shape()}
    return dict(HUB_SHAPES[downloaded_id(model)])


def count(model: str, overrides: tuple = ()) -> dict:
    """Parameters of ``model`` (meta device): all, in linear layers, in the embeddings; and its config."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM

    from helpers.standins import ENCODER_TYPES

    fields = _shape(model) | dict(overrides)
    if fields.get("num_key_value_heads") == "heads":
        fields["num_key_value_heads"] = fields["num_attention_heads"]
    config = AutoConfig.for_model(**fields)
    with torch.device("meta"):
        net = (AutoModelForMaskedLM if fields["model_type"] in ENCODER_TYPES else AutoModelForCausalLM).from_config(config)
    layers = [m for name, m in net.named_modules() if isinstance(m, torch.nn.Linear) and name != "lm_head"]
    return {"all": net.num_parameters(), "linear": sum(m.weight.numel() for m in layers),
            "lora": sum(16 * (m.in_features + m.out_features) for m in layers),  # rank 16 on every linear layer
            "config": fields}


def item_bytes(model: str, kind: str, overrides: dict, cfg) -> float:
    """Bytes of one resident item (see the module's docstring)."""
    overrides = dict(overrides)
    tokens = overrides.pop("tokens", cfg.batch_size * CHAT_ROW_TOKENS * (2 if overrides.pop("pairs", False) else 1))
    tokens = cfg.batch_size * cfg.seq_len if tokens == "seq_len" else tokens
    logit_tokens = overrides.pop("logit_tokens", tokens)  # TRL's GRPO/RLOO keep the completions' logits only
    if isinstance(overrides.get("intermediate_size"), float):  # a share of the model's MLP width
        overrides["intermediate_size"] = round(overrides["intermediate_size"] * _shape(model)["intermediate_size"])
    n = count(model, tuple(sorted(overrides.items())))
    c = n["config"]
    activations = tokens * c["num_hidden_layers"] * c["hidden_size"] * 34 + logit_tokens * c["vocab_size"] * 10
    other = n["all"] - n["linear"]
    if kind in BYTES:
        return n["all"] * BYTES[kind] + (activations if kind == "train" else 0)
    if kind == "int8":
        return n["linear"] * 1.0 + other * 2
    if kind == "nf4":
        return n["linear"] * 0.5625 + other * 2  # 4 bits + block scales
    if kind == "lora":
        return n["all"] * 4 + n["lora"] * 16 + activations
    if kind == "nf4-lora":
        return n["linear"] * 0.5625 + other * 4 + n["lora"] * 16 + activations
    raise ValueError(f"unknown kind {kind!r}")


def estimate(lesson: str, profile: str = "t4") -> dict:
    """``{"gpu_gib", "host_gib"}``: the heaviest phase's GPU memory and host RAM of ``lesson`` on ``profile``."""
    cfg = PROFILES[profile]

    def model_of(field: str) -> str:
        return field if field.startswith("size:") else getattr(cfg, field)

    gpu, host = 0.0, HOST_BASE_GIB
    for phase in PHASES[lesson]:
        on_gpu = sum(item_bytes(model_of(f), kind, o, cfg) for f, kind, o in phase.get("gpu", []))
        on_host = sum(item_bytes(model_of(f), kind, o, cfg) for f, kind, o in phase.get("host", []))
        loading = max((item_bytes(model_of(f), "fp32" if kind in ("train", "lora") else kind, o, cfg)
                       for f, kind, o in phase.get("gpu", [])), default=0)  # as loaded, before .to("cuda")
        gpu = max(gpu, on_gpu / GIB + CUDA_CONTEXT_GIB)
        host = max(host, HOST_BASE_GIB + max(on_host, loading) / GIB)
    return {"gpu_gib": round(gpu, 2) if PHASES[lesson] else 0.0, "host_gib": round(host, 2)}


def estimated_rows() -> dict[str, dict]:
    """A budget row (``course.gpucheck`` format) per lesson with phases, marked estimated."""
    from course import syllabus

    rows = {}
    for number, lesson in syllabus.load().lessons.items():
        if lesson.status == "ready" and number in PHASES:  # a lesson without PHASES fails tests/test_gpucheck.py
            rows[lesson.stem] = {"status": "estimated", "seconds": None, **estimate(number)}
    return rows
