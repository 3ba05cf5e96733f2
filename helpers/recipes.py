"""Training recipes whose results later lessons share, built once and cached on disk.

``sft_model(base, profile)`` is lesson 03's supervised fine-tuning (full weights, ``SFTTrainer``, assistant-only
loss on ``data/sft/train``) applied to any base model, tiny or from the Hub. Lesson 04 compares its adapters
against it, and the alignment lessons start from it, without re-training SFT in every notebook. ``tiny:sft``
(``resolve_model``) is this recipe on ``tiny:base`` with the tiny profile.

Introduced in 04_lora_qlora.ipynb; the same recipe is written out step by step in 03_sft.ipynb.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from helpers import tiny
from helpers.cache import atomic_save, cache_dir, entry_key, shared_seed
from helpers.paths import DATA_DIR
from helpers.profiles import PROFILES, Profile, downloaded_id, get_profile, split_recipe

SHARED = ("base", "sft", "rm")  # the cached models lessons start from; the course runner builds them before any notebook
ALIASES = {"tiny:sft": "sft:tiny:base", "tiny:rm": "rm:tiny:sft", "tiny:dpo": "dpo:tiny:sft"}


def sft_args(output_dir: str, cfg: Profile, steps: int, lr: float, precision, seed: int = 0,
             report_to: str = "none", **overrides):
    """The ``SFTConfig`` every course SFT run uses (lesson 03's), for a profile, step count and learning rate.

    Introduced in 04_lora_qlora.ipynb.
    """
    from trl import SFTConfig

    return SFTConfig(output_dir=output_dir, max_steps=steps, per_device_train_batch_size=cfg.batch_size,
                     learning_rate=lr, lr_scheduler_type="cosine", warmup_steps=min(20, steps // 10),
                     max_length=cfg.seq_len, assistant_only_loss=True, logging_steps=max(1, steps // 40),
                     save_strategy="no", report_to=report_to, seed=seed, activation_checkpointing=False,
                     **precision.trainer_args, **overrides)


def load_model(model_id: str, auto_class=None, **kwargs):
    """(model, tokenizer) of any model id the course knows (``resolve_model``: tiny, recipe or Hub), for training
    or inference: ``kwargs`` go to ``from_pretrained`` (``dtype``, ``quantization_config``, ...); the tokenizer has
    the course chat template where the model's lacks generation markers (TRL's assistant-only loss needs them),
    and a pad token. ``auto_class``: what to load it as, ``AutoModelForCausalLM`` unless given (an encoder:
    ``AutoModelForMaskedLM`` or ``AutoModel``). Introduced in 04_lora_qlora.ipynb.
    """
    import transformers

    auto_class = auto_class or transformers.AutoModelForCausalLM
    return auto_class.from_pretrained(resolve_model(model_id), **kwargs), load_tokenizer(model_id)


def load_tokenizer(model_id: str):
    """The tokenizer of ``load_model`` alone (course chat template, pad token), without loading the weights."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve_model(model_id))
    if "{% generation %}" not in (tok.chat_template or ""):
        tok.chat_template = tiny.CHAT_TEMPLATE
    tok.pad_token = tok.pad_token or tok.eos_token
    return tok


def _key(*parts, functions: tuple = (), split: str = "sft") -> str:
    return entry_key((sft_args, load_model, load_tokenizer, sft_model, _save_trained, _entry, *functions),
                     files=(DATA_DIR / split / "train.jsonl",), parts=(parts,))


def _entry(kind: str, model_id: str, *parts, functions: tuple = (), split: str = "sft") -> Path:
    """The cache folder of recipe ``kind`` applied to ``model_id`` (its resolved folder and ``parts`` in the key).

    A Hub model's folder is its downloaded snapshot, named by its commit: a new revision, or a stand-in of it
    (``helpers.standins``), is another entry, never the cached result of the other."""
    key = _key(model_id, Path(resolve_model(model_id, local=True)).name, *parts, functions=functions, split=split)
    return cache_dir() / f"{kind}-{model_id.replace('/', '--').replace(':', '-')}-{key}"


def preference_pairs(seed: int):
    """The shipped preference training pairs as a shuffled ``Dataset`` (prompt, chosen, rejected): the reward model's
    and DPO's training data. Introduced in 07_reward_model.ipynb."""
    from datasets import Dataset

    from helpers import data

    rows = data.load_split("preference", "train")
    return Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows]).shuffle(seed=seed)


def _save_trained(folder: Path, trainer, tok, start: float, **info) -> Path:
    """Save a recipe's trained model and tokenizer into its cache ``folder`` atomically, with ``build.json``."""
    import torch

    info |= {"losses": [e["loss"] for e in trainer.state.log_history if "loss" in e],
             "train_seconds": round(time.perf_counter() - start, 1), "torch": torch.__version__,
             "cpu_capability": torch.backends.cpu.get_cpu_capability()}

    def save(tmp: Path) -> None:
        trainer.model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "build.json").write_text(json.dumps(info, indent=1))

    atomic_save(folder, save)
    return folder


def sft_model(base_model: str, cfg: Profile, seed: int | None = None, progress: bool = True,
              lora_r: int | None = None) -> Path:
    """Folder of ``base_model`` fine-tuned with lesson 03's recipe (``cfg.sft_steps`` at ``cfg.sft_lr``), cached.

    The first call trains (on the GPU when there is one) and saves model, tokenizer and ``build.json``
    (steps, losses, seconds); later calls return the folder. ``seed`` None: the course seed
    (``helpers.cache.shared_seed``). ``lora_r``: train a LoRA adapter of that rank on every linear layer at
    ``cfg.lora_lr`` instead of all weights, then merge it (a model whose full fine-tuning does not fit the GPU).
    On a T4 (estimated from FLOPs, not measured): ~3 min for Qwen2.5-0.5B, ~5 min with LoRA for 1.5B.
    Introduced in 04_lora_qlora.ipynb.
    """
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTTrainer

    from helpers import data, environment, precision

    seed = shared_seed() if seed is None else seed
    lora = () if lora_r is None else ("lora", lora_r, cfg.lora_lr)  # full fine-tuning keeps its cache key
    folder = _entry("sft", base_model, cfg.sft_steps, cfg.sft_lr, cfg.batch_size, cfg.seq_len, seed, *lora)
    if (folder / "build.json").exists():
        return folder
    start = time.perf_counter()
    prec = precision.choose(environment.pick_device(verbose=False))
    model, tok = load_model(base_model, dtype=prec.load_dtype)
    train = Dataset.from_list([{"messages": r["messages"]} for r in data.load_split("sft", "train")])
    lr = cfg.sft_lr if lora_r is None else cfg.lora_lr
    args = sft_args(tempfile.mkdtemp(prefix="course-sft-"), cfg, cfg.sft_steps, lr, prec, seed,
                    disable_tqdm=not progress)
    peft_config = None if lora_r is None else LoraConfig(r=lora_r, lora_alpha=2 * lora_r, lora_dropout=0.0,
                                                         task_type="CAUSAL_LM", target_modules="all-linear")
    environment.set_seed(seed)
    trainer = SFTTrainer(model=model, args=args, train_dataset=train, processing_class=tok, peft_config=peft_config)
    trainer.train()
    if lora_r is not None:
        trainer.model = trainer.model.merge_and_unload()
    return _save_trained(folder, trainer, tok, start, base_model=base_model, steps=cfg.sft_steps, lr=lr,
                         lora_r=lora_r, seed=seed, precision=prec.name)


def reward_model(sft_model_id: str, cfg: Profile, seed: int | None = None, progress: bool = True) -> Path:
    """Folder of a Bradley–Terry reward model on the shipped preference pairs, cached: lesson 07's recipe
    (``AutoModelForSequenceClassification`` from the SFT model, score head started at zero, ``RewardTrainer``,
    ``cfg.rm_steps`` at ``cfg.rm_lr``) without its on-policy pairs. Lessons 09 and 10 score rollouts with it.

    ``tiny:rm`` (``resolve_model``) is this recipe on ``tiny:sft``; ``seed`` None: the course seed.
    Introduced in 09_ppo_rlhf.ipynb.
    """
    import torch
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    from helpers import environment, precision

    seed = shared_seed() if seed is None else seed
    folder = _entry("rm", sft_model_id, cfg.rm_steps, cfg.rm_lr, cfg.batch_size, cfg.seq_len, seed,
                    functions=(reward_model, preference_pairs), split="preference")
    if (folder / "build.json").exists():
        return folder
    start = time.perf_counter()
    prec = precision.choose(environment.pick_device(verbose=False))
    tok = load_tokenizer(sft_model_id)  # the weights come from the SFT model's folder, into a classifier
    model = AutoModelForSequenceClassification.from_pretrained(resolve_model(sft_model_id), num_labels=1,
                                                               dtype=prec.load_dtype)
    model.config.pad_token_id = tok.pad_token_id
    torch.nn.init.zeros_(model.score.weight)
    args = RewardConfig(output_dir=tempfile.mkdtemp(prefix="course-rm-"), max_steps=cfg.rm_steps,
                        learning_rate=cfg.rm_lr, per_device_train_batch_size=cfg.batch_size,
                        lr_scheduler_type="cosine", warmup_steps=20, max_length=cfg.seq_len,
                        logging_steps=max(1, cfg.rm_steps // 30), save_strategy="no", seed=seed, report_to="none",
                        activation_checkpointing=False, disable_tqdm=not progress, **prec.trainer_args)
    environment.set_seed(seed)
    trainer = RewardTrainer(model=model, args=args, train_dataset=preference_pairs(seed), processing_class=tok)
    trainer.train()
    return _save_trained(folder, trainer, tok, start, sft_model=sft_model_id, steps=cfg.rm_steps, lr=cfg.rm_lr,
                         seed=seed, precision=prec.name)


def dpo_args(output_dir: str, cfg: Profile, steps: int, lr: float, beta: float, precision, seed: int = 0,
             nll_weight: float = 1.0, **overrides):
    """The ``DPOConfig`` of lesson 08's recipe: DPO's sigmoid loss plus ``nll_weight`` times the chosen reply's NLL,
    cosine schedule, the profile's batch and length. Introduced in 08_dpo.ipynb (for the recipe and the capstones'
    stage)."""
    from trl import DPOConfig

    return DPOConfig(output_dir=output_dir, max_steps=steps, learning_rate=lr, beta=beta,
                     per_device_train_batch_size=cfg.batch_size, max_length=cfg.seq_len, lr_scheduler_type="cosine",
                     warmup_steps=10, logging_steps=max(1, steps // 20), save_strategy="no", seed=seed,
                     report_to="none", loss_type=["sigmoid", "sft"], loss_weights=[1.0, nll_weight],
                     activation_checkpointing=False, **precision.trainer_args, **overrides)


def dpo_model(sft_model_id: str, cfg: Profile, seed: int | None = None, progress: bool = True) -> Path:
    """Folder of ``sft_model_id`` after lesson 08's preference tuning, merged and cached: ``DPOTrainer`` with a LoRA
    adapter (r 16, all linear layers), DPO plus the NLL of the chosen reply (weights 1 and 1), ``cfg.dpo_steps``
    at ``cfg.dpo_lr`` and ``β = cfg.dpo_beta`` on the shipped preference pairs, then the adapter merged.

    ``tiny:dpo`` (``resolve_model``) is this recipe on ``tiny:sft``: the aligned model lesson 12 compares with the
    base and SFT models; ``seed`` None: the course seed. Introduced in 12_evaluation.ipynb.
    """
    from peft import LoraConfig
    from trl import DPOTrainer

    from helpers import environment, precision

    seed = shared_seed() if seed is None else seed
    folder = _entry("dpo", sft_model_id, cfg.dpo_steps, cfg.dpo_lr, cfg.dpo_beta, cfg.batch_size, cfg.seq_len,
                    seed, functions=(dpo_model, dpo_args, preference_pairs), split="preference")
    if (folder / "build.json").exists():
        return folder
    start = time.perf_counter()
    prec = precision.choose(environment.pick_device(verbose=False))
    model, tok = load_model(sft_model_id, dtype=prec.load_dtype)
    args = dpo_args(tempfile.mkdtemp(prefix="course-dpo-"), cfg, cfg.dpo_steps, cfg.dpo_lr, cfg.dpo_beta, prec, seed,
                    disable_tqdm=not progress)
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, task_type="CAUSAL_LM", target_modules="all-linear")
    environment.set_seed(seed)
    trainer = DPOTrainer(model=model, args=args, train_dataset=preference_pairs(seed), processing_class=tok,
                         peft_config=lora)
    trainer.train()
    trainer.model = trainer.model.merge_and_unload()
    return _save_trained(folder, trainer, tok, start, sft_model=sft_model_id, steps=cfg.dpo_steps, lr=cfg.dpo_lr,
                         beta=cfg.dpo_beta, seed=seed, precision=prec.name)


def resolve_model(model_id: str, progress: bool = True, local: bool = False) -> str:
    """Map a ``tiny:NAME`` or recipe id to the folder of the course's cached model, building it on first use; any
    other id (Hub or path) passes through.

    ``tiny:base``, ``tiny:draft``, ``tiny:large`` are pretrained by ``helpers.tiny.model_path``; ``tiny:sft`` is
    ``tiny:base`` after lesson 03's fine-tuning (``sft_model``), ``tiny:rm`` a reward model trained from it with
    lesson 07's recipe (``reward_model``), ``tiny:dpo`` it after lesson 08's preference tuning, merged
    (``dpo_model``); these three are built with the course seed (``helpers.cache.shared_seed``: the lesson's
    ``SEED``), each seed its own cache entry. They are aliases of the recipe ids ``sft:tiny:base``,
    ``rm:tiny:sft``, ``dpo:tiny:sft``: ``RECIPE:ID`` (``helpers.profiles.RECIPES``) applies a recipe to any model with
    the hyperparameters of its profile (``recipe_profile``), e.g. the t4 profile's ``sft:`` on its base model.

    ``local=True``: always a folder on this
    machine, a Hub id downloaded first (``huggingface_hub.snapshot_download``, cached), for tools that read files,
    not ids (llama.cpp's GGUF converter, lesson 14). Introduced in 03_sft.ipynb.
    """
    model_id = ALIASES.get(model_id, model_id)
    recipe, source = split_recipe(model_id)
    if recipe:
        cfg = recipe_profile(source)
        build = {"sft": sft_model, "rm": reward_model, "dpo": dpo_model,
                 "sft-lora": lambda *a, **kw: sft_model(*a, **kw, lora_r=cfg.lora_r)}[recipe]
        folder = str(build(source, cfg, progress=progress))
        import torch

        if torch.cuda.is_available():  # a build's trainer leaves GPU blocks cached: hand them back
            from helpers import environment

            environment.free_memory("cuda")
        return folder
    if model_id.startswith("tiny:"):
        return str(tiny.model_path(model_id.split(":", 1)[1], progress=progress))
    if local and not Path(model_id).is_dir():
        from huggingface_hub import snapshot_download

        return snapshot_download(model_id)
    return model_id


def recipe_profile(model_id: str) -> Profile:
    """The profile whose hyperparameters a recipe uses on ``model_id``: ``tiny`` for the course's models, else
    ``t4`` (step counts capped in a stand-in run, ``profiles.get_profile``)."""
    return PROFILES["tiny"] if downloaded_id(model_id).startswith("tiny:") else get_profile("t4")


def shared_ids(profile: str) -> dict[str, str]:
    """The model each shared name (``SHARED`` and the syllabus' ``models``) means in ``profile``."""
    cfg = PROFILES[profile]
    return {"base": cfg.base_model, "sft": cfg.sft_model, "rm": f"rm:{cfg.sft_model}", "dpo": f"dpo:{cfg.sft_model}",
            "teacher": cfg.teacher_model, "student": cfg.student_model, "large": cfg.inference_model,
            "draft": cfg.draft_model, "encoder": cfg.encoder_model}


def build_shared(names: tuple[str, ...] = SHARED, profile: str = "tiny") -> dict[str, float]:
    """Build (or find in the cache) the shared models of ``profile`` with the course seed; returns the seconds each
    took. A Hub model is not downloaded here (``from_pretrained`` does it); recipes on it are trained.

    Called once by the course runner before notebooks run, so parallel lessons never build the same model
    twice at once. Introduced in 00_welcome.ipynb (for maintainers).
    """
    ids = shared_ids(profile)
    seconds = {}
    for name in ("tokenizer", *names):
        start = time.perf_counter()
        if name == "tokenizer":
            tiny.tokenizer_path()
        elif ids[name].startswith("tiny:") or split_recipe(ids[name])[0]:
            resolve_model(ids[name], progress=False)
        seconds[name] = round(time.perf_counter() - start, 1)
    return seconds
