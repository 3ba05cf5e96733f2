"""The course runner: `python -m course list | run | parameters | chat | report | check-env | gpu-check | matrix | sync |
set-repo | new`."""

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
        extra = syl.optional.get(name)
        optional = f" + optional {' '.join(extra)}" if extra else ""
        print(f"  {name:<11} {' '.join(numbers)}{optional}  ({ready} of {len(numbers)} ready)")
    return 0


def cmd_run(args) -> int:
    from course import config

    syl = syllabus.load()
    fields = config.load(args.config) if args.config else {}
    fields.update({name: (value, "--param") for name, value in runner.parse_params(args.param).items()})
    ready = [lesson for lesson in runner.select_lessons(syl, args.path, args.only, args.optional)
             if lesson.status == "ready"]
    run_dir = runner.run_path(syl, args.path, args.profile, args.only, args.out, jobs=args.jobs,
                              optional=args.optional, stand_ins=args.stand_ins,
                              lesson_params=config.check(fields, ready))
    report_path = report.write_report(run_dir)
    failed = [r for r in json.loads((run_dir / "run.json").read_text())["lessons"]
              if r["status"] == "failed"]
    print(f"\nexecuted notebooks and metrics: {run_dir}\nreport: {report_path}")
    if failed:
        print(f"FAILED: {', '.join(r['stem'] for r in failed)} (see the report)", file=sys.stderr)
        return 1
    return 0


def cmd_parameters(args) -> int:
    from course import config

    lessons = syllabus.load().lessons
    for number in args.numbers:
        if number not in lessons:
            raise SystemExit(f"no lesson {number!r}; see `python -m course list`")
        print(f"{lessons[number].stem} (the fields a --config file can set for it):")
        for name, comment in config.lesson_parameters(lessons[number]).items():
            print(f"  {name:22} {comment}")
    return 0


def cmd_chat(args) -> int:
    from course import chat

    return chat.main(args.model, prompt=args.prompt, temperature=args.temperature, max_new_tokens=args.max_new_tokens,
                     seed=args.seed)


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


def cmd_gpu_check(args) -> int:
    from course import gpucheck

    return gpucheck.main(args.only, native=args.native, out_root=args.out)


def cmd_matrix(args) -> int:
    from course import matrix

    return matrix.main(args.only, args.seeds, args.kernels, path=args.path, jobs=args.jobs, out_root=args.out,
                       cache_root=args.cache, params=args.param)


def cmd_sync(args) -> int:
    from course import sync

    stale = sync.sync(syllabus.load(), check=args.check)
    for path in stale:
        print(f"{'stale' if args.check else 'wrote'} {path.relative_to(sync.REPO_ROOT)}")
    if args.check and stale:
        print("run `python -m course sync` and commit the result", file=sys.stderr)
        return 1
    if not stale:
        print("badges, install cells and colab/README.md match course/syllabus.toml")
    return 0


def cmd_set_repo(args) -> int:
    from course import sync

    sync.set_repo(args.repo)
    for path in sync.sync(syllabus.load()):
        print(f"wrote {path.relative_to(sync.REPO_ROOT)}")
    print(f"the course now points at https://github.com/{args.repo}; commit the changed files")
    return 0


def cmd_new(args) -> int:
    from course import scaffold

    for path in scaffold.new_lesson(args.number, args.slug, args.title):
        print(f"wrote {path.relative_to(scaffold.REPO_ROOT)}")
    print(f"lesson {args.number} scaffolded: `make test` fails on its claim stub in course/claims.py until you write "
          "its claims; see the README's maintainer section")
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
    run.add_argument("--config", type=Path, metavar="FILE",
                     help="YAML file of notebook parameters (NAME: value), checked against the lessons' parameters")
    run.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                     help="notebook parameter, repeatable (VALUE as JSON when it parses); wins over --config")
    run.add_argument("--jobs", type=int, default=1, help="notebooks at once (each kernel gets one torch thread)")
    run.add_argument("--optional", action="store_true", help="also run the path's optional lessons")
    run.add_argument("--stand-ins", action="store_true",
                     help="t4 profile on CPU: small random-weight models under the Hub ids, step counts capped")
    run.set_defaults(func=cmd_run)
    par = sub.add_parser("parameters", help="a lesson's parameters and what each does (a --config file's fields)")
    par.add_argument("numbers", nargs="+", metavar="NN")
    par.set_defaults(func=cmd_parameters)
    cht = sub.add_parser("chat", help="chat with a model the course produced (a checkpoint, a run folder or an id)")
    cht.add_argument("model", help="checkpoint folder, run folder (its newest checkpoint), or id such as tiny:sft")
    cht.add_argument("--prompt", help="answer this one message and exit (for scripts)")
    cht.add_argument("--temperature", type=float, default=0.0, help="0: greedy (default); above 0: sampled")
    cht.add_argument("--max-new-tokens", type=int, default=64, help="longest reply")
    cht.add_argument("--seed", type=int, default=0, help="seeds the sampling (the same replies every session)")
    cht.set_defaults(func=cmd_chat)
    rep = sub.add_parser("report", help="Markdown report of a run folder")
    rep.add_argument("run_dir", type=Path)
    rep.set_defaults(func=cmd_report)
    sub.add_parser("check-env", help="versions, device, disk, what the t4 profile needs").set_defaults(
        func=cmd_check_env)
    gpu = sub.add_parser("gpu-check", help="run ready lessons in the t4 profile as on a T4 (needs CUDA); "
                                           "writes colab/t4-budget.md")
    gpu.add_argument("--only", nargs="+", metavar="NN", help="check only these lessons (other rows are kept)")
    gpu.add_argument("--native", action="store_true", help="use this GPU's own precision; do not update the table")
    gpu.add_argument("--out", type=Path, help="folder for run outputs (default: runs/)")
    gpu.set_defaults(func=cmd_gpu_check)
    mat = sub.add_parser("matrix", help="run lessons over seeds x CPU kernel sets; table of every claim's min/max")
    mat.add_argument("--only", nargs="+", metavar="NN", help="these lesson numbers (default: the whole path)")
    mat.add_argument("--seeds", nargs="+", type=int, default=[0, 1], help="the lessons' SEED values")
    mat.add_argument("--kernels", nargs="+", default=["default", "avx2", "avx512"],
                     help="CPU kernel sets (default avx2 avx512); one this CPU lacks is skipped and reported")
    mat.add_argument("--path", default="complete", help="learning path the lessons come from")
    mat.add_argument("--jobs", type=int, default=2, help="notebooks at once within a cell")
    mat.add_argument("--out", type=Path, help="folder for the cells' runs and the table (default: runs/)")
    mat.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                     help="notebook parameter for every cell, repeatable (e.g. LEARNING_RATE=1e-3 to try a recipe)")
    mat.add_argument("--cache", type=Path, help="root of the per-kernel-set model caches (default: <cache>/matrix)")
    mat.set_defaults(func=cmd_matrix)
    syn = sub.add_parser("sync", help="regenerate badges, install cells and colab/README.md from the syllabus")
    syn.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is stale")
    syn.set_defaults(func=cmd_sync)
    rep_set = sub.add_parser("set-repo", help="point badges and the Colab clone at a fork: OWNER/NAME")
    rep_set.add_argument("repo")
    rep_set.set_defaults(func=cmd_set_repo)
    new = sub.add_parser("new", help="scaffold a lesson: syllabus entry, notebook skeleton, claim and exercise stubs")
    new.add_argument("number", help="two digits, e.g. 17")
    new.add_argument("slug", help="lowercase words joined by _, e.g. masked_lm")
    new.add_argument("title", help="the lesson's title, e.g. \"Masked-LM encoders\"")
    new.set_defaults(func=cmd_new)
    args = parser.parse_args(argv)
    return args.func(args)
