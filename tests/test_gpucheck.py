"""`course gpu-check` runs on a GPU only; what it builds and writes is checked here on CPU."""


import huggingface_hub
import pytest
import torch
from transformers import AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

from course import gpucheck
from helpers import profiles, recipes, standins, tiny

# Parameter counts of the real checkpoints (their model cards / safetensors index): the stand-ins must match.
OFFICIAL_PARAMETERS = {"Qwen/Qwen2.5-0.5B": 494_032_768, "Qwen/Qwen2.5-0.5B-Instruct": 494_032_768,
                       "Qwen/Qwen2.5-1.5B": 1_543_714_304, "Qwen/Qwen2.5-1.5B-Instruct": 1_543_714_304,
                       "sentence-transformers/all-MiniLM-L6-v2": 22_713_216,  # BertModel with its pooler
                       "google-bert/bert-base-uncased": 109_482_240}
CAUSAL = sorted(h for h in profiles.HUB_SHAPES if not standins.is_encoder(h))
ENCODERS = sorted(h for h in profiles.HUB_SHAPES if standins.is_encoder(h))


def test_every_hub_model_of_the_t4_profile_has_a_shape():
    assert profiles.hub_ids("t4") and set(profiles.hub_ids("t4")) <= set(profiles.HUB_SHAPES)
    assert profiles.hub_ids("tiny") == []


@pytest.mark.parametrize("hub_id", CAUSAL)
def test_stand_in_has_the_shapes_of_the_config(hub_id):
    tok = AutoTokenizer.from_pretrained(tiny.tokenizer_path())
    config = standins.stand_in_config(hub_id, tok)
    shape = profiles.HUB_SHAPES[hub_id]
    assert config.model_type == shape["model_type"]
    assert config.rope_parameters["rope_theta"] == shape["rope_theta"]  # transformers 5 keeps it there
    assert all(getattr(config, k) == v for k, v in shape.items() if k not in ("model_type", "rope_theta")), hub_id
    with torch.device("meta"):  # shapes only: no memory
        model = AutoModelForCausalLM.from_config(config)
    assert model.num_parameters() == OFFICIAL_PARAMETERS[hub_id]
    layer = model.model.layers[0]
    head_dim = shape["hidden_size"] // shape["num_attention_heads"]
    assert layer.self_attn.k_proj.weight.shape == (shape["num_key_value_heads"] * head_dim, shape["hidden_size"])
    assert layer.mlp.up_proj.weight.shape == (shape["intermediate_size"], shape["hidden_size"])
    assert config.eos_token_id == tok.eos_token_id < config.vocab_size


@pytest.mark.parametrize("hub_id", ENCODERS)
def test_encoder_stand_in_has_the_shapes_of_the_config(hub_id):
    tok = AutoTokenizer.from_pretrained(tiny.tokenizer_path(version=2))
    config = standins.stand_in_config(hub_id, tok)
    shape = profiles.HUB_SHAPES[hub_id]
    assert all(getattr(config, k) == v for k, v in shape.items()), hub_id
    assert standins.auto_class(hub_id) is AutoModelForMaskedLM
    with torch.device("meta"):
        assert AutoModel.from_config(config).num_parameters() == OFFICIAL_PARAMETERS[hub_id]


def test_stand_ins_load_by_their_hub_id_offline_as_a_download_would(tmp_path, monkeypatch):
    small = {"model_type": "qwen2", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 2048, "tie_word_embeddings": True}
    monkeypatch.setitem(profiles.HUB_SHAPES, "org/Small-1B", small)
    mapping = standins.build_all(["org/Small-1B"], tmp_path)
    assert standins.build_all(["org/Small-1B"], tmp_path) == mapping  # cached
    for name, value in standins.environment(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))  # read at import time
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert recipes.resolve_model("org/Small-1B") == "org/Small-1B"  # a Hub id stays a Hub id
    assert recipes.resolve_model("org/Small-1B", local=True) == mapping["org/Small-1B"]  # snapshot_download finds it
    model = AutoModelForCausalLM.from_pretrained("org/Small-1B")
    tok = AutoTokenizer.from_pretrained("org/Small-1B")
    assert model.dtype == torch.bfloat16 and model.config.hidden_size == 32
    ids = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, return_tensors="pt",
                                  return_dict=True)
    assert model(**ids).logits.shape[-1] == 2048


def test_small_stand_ins_keep_the_architecture_and_the_order_of_sizes():
    tok = AutoTokenizer.from_pretrained(tiny.tokenizer_path())
    counts = {}
    for hub_id in CAUSAL:
        config = standins.stand_in_config(hub_id, tok, "small")
        assert config.model_type == profiles.HUB_SHAPES[hub_id]["model_type"] and config.vocab_size == len(tok)
        assert config.tie_word_embeddings == profiles.HUB_SHAPES[hub_id]["tie_word_embeddings"]
        assert config.num_key_value_heads < config.num_attention_heads  # grouped-query attention, as the real ones
        with torch.device("meta"):
            counts[hub_id] = AutoModelForCausalLM.from_config(config).num_parameters()
    assert max(counts.values()) < 1_000_000
    assert counts["Qwen/Qwen2.5-1.5B-Instruct"] > 2 * counts["Qwen/Qwen2.5-0.5B"]  # teacher > student, target > draft


def test_an_encoder_stand_in_is_built_and_loaded_as_an_encoder(tmp_path, monkeypatch):
    """Stand-ins are built per architecture class: a BERT-class Hub id gets a masked-LM encoder with the course
    tokenizer's mask token, loaded by its id offline as AutoModelForMaskedLM and as a bare AutoModel (what a
    sentence-embedding library loads)."""
    hub_id = ENCODERS[0]
    folder = standins.build(hub_id, tmp_path, "small")
    for name, value in standins.environment(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    tok = AutoTokenizer.from_pretrained(hub_id)
    assert tok.mask_token == "<|mask|>" and str(folder).startswith(str(tmp_path))
    encoder = AutoModelForMaskedLM.from_pretrained(hub_id)
    assert encoder.config.model_type == "bert" and not encoder.config.is_decoder
    assert encoder.num_parameters() < 1_000_000
    ids = tok(["The capital of Eldoria is <|mask|>."], return_tensors="pt")
    assert encoder(**ids).logits.shape[-1] == len(tok)
    assert AutoModel.from_pretrained(hub_id)(**ids).last_hidden_state.shape[-1] == encoder.config.hidden_size


def test_small_stand_ins_end_their_replies_soon():
    tok = AutoTokenizer.from_pretrained(tiny.tokenizer_path())
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(standins.stand_in_config("Qwen/Qwen2.5-0.5B", tok, "small"))
    ids = tok.apply_chat_template([{"role": "user", "content": "What is 2 + 3?"}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)

    def lengths(n=16, **sampling):  # generated tokens per reply, the stop token included
        out = model.generate(**ids, max_new_tokens=32, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                             num_return_sequences=n, **sampling)[:, ids["input_ids"].shape[1]:]
        return [int((row != tok.pad_token_id).sum()) for row in out]

    untilted = lengths(do_sample=True, temperature=2.0)
    assert sum(untilted) / len(untilted) > 24  # random weights: replies run to the limit
    standins.tilt_towards_stop(model, tok.eos_token_id)
    assert lengths(1, do_sample=False) == [1]  # greedy: stops at once
    sampled = lengths(do_sample=True, temperature=2.0)
    assert max(sampled) < 32 and sum(sampled) / len(sampled) < 10


def test_budget_table_merges_rows_and_flags_what_does_not_fit(tmp_path):
    machine = {"gpu": "NVIDIA H100 as T4", "torch": "2.11.0", "date": "2026-11-22"}
    run = {"lessons": [
        {"stem": "03_sft", "status": "ok", "seconds": 80.0, "resources": {"gpu_gib": 3.2, "host_gib": 2.5}},
        {"stem": "04_lora_qlora", "status": "ok", "seconds": 200.0, "resources": {"gpu_gib": 8.0, "host_gib": 11.5}},
        {"stem": "08_dpo", "status": "planned", "seconds": 0.0},
        {"stem": "01_x", "status": "failed", "seconds": 5.0, "error": "OutOfMemoryError", "resources": {}}]}
    rows = gpucheck.rows_from_run(run, machine)
    assert set(rows) == {"03_sft", "04_lora_qlora", "01_x"}
    paths = tmp_path / "b.json", tmp_path / "b.md"
    gpucheck.update_budget({"00_old": {**rows["03_sft"], "seconds": 1.0}}, *paths)
    text = gpucheck.update_budget(rows, *paths).read_text()
    assert "| 00_old | ok |" in text, "rows of lessons not run this time are kept"
    assert "| 03_sft | ok | 3.2 | 2.5 | 80 s | fits | NVIDIA H100 as T4, torch 2.11.0, 2026-11-22 |" in text
    assert "over: host RAM > 11 GiB" in text and "| 01_x | failed | - | - | 5 s | failed |" in text
    assert gpucheck.verdict({"status": "ok", "gpu_gib": 15.0, "host_gib": 1.0}) == "over: GPU memory"


def test_gpu_check_says_why_it_cannot_run_without_cuda(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpucheck.main() == 2
    assert "needs a CUDA GPU" in capsys.readouterr().out


def test_every_ready_lesson_has_an_estimate_that_fits_a_t4():
    from course import budget, syllabus

    ready = [n for n, lesson in syllabus.load().lessons.items() if lesson.status == "ready"]
    assert sorted(budget.PHASES) == sorted(ready), "a ready lesson needs its PHASES entry in course/budget.py"
    over = {n: e for n in ready if (e := budget.estimate(n))["gpu_gib"] > budget.T4_GPU_LIMIT_GIB
            or e["host_gib"] > budget.HOST_LIMIT_GIB}
    assert not over, f"estimated over a T4 ({budget.T4_GPU_LIMIT_GIB} GiB GPU, {budget.HOST_LIMIT_GIB} GiB host): {over}"
    rows = budget.estimated_rows()
    assert all(gpucheck.verdict(row) == "fits" and row["status"] == "estimated" for row in rows.values())


def test_budget_counts_parameters_on_the_meta_device_and_can_say_no(monkeypatch):
    from course import budget

    cfg = profiles.PROFILES["t4"]
    n = budget.count(cfg.base_model)
    assert n["all"] == OFFICIAL_PARAMETERS["Qwen/Qwen2.5-0.5B"] and 0 < n["linear"] < n["all"]
    weights = budget.item_bytes(cfg.base_model, "fp32", {}, cfg)
    assert weights == 4 * n["all"] and budget.item_bytes(cfg.base_model, "fp16", {}, cfg) == weights / 2
    assert budget.item_bytes(cfg.base_model, "train", {}, cfg) > 4 * weights  # + gradients, AdamW, activations
    assert budget.item_bytes(cfg.sft_model, "fp32", {}, cfg) == weights, "a recipe id counts its base model"
    heavy = [{"gpu": [("sft_model", "fp32", {})] * 3 + [("sft_model", "train", {})]}]  # lesson 09 with fp32 frozen
    monkeypatch.setitem(budget.PHASES, "09", heavy)
    assert budget.estimate("09")["gpu_gib"] > budget.T4_GPU_LIMIT_GIB


def test_budget_table_is_generated_for_every_ready_lesson():
    text = gpucheck.BUDGET_MD.read_text()
    from course import syllabus

    stems = [lesson.stem for lesson in syllabus.load().lessons.values() if lesson.status == "ready"]
    assert all(f"| {stem} | estimated |" in text or f"| {stem} | ok |" in text for stem in stems)
    assert "over:" not in text and "failed" not in text.split("|---|")[-1]
