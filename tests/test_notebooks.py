"""What the whole path's run shows across lessons (tiny profile, via the course runner; the `run` fixture is in
tests/conftest.py). Each lesson's own claims are asserted in tests/lessons/test_NN.py."""

import json

from course import claims, syllabus
from helpers.paths import REPO_ROOT


def test_lesson_03_trains_the_model_the_later_lessons_start_from(metrics_of):
    # tiny:sft is recipes.sft_model, cached and keyed by the recipe's source; lesson 03 writes the same recipe in its
    # cells (the code the lesson is about stays visible). Lesson 04 scores the recipe's model on the same test rows
    # with the same SEED: the two must be one model, or the recipe has drifted from lesson 03 (issue 23)
    m03, m04 = metrics_of("03"), metrics_of("04")
    assert (m03["accuracy_after"], m03["per_task_after"]) == (m04["full_accuracy"], m04["full_per_task"])


def test_every_ready_lesson_has_claims_and_its_own_test_file():
    # `pytest tests/lessons/test_NN.py` runs lesson NN alone and asserts its claims (tests/lessons/conftest.py)
    syl = syllabus.load()
    ready = sorted(n for n, lesson in syl.lessons.items() if lesson.status == "ready")
    assert ready == sorted(claims.CLAIMS)
    files = sorted(p.stem.removeprefix("test_") for p in (REPO_ROOT / "tests" / "lessons").glob("test_*.py"))
    assert files == ready
    for number in ready:
        assert "def test_claims(claims_failed):" in (REPO_ROOT / "tests" / "lessons" / f"test_{number}.py").read_text()


def test_every_ready_lesson_ran_and_planned_were_skipped(run):
    records, run_dir = run
    syl = syllabus.load()
    for number, record in records.items():
        expected = "ok" if syl.lessons[number].status == "ready" else "planned"
        assert record["status"] == expected, record
    assert (run_dir / "report.md").exists()


def test_every_lesson_fits_in_a_small_machine(run):
    # The runner's probe cell recorded each kernel's peak memory; the tiny profile must run on any laptop.
    records, _ = run
    for record in records.values():
        if record["status"] == "ok":
            assert 0.1 < record["resources"]["host_gib"] < 4.0, record["stem"]


def test_exercises_show_not_tried_without_failing(run):
    _, run_dir = run
    nb = json.loads((run_dir / "03_sft.ipynb").read_text())
    outputs = "".join(o.get("text", "") if isinstance(o.get("text", ""), str) else "".join(o["text"])
                      for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", []))
    assert "03.masked_fraction: not tried yet" in outputs


def test_no_server_outlives_its_lesson(run):
    import psutil

    survivors = [p.info for p in psutil.process_iter(["pid", "cmdline"])
                 if any(name in " ".join(p.info["cmdline"] or []) for name in ("helpers.server", "llama_cpp.server",
                                                                                "train_dist.py"))]
    assert not survivors, f"lesson 16's servers or lesson 17's ranks left behind: {survivors}"


def test_every_figure_is_shown_once(run):
    # a plot helper that returned its figure was displayed twice when its call ended a cell
    records, run_dir = run
    for record in records.values():
        if record["status"] != "ok":
            continue
        nb = json.loads((run_dir / f"{record['stem']}.ipynb").read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                images = sum("image/png" in o.get("data", {}) for o in cell.get("outputs", []))
                assert images <= "".join(cell["source"]).count("plots.plot_"), (record["stem"], cell["source"][:2])


