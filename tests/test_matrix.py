"""The claims the tests assert and the matrix command that tabulates them over seeds x kernel sets (no notebook runs)."""

import json

import pytest

from course import claims, matrix

GOOD_03 = {"precision": "fp32", "steps": 500, "accuracy_before": 0.0, "accuracy_after": 0.85,
           "train_loss_first": 3.0, "train_loss_last": 0.1, "per_task_after": {"add": 0.7, "letter": 0.9}}


def test_a_claim_compares_a_value_with_a_bound():
    c = claims.Claims("03")
    c.ge("gain", 0.31, 0.30)
    c.ge("gain too small", 0.29, 0.30)
    c.eq("same", "fp32", "fp32")
    c.lt("wrong type", "x", 1)
    assert [check.ok for check in c.checks] == [True, False, True, False]
    assert "FAILED" in str(c.checks[1]) and "0.29 >= 0.3" in str(c.checks[1])


def test_lesson_claims_pass_good_metrics_and_name_what_fails():
    assert claims.failures("03", GOOD_03) == []
    bad = dict(GOOD_03, accuracy_after=0.2)
    assert [f.name for f in claims.failures("03", bad)] == ["accuracy after - before"]
    missing = {k: v for k, v in GOOD_03.items() if k != "steps"}
    (failure,) = claims.failures("03", missing)
    assert "KeyError" in failure.name and "steps" in failure.name, "a metric the run did not record fails loudly"


def _fake_run(root, name, metrics_03, seconds=50.0):
    folder = root / name
    folder.mkdir(parents=True)
    record = {"number": "03", "stem": "03_sft", "status": "ok", "seconds": seconds, "metrics": metrics_03}
    (folder / "run.json").write_text(json.dumps({"lessons": [record]}))
    return folder


def test_matrix_table_flags_the_failing_cell_and_the_spread(tmp_path):
    runs = {"avx2/seed 0": _fake_run(tmp_path, "a", GOOD_03),
            "default/seed 0": _fake_run(tmp_path, "b", dict(GOOD_03, accuracy_after=0.25), seconds=70)}
    table = matrix.collect(runs)
    gain = next(r for r in table["claims"] if r["claim"] == "accuracy after - before")
    assert gain["failed"] == ["default/seed 0"] and gain["values"] == {"avx2/seed 0": 0.85, "default/seed 0": 0.25}
    (spread,) = table["spreads"]
    assert spread["spread"] == pytest.approx(0.60) and not spread["ok"]
    assert table["seconds"] == {"03": [50.0, 70]}
    text = matrix.to_markdown(table, {"avx512": "this CPU's best kernel set is avx2"}, "python -m course matrix")
    assert "| 03 | accuracy after - before | >= 0.3 | 0.25 | 0.85 | **default/seed 0** |" in text
    assert "avx512** skipped" in text and "**1 claim(s) fail on some cell.** **1 spread(s) over their bound.**" in text


def test_matrix_skips_kernel_sets_the_cpu_lacks(monkeypatch):
    monkeypatch.setattr(matrix, "native_capability", lambda: "avx2")
    assert matrix.supported(["default", "avx2", "avx512"]) == (["default", "avx2"],
                                                               {"avx512": "this CPU's best kernel set is avx2"})
    with pytest.raises(SystemExit, match="unknown"):
        matrix.supported(["sse9"])


def test_native_capability_probe_runs_torch_in_a_clean_process():
    assert matrix.native_capability() in matrix.LEVELS


def test_a_cell_runs_the_course_runner_with_the_kernel_set_and_its_own_cache(tmp_path, monkeypatch):
    calls = []

    def fake_run(cmd, env, **kwargs):
        calls.append((cmd, env))
        out = tmp_path / "out" / "default-seed3" / "complete-x"
        out.mkdir(parents=True)
        (out / "run.json").write_text(json.dumps({"lessons": []}))

    monkeypatch.setattr(matrix.subprocess, "run", fake_run)
    run_dir = matrix.run_cell("default", 3, "complete", ["03"], tmp_path / "out", 2, tmp_path / "caches",
                              ["LEARNING_RATE=1e-3"])
    (cmd, env), = calls
    assert run_dir.name == "complete-x" and (run_dir.parent / "cell.log").exists()
    assert cmd[1:4] == ["-m", "course", "run"] and "SEED=3" in cmd and cmd[-1] == "--param=LEARNING_RATE=1e-3"
    assert env["ATEN_CPU_CAPABILITY"] == "default" and env["ONEDNN_MAX_CPU_ISA"] == "SSE41"
    assert env["COURSE_CACHE"] == str(tmp_path / "caches" / "default"), "a model cache per kernel set"
    with pytest.raises(SystemExit, match="sets SEED itself"):
        matrix.main(["03"], [0], ["default"], params=["SEED=1"])


def test_a_notebook_shows_its_claims_against_its_run(tmp_path, monkeypatch, capsys):
    from helpers.metrics import record_metrics, show_claims

    monkeypatch.setenv("COURSE_OUTPUT_DIR", str(tmp_path))
    record_metrics("03_sft", profile="tiny", **dict(GOOD_03, accuracy_after=0.2))
    checks = show_claims("03_sft")
    shown = capsys.readouterr().out
    assert [c.name for c in checks if not c.ok] == ["accuracy after - before"]
    assert "✗ accuracy after - before: 0.2  (claim >= 0.3)" in shown and "✓ steps: 500  (claim == 500)" in shown
    record_metrics("03_sft", profile="t4")  # another profile: the tiny bounds are shown, not judged
    show_claims("03_sft")
    assert "✗" not in capsys.readouterr().out
