"""The t4 branch of every lesson, run on CPU: small random-weight models of the t4 Hub models' architecture in an
offline Hugging Face cache under the Hub ids, step counts capped (`python -m course run --profile t4 --stand-ins`).
Outcomes are meaningless on random weights; what is checked is that every cell of every ready lesson runs."""

import json
import os

import pytest

from course import report, runner, syllabus
from helpers import profiles

JOBS = int(os.environ.get("COURSE_TEST_JOBS", "2"))
VARIABLES = (profiles.STEP_CAP_VARIABLE, "HF_HUB_CACHE", "HF_HUB_OFFLINE")
BEFORE = {name: os.environ.get(name) for name in VARIABLES}


@pytest.fixture(scope="module")
def stand_in_run(tmp_path_factory):
    run_dir = runner.run_path(syllabus.load(), "complete", "t4", out_root=tmp_path_factory.mktemp("t4"), jobs=JOBS,
                              stand_ins=True)
    report.write_report(run_dir)
    return json.loads((run_dir / "run.json").read_text()), run_dir


def test_every_ready_lesson_runs_its_t4_branch_on_cpu(stand_in_run):
    run, run_dir = stand_in_run
    ready = [number for number, lesson in syllabus.load().lessons.items() if lesson.status == "ready"]
    records = {r["number"]: r for r in run["lessons"]}
    failed = [f"{records[n]['stem']}: {records[n]['error']}" for n in ready if records[n]["status"] != "ok"]
    assert not failed, "\n".join(failed) + "\n" + (run_dir / "report.md").read_text()
    assert run["profile"] == "t4" and run["stand_ins"] is True
    assert all(records[n]["metrics"].get("profile") in ("t4", None) for n in ready)
    assert records["03"]["metrics"]["steps"] == runner.STAND_IN_STEPS  # the profile's 300 SFT steps, capped


def test_a_stand_in_run_leaves_the_callers_environment_alone(stand_in_run):
    assert {name: os.environ.get(name) for name in VARIABLES} == BEFORE


def test_capped_profile_caps_every_step_count(monkeypatch):
    t4 = profiles.PROFILES["t4"]
    capped = t4.capped(2)
    steps = [name for name in vars(t4) if name.endswith("_steps")]
    assert len(steps) >= 9 and all(getattr(capped, name) == 2 for name in steps)
    assert capped.eval_rows == 8 and capped.pretrain_size == "base" and capped.sft_model == t4.sft_model
    assert profiles.get_profile("t4", sft_steps=50).sft_steps == 50
    monkeypatch.setenv(profiles.STEP_CAP_VARIABLE, "3")
    assert profiles.get_profile("t4", sft_steps=50).sft_steps == 3  # caps what a notebook's parameters ask for too


def test_stand_ins_need_the_t4_profile():
    with pytest.raises(SystemExit, match="needs --profile t4"):
        runner.run_path(syllabus.load(), "complete", "tiny", stand_ins=True)
