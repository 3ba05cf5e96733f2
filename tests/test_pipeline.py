"""helpers.pipeline with toy stages: artifacts on disk, skip when done, rerun what a change touches, no half-made
stage after a failure, one report."""

import json

import pytest

from helpers.paths import DATA_DIR
from helpers.pipeline import Pipeline

CALLS: list[str] = []


def make_data(out, inputs, rows=3):
    CALLS.append("data")
    (out / "rows.txt").write_text("\n".join(str(i) for i in range(rows)))
    return {"rows": rows}


def train(out, inputs, lr=0.1):
    CALLS.append("train")
    rows = (inputs["data"] / "rows.txt").read_text().split()
    (out / "model.txt").write_text(str(len(rows) * lr))
    return {"loss": 1 / (1 + len(rows) * lr), "per_task": {"add": 0.5}}


def evaluate(out, inputs):
    CALLS.append("evaluate")
    return {"score": float((inputs["train"] / "model.txt").read_text())}


def broken(out, inputs):
    (out / "half.bin").write_bytes(b"x")
    raise RuntimeError("out of memory")


def build(root, lr=0.1, rows=3):
    pipe = Pipeline(root, verbose=False)
    pipe.run("data", make_data, rows=rows)
    pipe.run("train", train, needs=("data",), lr=lr)
    pipe.run("evaluate", evaluate, needs=("train",))
    return pipe


def test_a_resumed_run_skips_every_done_stage_and_reproduces_the_results(tmp_path):
    CALLS.clear()
    first = build(tmp_path)
    report = first.report("toy").read_text()
    results = (tmp_path / "results.json").read_text()
    assert CALLS == ["data", "train", "evaluate"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["00_data", "01_train", "02_evaluate"]
    assert "## train" in report and "reads: `data`" in report and "| loss | 0.7692 |" in report
    CALLS.clear()
    again = build(tmp_path)
    assert CALLS == [], "every artifact was there"
    assert all(done["skipped"] for done in again.results.values())
    again.report("toy")
    assert (tmp_path / "results.json").read_text() == results
    resumed = (tmp_path / "report.md").read_text()
    assert resumed.count("this run found it done and skipped it") == 3 and "skipped" not in report
    made = [line for line in report.splitlines() if line.startswith("- made in")]
    assert len(made) == 3 and all(line.split(";")[0] in resumed for line in made), "the resumed report keeps them"


def test_a_changed_parameter_reruns_its_stage_and_those_that_read_it(tmp_path):
    build(tmp_path)
    CALLS.clear()
    pipe = build(tmp_path, lr=0.2)
    assert CALLS == ["train", "evaluate"], "data did not change"
    assert pipe.results["data"]["skipped"] and not pipe.results["evaluate"]["skipped"]
    assert json.loads((tmp_path / "01_train" / "stage.json").read_text())["params"] == {"lr": 0.2}
    CALLS.clear()
    build(tmp_path, lr=0.2, rows=5)
    assert CALLS == ["data", "train", "evaluate"], "a change upstream reruns everything downstream"


def test_a_changed_helper_of_a_stage_reruns_it(tmp_path, monkeypatch):
    import importlib
    import sys

    from helpers import pipeline

    code = "def double(x):\n    return 2 * x\n\ndef stage(out, inputs):\n    return {'value': double(3)}\n"
    (tmp_path / "toy_stages.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("toy_stages")
    assert Pipeline(tmp_path / "run", verbose=False).run("toy", module.stage) == {"value": 6}
    (tmp_path / "toy_stages.py").write_text(code.replace("2 * x", "3 * x"))  # the stage's own source is unchanged
    module = importlib.reload(module)
    again = Pipeline(tmp_path / "run", verbose=False)
    assert again.run("toy", module.stage) == {"value": 9} and not again.results["toy"]["skipped"]
    del sys.modules["toy_stages"]
    from helpers import stages

    names = {p.name for p in pipeline._code_files(stages.domain_sft)}
    assert {"stages.py", "retrieval.py", "recipes.py", "data.py"} <= names, "the helpers a stage calls are in its key"


def test_a_failed_stage_leaves_nothing_and_the_next_run_resumes_there(tmp_path):
    pipe = Pipeline(tmp_path, verbose=False)
    pipe.run("data", make_data)
    with pytest.raises(RuntimeError, match="out of memory"):
        pipe.run("train", broken, needs=("data",))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00_data"], "no half-made artifact"
    CALLS.clear()
    build(tmp_path)
    assert CALLS == ["train", "evaluate"]


def test_mistakes_in_a_pipeline_are_named(tmp_path):
    pipe = Pipeline(tmp_path, verbose=False)
    with pytest.raises(KeyError, match="needs \\['data'\\], which have not run"):
        pipe.run("train", train, needs=("data",))
    pipe.run("data", make_data)
    with pytest.raises(ValueError, match="runs twice"):
        pipe.run("data", make_data)
    with pytest.raises(ValueError, match="Python identifier"):
        pipe.run("my stage", make_data)
    with pytest.raises(TypeError, match="'make_data': got an unexpected keyword argument 'steps'"):
        pipe.run("more", make_data, steps=3)
    pipe.run("more_data", make_data)  # a name ending in another stage's: rerunning "data" leaves its folder alone
    Pipeline(tmp_path, verbose=False).run("data", make_data, rows=4)
    assert (tmp_path / "01_more_data" / "stage.json").exists()
    with pytest.raises(TypeError, match="must return a dict"):
        pipe.run("nothing", lambda out, inputs: None)
    assert not list(tmp_path.glob("*nothing*"))


def test_the_lessons_stages_chain_on_a_tiny_model_and_resume(tmp_path):
    """SFT with LoRA (lesson 04) -> merge -> DPO (lesson 08) -> merge -> evaluate -> GGUF (lesson 14), each reading
    the previous artifact."""
    from helpers import stages

    def chain():
        pipe = Pipeline(tmp_path, verbose=False, config={"SEED": 0})
        metrics = {"sft": pipe.run("sft", stages.sft, base_model="tiny:base", steps=40, lr=3e-3, eval_limit=32),
                   "merge": pipe.run("merge", stages.merge, needs=("sft",)),
                   "dpo": pipe.run("dpo", stages.dpo, needs=("merge",), steps=30, lr=2e-3, eval_limit=32),
                   "merge_dpo": pipe.run("merge_dpo", stages.merge, needs=("dpo",), stage="dpo"),
                   "evaluate": pipe.run("evaluate", stages.evaluate, needs=("merge", "merge_dpo"), limit=32,
                                        harness=False),
                   "gguf": pipe.run("gguf", stages.gguf, needs=("merge",), outtypes=("q8_0", "Q4_0"))}
        return pipe, metrics

    pipe, first = chain()
    assert first["sft"]["loss_last"] < first["sft"]["loss_first"] / 3
    assert (tmp_path / "00_sft" / "adapter" / "adapter_config.json").exists()
    assert first["merge"]["max_logit_diff"] < first["merge"]["logit_tolerance"], "merged = adapter"
    assert first["evaluate"]["models"]["merge"]["accuracy"] == first["sft"]["accuracy_after"], "same prompts, same model"
    assert first["sft"]["train_rows"] == 3000, "no curate stage: the shipped rows"
    assert first["dpo"]["base_model"] == str(tmp_path / "01_merge" / "model"), "DPO read the merged SFT model"
    assert first["dpo"]["loss_last"] < first["dpo"]["loss_first"]
    assert {"hallucination_before", "hallucination_after", "accuracy_before", "accuracy_after"} <= set(first["dpo"])
    assert first["merge_dpo"]["max_logit_diff"] < first["merge_dpo"]["logit_tolerance"], "merged = DPO adapter"
    assert set(first["evaluate"]["models"]) == {"merge", "merge_dpo"} and set(first["evaluate"]["win_rates"]) == {
        "merge_dpo vs merge"}
    assert first["gguf"]["q8_0"]["size_ratio"] > 3, "8-bit GGUF against fp32 safetensors"
    assert first["gguf"]["Q4_0"]["mb"] < first["gguf"]["q8_0"]["mb"], "llama.cpp's own 4-bit quantization"
    assert not (tmp_path / "05_gguf" / "model-f32.gguf").exists(), "the f32 step file is not kept"
    log = json.loads((tmp_path / "00_sft" / "stage.json").read_text())
    assert log["config"] == {"SEED": 0} and log["params"]["seed"] == 0 and log["versions"]["transformers"] != "-"
    assert stages.model_dir({"merge": pipe.folder("merge")}) == tmp_path / "01_merge" / "model"
    assert (tmp_path / "02_dpo" / "adapter" / "adapter_config.json").exists()
    with pytest.raises(ValueError, match="exactly one input stage with a model"):
        stages.model_dir({"sft": pipe.folder("sft")})
    again, second = chain()
    assert all(done["skipped"] for done in again.results.values()) and second == first


def test_sft_on_an_8_bit_base_trains_and_merges_into_the_full_precision_base(tmp_path):
    """The post-training capstone's SFT: LoRA on a bitsandbytes LLM.int8 base, merged into the fp32 base."""
    from helpers import stages

    pipe = Pipeline(tmp_path, verbose=False)
    sft = pipe.run("sft", stages.sft, base_model="tiny:base", steps=40, lr=3e-3, eval_limit=32, load_in_8bit=True)
    merged = pipe.run("merge", stages.merge, needs=("sft",))
    full = stages.sft(tmp_path / "full", {}, base_model="tiny:base", steps=1, lr=3e-3, eval_limit=8)
    assert sft["base_8bit"] and sft["base_footprint_mb"] < full["base_footprint_mb"], "linear layers in 1 byte"
    assert sft["loss_last"] < sft["loss_first"] / 3 and sft["accuracy_after"] > sft["accuracy_before"]
    assert merged["max_logit_diff"] < merged["logit_tolerance"], "the adapter merged into the fp32 base"



def test_curation_of_the_chat_sets_catches_what_was_planted(tmp_path):
    """The capstone's curate stage: every planted problem removed, escaped prompts repaired, the training stages
    read its files."""
    from helpers import curation, data, stages

    metrics = stages.curate(tmp_path, {}, seed=1, per_kind=12)
    for kind in ("sft", "preference"):
        m = metrics[kind]
        assert all(share == 1.0 for share in m["caught"].values()) and m["repaired"] == 1.0, kind
        assert m["removed"]["contaminated"] >= 12 and m["removed"]["empty reply"] == 12
        assert set(m["unplanted_removed"]) == {"duplicate"}, "clean rows go only as repeats of a kept row"
        rows = data.load_jsonl(tmp_path / f"{kind}.jsonl", kind)  # the schema the training stages read
        assert len(rows) == m["kept"] and len({json.dumps(r, sort_keys=True) for r in rows}) == len(rows)
        assert all("&nbsp;" not in json.dumps(r) for r in rows)
        assert stages._train_rows({"curate": tmp_path}, kind) == rows
    assert metrics["preference"]["caught"]["tie"] == 1.0 and metrics["sft"]["removed"]["tie"] == 0
    test = {r["messages"][0]["content"].lower() for r in data.load_split("sft", "test")}
    assert not any(r["messages"][0]["content"].lower() in test for r in data.load_jsonl(tmp_path / "sft.jsonl", "sft"))
    assert "| duplicate |" in (tmp_path / "README.md").read_text()
    sets, planted = curation.raw_chat_sets(seed=1, per_kind=12)
    assert sets == curation.raw_chat_sets(seed=1, per_kind=12)[0], "the same seed plants the same rows"
    assert sum(p["kind"] == "tie" for p in planted.values()) == 12


def test_a_pipeline_logs_to_wandb_offline_and_sends_nothing(tmp_path, monkeypatch):
    """USE_WANDB in the capstones: every stage's numbers in an offline wandb run inside the run folder."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)  # restored (unset) after the test: _require_wandb sets it
    monkeypatch.setenv("WANDB_SILENT", "true")
    pipe = Pipeline(tmp_path, verbose=False, config={"SEED": 0}, use_wandb=True)
    pipe.run("data", make_data)
    pipe.run("train", train, needs=("data",), lr=0.1)
    pipe.report("toy")
    runs = list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1, "offline: the run stays on disk, for `wandb sync` to send later if ever"
    logged = runs[0].read_bytes()  # protobuf records: each key and its JSON value stored as they are
    for key, value in (("train/loss", "0.769231"), ("train/per_task/add", "0.5"), ("data/rows", "3")):
        assert key.encode() in logged and value.encode() in logged, key


def test_dapt_lowers_domain_perplexity_and_the_merged_model_quantizes_to_8_bits(tmp_path):
    """The domain-adaptation capstone's first stages: LoRA DAPT on the herbal corpus (with general-corpus replay),
    merged, then held in 8 bits: smaller linear layers, the same perplexity."""
    from helpers import stages

    pipe = Pipeline(tmp_path, verbose=False)
    dapt = pipe.run("dapt", stages.dapt, base_model="tiny:base", steps=60, lr=3e-3, replay=0.25, eval_limit=16)
    merged = pipe.run("merge_dapt", stages.merge, needs=("dapt",), stage="dapt")
    int8 = pipe.run("int8", stages.int8, needs=("merge_dapt",), eval_limit=16)
    assert dapt["domain_ppl_drop"] >= 0.25 and dapt["loss_last"] < 0.7 * dapt["loss_first"]  # 60 steps: 0.55 measured
    assert dapt["general_ppl_after"] < 2 * dapt["general_ppl_before"], "replay keeps the general text"
    assert merged["max_logit_diff"] < merged["logit_tolerance"]
    assert int8["int8"]["domain_ppl"] == pytest.approx(int8["fp32"]["domain_ppl"], rel=0.03)
    assert int8["fp32"]["domain_ppl"] == pytest.approx(dapt["domain_ppl_after"], rel=1e-4), "merged = adapter"
    assert int8["linear_ratio"] >= 3.5
    saved = sum(f.stat().st_size for f in (tmp_path / "02_int8" / "model").glob("*.safetensors"))
    full = sum(f.stat().st_size for f in (tmp_path / "01_merge_dapt" / "model").glob("*.safetensors"))
    assert saved < full / 2, "the saved 8-bit checkpoint is the smaller one"


def test_domain_retrieval_finds_the_fact_and_reader_rows_teach_reading():
    """The domain capstone's RAG side: BM25 over the corpus's sentences finds, for every held-out question, a
    sentence stating the asked fact; the reader rows state their answer once, about training herbs only."""
    import re

    from helpers import data, stages

    test = data.load_split("domain", "test")
    passages, sentences = stages.domain_passages([r["messages"][0]["content"] for r in test], k=3)
    herbs = {h["herb"]: h for h in data.load_jsonl(DATA_DIR / "domain" / "herbs.jsonl", "herbs")}
    assert len(sentences) >= 4 * len(herbs) and len(set(sentences)) == len(sentences), "each fact, each sentence once"
    found = 0
    for row, top in zip(test, passages):
        herb = next(h for h in herbs if h in row["messages"][0]["content"])
        answer = row["messages"][-1]["content"]
        found += any(herb in s and re.search(rf"\b{re.escape(answer)}\b", s) for s in top)
    assert found == len(test), "top-3 BM25 sentences hold every held-out fact"
    rows = stages.domain_reader_rows(200, seed=3)
    assert rows == stages.domain_reader_rows(200, seed=3)
    test_herbs = {h for h, v in herbs.items() if v["split"] == "test"}
    kinds, fresh = set(), 0
    for row in rows:
        *lines, question = row["messages"][0]["content"].split("\n")
        answer = row["messages"][-1]["content"]
        herb = next(h for h in herbs if re.search(rf"\b{h}\b", question))
        assert herbs[herb]["split"] == "train" and not any(h in row["messages"][0]["content"] for h in test_herbs)
        facts = [data.domain_fact(line) for line in lines]
        stating = [f for f in facts if f and f[:2] == (herb, row["task"])]
        assert len(lines) == 3 and stating and all(f[2] == answer for f in stating), row
        kinds |= {(f[0] == herb, f[1] == row["task"]) for f in facts if f}
        fresh += answer != herbs[herb][row["task"]]
    assert fresh > 0.6 * len(rows), "values drawn afresh: most differ from the herb's real fact"
    assert {(True, False), (False, True)} <= kinds, "retrieval's distractors: the herb's other facts, others' same fact"


def test_the_dense_retriever_stage_saves_an_encoder_and_index_that_the_domain_stages_search(tmp_path):
    """Lesson 02's encoder tuned on the training herbs' (question, fact sentence) pairs: its recall on held-out herbs
    rises from the untuned encoder's (near zero); the saved embedder and FAISS index answer ``domain_search`` as the
    stage measured; reader rows from it name training herbs only; ``search="dense"`` without it is an error."""
    from helpers import data, stages

    pipe = Pipeline(tmp_path, verbose=False)
    result = pipe.run("retriever", stages.retriever, encoder_model="tiny:encoder", steps=60, lr=2e-3, top_k=3)
    folder = pipe.folder("retriever")
    assert {p.name for p in folder.iterdir()} >= {"embedder", "index.faiss", "sentences.json"}
    recall = result["recall"]
    assert recall["untuned"]["recall@3"] <= 0.3 and recall["tuned"]["recall@3"] >= recall["untuned"]["recall@3"] + 0.3
    test = data.load_split("domain", "test")
    top, sentences = stages.domain_search([r["messages"][0]["content"] for r in test], 3, folder)
    assert len(sentences) == result["sentences"] and all(len(row) == 3 for row in top)
    measured = stages._domain_recall(test, top, sentences, 3)  # the stage's metrics are rounded to 6 digits
    assert measured == pytest.approx(recall["tuned"], abs=1e-6), "the saved index is the one measured"
    test_herbs = {h["herb"] for h in data.load_jsonl(DATA_DIR / "domain" / "herbs.jsonl", "herbs") if h["split"] == "test"}
    rows = stages.domain_reader_rows(50, seed=1, retriever=folder)
    assert not any(h in r["messages"][0]["content"] for r in rows for h in test_herbs)
    with pytest.raises(ValueError, match="needs a retriever stage"):
        stages._retriever({}, "dense")
    assert stages._retriever({"retriever": folder}, "bm25") is None
