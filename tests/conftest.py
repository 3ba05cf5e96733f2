"""Shared test setup: offline, one tiny-model cache inside the checkout, quiet tokenizers; the run of the notebooks."""

import json
import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("COURSE_CACHE", str(REPO / ".cache" / "llm-course"))

# Notebooks at once, one torch thread each. Measured on 2 cores, warm cache: 2 at once 313 s, one at a time 390 s,
# with identical metrics (the closing note of issue 6).
JOBS = int(os.environ.get("COURSE_TEST_JOBS", "2"))
LESSON_TEST = re.compile(r"tests/lessons/test_(\d\d)\.py$")


def lessons_asked(items) -> list[str] | None:
    """The lessons the collected tests need run: those of the tests/lessons/test_NN.py files collected, or None (every
    lesson of the path) when a test elsewhere uses the run (`pytest tests/lessons/test_03.py` runs lesson 03 only)."""
    numbers = set()
    for item in items:
        if "run" not in getattr(item, "fixturenames", ()):
            continue
        found = LESSON_TEST.search(Path(str(item.fspath)).as_posix())
        if not found:
            return None
        numbers.add(found.group(1))
    return sorted(numbers)


@pytest.fixture(scope="session")
def run(request, tmp_path_factory):
    """The complete path (or only the lessons asked for) executed once per session: (records by number, run folder)."""
    from course import report, runner, syllabus

    only = lessons_asked(request.session.items)
    run_dir = runner.run_path(syllabus.load(), "complete", "tiny", only=only, out_root=tmp_path_factory.mktemp("runs"),
                              jobs=JOBS)
    report.write_report(run_dir)
    summary = json.loads((run_dir / "run.json").read_text())
    return {r["number"]: r for r in summary["lessons"]}, run_dir


@pytest.fixture(scope="session")
def metrics_of(run):
    """``metrics_of("03")``: what lesson 03 recorded; fails with the run's report if the lesson did not run."""
    records, run_dir = run

    def metrics(number: str) -> dict:
        record = records[number]
        assert record["status"] == "ok", (f"{record['stem']} failed: {record['error']}\n"
                                          + (run_dir / "report.md").read_text())
        return record["metrics"]

    return metrics
