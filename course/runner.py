"""Execute a learning path's notebooks headless with papermill and record what happened."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from traitlets.config import Config

from course.syllabus import Syllabus
from helpers.paths import REPO_ROOT

# The kernel talks to the runner over Unix sockets beside its connection file: no TCP port is opened, and
# ipykernel does not warn about unencrypted TCP on every notebook.
KERNEL_CONFIG = Config({"KernelManager": {"transport": "ipc"}})


def parse_params(items: list[str]) -> dict:
    """``NAME=VALUE`` strings → papermill parameters (VALUE parsed as JSON when it can be)."""
    params = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--param expects NAME=VALUE, got {item!r}")
        name, value = item.split("=", 1)
        try:
            params[name] = json.loads(value)
        except json.JSONDecodeError:
            params[name] = value
    return params


def run_path(syllabus: Syllabus, path: str, profile: str, only: list[str] | None = None,
             out_root: Path | None = None, params: dict | None = None) -> Path:
    """Run the ready lessons of ``path`` (optionally ``only`` some numbers); returns the run folder.

    Each notebook is executed into ``<run>/<NN_slug>.ipynb``; it writes ``<NN_slug>.metrics.json`` beside
    it (``COURSE_OUTPUT_DIR``). ``<run>/run.json`` lists status, seconds and error of every lesson.
    """
    import papermill

    lessons = syllabus.path_lessons(path)
    if only:
        unknown = [n for n in only if n not in {lesson.number for lesson in lessons}]
        if unknown:
            raise SystemExit(f"--only {' '.join(unknown)}: not in path {path!r}")
        lessons = [lesson for lesson in lessons if lesson.number in only]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = (out_root or REPO_ROOT / "runs") / f"{path}-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=False)
    os.environ["COURSE_OUTPUT_DIR"] = str(run_dir.resolve())
    records = []
    ready = [lesson for lesson in lessons if lesson.status == "ready"]
    print(f"path {path} · profile {profile} · {len(ready)} of {len(lessons)} lessons ready · output {run_dir}")
    start_all = time.perf_counter()
    for i, lesson in enumerate(lessons, start=1):
        record = {"number": lesson.number, "stem": lesson.stem, "title": lesson.title, "status": "planned",
                  "seconds": 0.0, "error": None}
        if lesson.status != "ready":
            print(f"[{i}/{len(lessons)}] {lesson.stem}: planned, skipped")
            records.append(record)
            continue
        print(f"[{i}/{len(lessons)}] {lesson.stem} ...", flush=True)
        start = time.perf_counter()
        try:
            papermill.execute_notebook(
                str(lesson.path), str(run_dir / f"{lesson.stem}.ipynb"),
                parameters={"PROFILE": profile, **(params or {})},
                kernel_name="python3", cwd=str(run_dir), progress_bar=False, config=KERNEL_CONFIG,
            )
            record["status"] = "ok"
        except Exception as err:  # papermill raises PapermillExecutionError with the failing cell
            record["status"] = "failed"
            record["error"] = f"{type(err).__name__}: {getattr(err, 'ename', '')} {getattr(err, 'evalue', err)}".strip()
        record["seconds"] = round(time.perf_counter() - start, 1)
        metrics_file = run_dir / f"{lesson.stem}.metrics.json"
        record["metrics"] = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
        print(f"      {record['status']} in {record['seconds']:.0f}s · {_headline(record['metrics'])}", flush=True)
        records.append(record)
    summary = {"path": path, "profile": profile, "started": stamp, "lessons": records,
               "seconds": round(time.perf_counter() - start_all, 1)}
    (run_dir / "run.json").write_text(json.dumps(summary, indent=1) + "\n")
    return run_dir


def _headline(metrics: dict, limit: int = 4) -> str:
    scalars = [(k, v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return ", ".join(f"{k}={v:.4g}" for k, v in scalars[:limit]) or "no metrics"


def failed_cell(notebook: Path) -> dict | None:
    """The first code cell of an executed notebook whose outputs hold an error, with its source and message."""
    if not notebook.exists():
        return None
    nb = json.loads(notebook.read_text())
    for index, cell in enumerate(nb["cells"]):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
                return {"index": index, "source": source, "ename": output["ename"], "evalue": output["evalue"]}
    return None

