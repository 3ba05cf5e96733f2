"""The course runner: `python -m course list | run | report | check-env`."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from course import report, runner, syllabus


def cmd_list(args) -> int:
    syl = syllabus.load()
    print(syl.title)
    for lesson in syl.lessons.values():
        mark = "✓" if lesson.status == "ready" else "·"
        print(f"  {mark} {lesson.number} {lesson.title:<46} T4 {lesson.minutes_t4:>3} min · "
              f"CPU {lesson.minutes_cpu:>3} min · {lesson.hardware} ({lesson.status})")
    print("\npaths:")
    for name, numbers in syl.paths.items():
        ready = sum(syl.lessons[n].status == "ready" for n in numbers)
        print(f"  {name:<11} {' '.join(numbers)}  ({ready} of {len(numbers)} ready)")
    return 0


def cmd_run(args) -> int:
    syl = syllabus.load()
    run_dir = runner.run_path(syl, args.path, args.profile, args.only, args.out, runner.parse_params(args.param))
    report_path = report.write_report(run_dir)
    failed = [r for r in json.loads((run_dir / "run.json").read_text())["lessons"]
              if r["status"] == "failed"]
    print(f"\nexecuted notebooks and metrics: {run_dir}\nreport: {report_path}")
    if failed:
        print(f"FAILED: {', '.join(r['stem'] for r in failed)} (see the report)", file=sys.stderr)
        return 1
    return 0


def cmd_report(args) -> int:
    path = report.write_report(args.run_dir)
    print(path.read_text())
    print(f"written to {path}")
    return 0


def cmd_check_env(args) -> int:
    from helpers.environment import hosted_platform, pick_device, versions
    from helpers.paths import cache_dir

    print("versions:", " · ".join(f"{k} {v}" for k, v in versions().items()))
    device = pick_device()
    print("platform:", hosted_platform())
    free_gb = shutil.disk_usage(cache_dir()).free / 2**30
    print(f"disk free at the model cache {cache_dir()}: {free_gb:.1f} GiB (tiny profile needs < 0.1 GiB)")
    import torch

    if device == "cuda":
        gib = torch.cuda.get_device_properties(0).total_memory / 2**30
        verdict = "ok" if gib >= 14 else "too small"
        print(f"t4 profile: GPU memory {gib:.1f} GiB ({verdict}; needs ~14 GiB), Hub access to download models")
    else:
        print("t4 profile: needs a CUDA GPU with ~14 GiB (a Colab/Kaggle T4) and Hub access; "
              "here only the tiny profile runs")
    missing = [k for k, v in versions().items() if v == "-"]
    if missing:
        print("missing libraries:", ", ".join(missing), "- run `make venv`")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="lessons and learning paths").set_defaults(func=cmd_list)
    run = sub.add_parser("run", help="execute a learning path headless with papermill")
    run.add_argument("--path", default="fast-track", help="learning path (see `list`)")
    run.add_argument("--profile", default="tiny", choices=["tiny", "t4", "auto"])
    run.add_argument("--only", nargs="+", metavar="NN", help="run only these lesson numbers")
    run.add_argument("--out", type=Path, help="folder for run outputs (default: runs/)")
    run.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                     help="extra notebook parameter, repeatable (VALUE as JSON when it parses)")
    run.set_defaults(func=cmd_run)
    rep = sub.add_parser("report", help="Markdown report of a run folder")
    rep.add_argument("run_dir", type=Path)
    rep.set_defaults(func=cmd_report)
    sub.add_parser("check-env", help="versions, device, disk, what the t4 profile needs").set_defaults(
        func=cmd_check_env)
    args = parser.parse_args(argv)
    return args.func(args)
