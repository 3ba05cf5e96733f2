"""Turn a run folder (run.json + metrics + executed notebooks) into a Markdown report."""

from __future__ import annotations

import json
from pathlib import Path

from course import claims
from course.runner import BUDGET_SECONDS, failed_cell


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) + "}"
    return str(value)


def build_report(run_dir: Path) -> str:
    """The Markdown report of a run: one table of every lesson's metrics, the capstones' pipeline reports (every
    stage's numbers), failures with their cell, total time."""
    run_dir = Path(run_dir)
    run_file = run_dir / "run.json"
    if not run_file.exists():
        raise SystemExit(f"{run_file} not found: pass a folder made by `python -m course run`")
    run = json.loads(run_file.read_text())
    executed = [rec for rec in run["lessons"] if rec["status"] != "planned"]
    prepared = run.get("prepare_seconds") or {}
    stand_ins = " with CPU stand-ins (random weights, capped steps: outcomes meaningless)" if run.get("stand_ins") else ""
    lines = [f"# Course run: path `{run['path']}`, profile `{run['profile']}`{stand_ins}", "",
             f"Started {run['started']} · total {run['seconds'] / 60:.1f} min · {run.get('jobs', 1)} notebook(s) at a "
             f"time · lessons {sum(r['seconds'] for r in executed):.0f} s summed"
             + (f" · shared models {sum(prepared.values()):.0f} s" if prepared else ""), "",
             f"Budget: {BUDGET_SECONDS} s per lesson on the tiny profile; ⚠ marks a lesson over it.", "",
             "| lesson | status | time | peak RAM | peak GPU | metrics |", "|---|---|---|---|---|---|"]
    for rec in run["lessons"]:
        metrics = "<br>".join(f"{k}: {_fmt(v)}" for k, v in sorted(rec.get("metrics", {}).items())) or "-"
        time_text = "-"
        if rec["status"] != "planned":
            over = run["profile"] == "tiny" and rec["seconds"] > BUDGET_SECONDS
            time_text = f"{rec['seconds']:.0f} s" + (" ⚠" if over else "")
        res = rec.get("resources", {})
        ram, gpu = (f"{res[k]:.1f} GiB" if k in res else "-" for k in ("host_gib", "gpu_gib"))
        lines.append(f"| {rec['stem']} | {rec['status']} | {time_text} | {ram} | {gpu} | {metrics} |")
    if run["profile"] == "tiny":  # the claims are measured on the tiny profile (course/claims.py)
        missed = [check for rec in executed if rec["status"] == "ok" and rec["number"] in claims.CLAIMS
                  for check in claims.failures(rec["number"], rec.get("metrics", {}))]
        lines += ["", "## Claims", "", f"{len(missed)} claim(s) of `course/claims.py` not met in this run."
                  if missed else "Every lesson's claims (`course/claims.py`) hold in this run."]
        lines += [f"- {check}" for check in missed]
    pipelines = sorted(run_dir.glob("*/report.md"))  # a capstone's helpers.pipeline report: every stage's numbers
    if pipelines:
        lines += ["", "## Pipelines"]
        for path in pipelines:  # its headings one level down, under the folder's name
            text = path.read_text().split("\n")
            lines += ["", f"### `{path.parent.name}/`", ""] + [f"##{t}" if t.startswith("#") else t for t in text[1:]]
    failures = [rec for rec in run["lessons"] if rec["status"] == "failed"]
    if failures:
        lines += ["", "## Failures"]
        for rec in failures:
            cell = failed_cell(run_dir / f"{rec['stem']}.ipynb")
            lines += ["", f"### {rec['stem']}", "", f"{rec['error']}"]
            if cell:
                lines += ["", f"Failing cell #{cell['index']} ({cell['ename']}: {cell['evalue']}):", "",
                          "```python", cell["source"], "```"]
    return "\n".join(lines) + "\n"


def write_report(run_dir: Path) -> Path:
    path = Path(run_dir) / "report.md"
    path.write_text(build_report(run_dir))
    return path
