"""Pipeline stages built from the lessons' recipes, for ``helpers.pipeline``: each writes its artifact under its own
folder and reads the previous stage's from disk. The capstones chain them (issue 25); each is a lesson's technique,
not a copy of its code: SFT with a LoRA adapter is lesson 04's (``recipes.sft_args``), DPO lesson 08's
(``recipes.dpo_args``), merging lesson 04's and 08's ``merge_and_unload``, the GGUF export lesson 14's converter, the
score lesson 03's exact match.

    pipe = Pipeline(run_folder)
    pipe.run("sft", stages.sft, base_model="tiny:base", steps=300, lr=3e-3)
    pipe.run("merge", stages.merge, needs=("sft",))
    pipe.run("dpo", stages.dpo, needs=("merge",), steps=100, lr=2e-3)
    pipe.run("merge_dpo", stages.merge, needs=("dpo",), stage="dpo")
    pipe.run("evaluate", stages.evaluate, needs=("merge", "merge_dpo"), rows=250)

Every stage that makes a model saves it (with its tokenizer) in ``<stage folder>/model``; ``model_dir(inputs)``
finds the one a stage reads.

Introduced for the capstones (issue 25); tested in tests/test_pipeline.py.
"""

from __future__ import annotations

import json
from pathlib import Path

MODEL = "model"  # the subfolder a model-making stage saves into


def model_dir(inputs: dict[str, Path], name: str | None = None) -> Path:
    """The model folder of input stage ``name`` (the only input with a model when None)."""
    found = {n: folder / MODEL for n, folder in inputs.items() if (folder / MODEL / "config.json").exists()}
    if name is not None:
        if name not in found:
            raise KeyError(f"stage {name!r} has no model among the inputs; inputs with one: {sorted(found)}")
        return found[name]
    if len(found) != 1:
        raise ValueError(f"expected exactly one input stage with a model, found {sorted(found)}: name the one to read")
    return next(iter(found.values()))


def _rows(split: str, limit: int | None = None) -> list[dict]:
    from helpers import data

    return data.load_split("sft", split)[:limit]


def _per_task(rows: list[dict], limit: int | None) -> list[dict]:
    """The first rows of each task, ``limit`` in all and as many of each (every row when None)."""
    if limit is None:
        return rows
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    return [r for t in tasks for r in [x for x in rows if x["task"] == t][:max(1, limit // len(tasks))]]


def _lora(r: int):
    """Lesson 04's adapter: rank ``r`` on every linear layer, alpha 2r, no dropout."""
    from peft import LoraConfig

    return LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0, task_type="CAUSAL_LM", target_modules="all-linear")


def _save_adapter(out: Path, model, tok, base_model: str) -> None:
    """A trained adapter, its tokenizer and the base it was trained on, in ``out/adapter`` (what ``merge`` reads)."""
    model.save_pretrained(out / "adapter")
    tok.save_pretrained(out / "adapter")
    (out / "adapter" / "base.json").write_text(json.dumps({"base_model": base_model}))


def sft(out: Path, inputs: dict, base_model: str, steps: int, lr: float, lora_r: int = 16, seed: int = 0,
        profile: str = "tiny", eval_rows: int = 64, load_in_8bit: bool = False) -> dict:
    """LoRA SFT of ``base_model`` (any id ``recipes.load_model`` knows, or an input stage's model) on the course's
    SFT training rows: lesson 04's adapter on every linear layer, lesson 03's config. Saves the adapter (and the
    tokenizer) in ``out/adapter``; returns held-out exact match before and after on ``eval_rows`` test rows and the
    base's memory footprint. ``load_in_8bit``: the base is held in 8 bits (bitsandbytes LLM.int8, lesson 14's int8)
    while the adapter trains in full precision, as lesson 04's QLoRA does in 4 bits; ``merge`` merges the adapter
    into the full-precision base."""
    from datasets import Dataset
    from peft import prepare_model_for_kbit_training
    from transformers import BitsAndBytesConfig
    from trl import SFTTrainer

    from helpers import environment, precision, recipes
    from helpers.evaluation import task_accuracy
    from helpers.profiles import get_profile

    source = str(model_dir(inputs)) if inputs else base_model
    device = environment.pick_device(verbose=False)
    cfg, prec = get_profile(profile), precision.choose(device)
    quantized = {"quantization_config": BitsAndBytesConfig(load_in_8bit=True)} if load_in_8bit else {}
    model, tok = recipes.load_model(source, dtype=prec.load_dtype, **quantized)
    if load_in_8bit:  # bitsandbytes placed it; norms and head kept in full precision for training
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    else:
        model.to(device)  # scored before training on the device the trainer uses
    footprint = model.get_memory_footprint()
    test = _rows("test", eval_rows)
    before = task_accuracy(model, tok, test)["accuracy"]
    train = Dataset.from_list([{"messages": r["messages"]} for r in _rows("train")])
    args = recipes.sft_args(str(out / "trainer"), cfg, steps, lr, prec, seed, disable_tqdm=True)
    environment.set_seed(seed)
    trainer = SFTTrainer(model=model, args=args, train_dataset=train, processing_class=tok, peft_config=_lora(lora_r))
    trainer.train()
    _save_adapter(out, trainer.model, tok, source)
    after = task_accuracy(trainer.model, tok, test)["accuracy"]
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    return {"base_model": source, "accuracy_before": before, "accuracy_after": after, "loss_first": losses[0],
            "loss_last": losses[-1], "steps": steps, "base_8bit": load_in_8bit, "base_footprint_mb": footprint / 1e6}


def merge(out: Path, inputs: dict, stage: str = "sft", probe_rows: int = 8) -> dict:
    """Merge stage ``stage``'s LoRA adapter into its base (``merge_and_unload``) and save a standalone model in
    ``out/model``; returns the largest logit difference between the reloaded model and the adapter on a few test
    prompts, and its bound in this precision (lesson 04's check)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from helpers import environment, precision, recipes

    adapter = inputs[stage] / "adapter"
    base = json.loads((adapter / "base.json").read_text())["base_model"]
    device = environment.pick_device(verbose=False)
    prec = precision.choose(device)
    model, tok = recipes.load_model(base, dtype=prec.load_dtype)[0].to(device), recipes.load_tokenizer(str(adapter))
    peft_model = PeftModel.from_pretrained(model, adapter).eval()
    texts = [tok.apply_chat_template(r["messages"][:1], tokenize=False, add_generation_prompt=True)
             for r in _rows("test", probe_rows)]
    tok.padding_side = "left"
    probe = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    with torch.no_grad():
        adapter_logits = peft_model(**probe).logits.float()
    peft_model.merge_and_unload().save_pretrained(out / MODEL)
    tok.save_pretrained(out / MODEL)
    reloaded = AutoModelForCausalLM.from_pretrained(out / MODEL, dtype=prec.load_dtype).to(device).eval()
    with torch.no_grad():
        diff = (reloaded(**probe).logits.float() - adapter_logits).abs().max().item()
    return {"max_logit_diff": diff, "logit_tolerance": prec.logits_rtol * adapter_logits.abs().max().item()}


def dpo(out: Path, inputs: dict, steps: int, lr: float, beta: float = 0.1, nll_weight: float = 1.0, lora_r: int = 16,
        seed: int = 0, profile: str = "tiny", eval_rows: int | None = None) -> dict:
    """Lesson 08's DPO (``recipes.dpo_args``: DPO plus ``nll_weight`` times the chosen reply's NLL) with a LoRA
    adapter on the input stage's model, on the shipped preference pairs. Saves the adapter (and the tokenizer) in
    ``out/adapter``, which ``merge(stage="dpo")`` merges; returns, on the held-out pairs' prompts (``eval_rows`` of
    them, as many of each task; all when None), the hallucination rate (unknown countries not declined) and the
    accuracy on the other tasks, before and after."""
    from trl import DPOTrainer

    from helpers import alignment, data, environment, precision, recipes
    from helpers.evaluation import task_accuracy
    from helpers.profiles import get_profile

    source = str(model_dir(inputs))
    device = environment.pick_device(verbose=False)
    cfg, prec = get_profile(profile), precision.choose(device)
    model, tok = recipes.load_model(source, dtype=prec.load_dtype)
    model.to(device)
    test = _per_task(alignment.as_sft_rows(data.load_split("preference", "test")), eval_rows)

    def measure(policy) -> dict:
        acc = task_accuracy(policy, tok, test)
        known = {t: a for t, a in acc["per_task"].items() if t != "unknown"}
        return {"hallucination": alignment.hallucination_rate(acc["replies"], test), "per_task": known,
                "accuracy": sum(known.values()) / len(known)}

    before = measure(model)
    args = recipes.dpo_args(str(out / "trainer"), cfg, steps, lr, beta, prec, seed, nll_weight=nll_weight,
                            disable_tqdm=True)
    environment.set_seed(seed)
    trainer = DPOTrainer(model=model, args=args, train_dataset=recipes.preference_pairs(seed), processing_class=tok,
                         peft_config=_lora(lora_r))
    trainer.train()
    _save_adapter(out, trainer.model, tok, source)
    after = measure(trainer.model)
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    return {"base_model": source, "hallucination_before": before["hallucination"],
            "hallucination_after": after["hallucination"], "accuracy_before": before["accuracy"],
            "accuracy_after": after["accuracy"], "per_task_after": after["per_task"], "loss_first": losses[0],
            "loss_last": losses[-1], "steps": steps}


def evaluate(out: Path, inputs: dict, rows: int = 250) -> dict:
    """Held-out exact match (overall and per task) of every input stage's model on the first ``rows`` test rows;
    the replies go to ``out/replies.json``."""
    from helpers import environment, recipes
    from helpers.evaluation import task_accuracy

    device = environment.pick_device(verbose=False)
    results, replies = {}, {}
    for name, folder in inputs.items():
        if not (folder / MODEL / "config.json").exists():
            continue
        model, tok = recipes.load_model(str(folder / MODEL))
        acc = task_accuracy(model.to(device).eval(), tok, _rows("test", rows))
        results[name] = {"accuracy": acc["accuracy"], "per_task": acc["per_task"]}
        replies[name] = acc["replies"]
    if not results:
        raise ValueError(f"no input stage has a model to evaluate: {sorted(inputs)}")
    (out / "replies.json").write_text(json.dumps(replies, indent=1))
    return results


def gguf(out: Path, inputs: dict, outtype: str = "q8_0") -> dict:
    """The input stage's model as a GGUF file (lesson 14's converter) in ``out``; its size against the model's
    safetensors."""
    from helpers import quantization

    source = model_dir(inputs)
    path = quantization.to_gguf(source, out / f"model-{outtype}.gguf", outtype)
    weights = sum(f.stat().st_size for f in source.glob("*.safetensors"))
    return {"outtype": outtype, "gguf_mb": path.stat().st_size / 1e6, "size_ratio": weights / path.stat().st_size}
