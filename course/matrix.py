"""``python -m course matrix``: run lessons over seeds × CPU kernel sets and tabulate every claim's min / max.

A small model's training lands elsewhere when the floating-point kernels round differently, as another seed would.
A margin is trusted only when it holds on every cell of this matrix. Each kernel set is forced with
``ATEN_CPU_CAPABILITY`` (PyTorch's own vectorised kernels), ``ONEDNN_MAX_CPU_ISA`` (oneDNN) and
``MKL_ENABLE_INSTRUCTIONS`` (MKL's BLAS), in a fresh runner process per cell, since they are read when torch loads.
The shared models are rebuilt per kernel set (a model cache per set) and per seed (the seed is in their cache key).
A kernel set the CPU lacks is skipped, and the table says so.

Writes ``matrix.md`` and ``matrix.json`` into the output folder: for every claim of ``course/claims.py`` on the
lessons run, its bound, the min and max of its value over the cells and the cells that fail it; then the spread of
the metrics ``claims.SPREADS`` bounds (lesson 03's held-out accuracy).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from course import claims
from helpers.paths import REPO_ROOT, cache_dir

# name → environment that forces it; the ISA names are oneDNN's and MKL's spellings of the same level
KERNEL_SETS = {
    "default": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "avx512": {"ATEN_CPU_CAPABILITY": "avx512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE", "MKL_ENABLE_INSTRUCTIONS": "AVX512"},
}
LEVELS = ["default", "avx2", "avx512"]


def native_capability() -> str:
    """The best kernel set this CPU runs (torch's own detection, in a clean process): 'default', 'avx2', 'avx512'."""
    env = {k: v for k, v in os.environ.items() if k not in KERNEL_SETS["default"]}
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
                         env=env, capture_output=True, text=True, check=True).stdout.strip().lower()
    return next((level for level in reversed(LEVELS) if out.startswith(level)), "default")


def supported(kernels: list[str]) -> tuple[list[str], dict[str, str]]:
    """``kernels`` split into those this CPU runs and ``{name: why skipped}``."""
    unknown = [k for k in kernels if k not in KERNEL_SETS]
    if unknown:
        raise SystemExit(f"--kernels {' '.join(unknown)}: unknown; choose from {' '.join(KERNEL_SETS)}")
    native = native_capability()
    top = LEVELS.index(native)
    run = [k for k in kernels if LEVELS.index(k) <= top]
    skipped = {k: f"this CPU's best kernel set is {native}" for k in kernels if k not in run}
    return run, skipped


def run_cell(kernel: str, seed: int, path: str, only: list[str] | None, out: Path, jobs: int,
             cache_root: Path, params: list[str] = ()) -> Path:
    """One cell: ``python -m course run`` in a fresh process with the kernel set's environment; its run folder."""
    env = dict(os.environ, **KERNEL_SETS[kernel], COURSE_CACHE=str(cache_root / kernel), HF_HUB_OFFLINE="1")
    cell_out = out / f"{kernel}-seed{seed}"
    cmd = [sys.executable, "-m", "course", "run", "--path", path, "--param", f"SEED={seed}", "--jobs", str(jobs),
           "--out", str(cell_out)] + (["--only", *only] if only else []) + [f"--param={p}" for p in params]
    cell_out.mkdir(parents=True, exist_ok=True)
    log = cell_out / "cell.log"
    print(f"[{kernel} · seed {seed}] {' '.join(cmd[1:])}  (output: {log})", flush=True)
    start = time.perf_counter()
    with log.open("w") as f:
        subprocess.run(cmd, env=env, cwd=REPO_ROOT, check=False, stdout=f, stderr=subprocess.STDOUT)
    runs = sorted(cell_out.glob(f"{path}-*/run.json"))
    if not runs:
        raise SystemExit(f"cell {kernel}/seed {seed} wrote no run.json under {cell_out}; see {log}")
    lessons = json.loads(runs[-1].read_text())["lessons"]
    failed = [r["stem"] for r in lessons if r["status"] == "failed"]
    print(f"[{kernel} · seed {seed}] {len(lessons)} lessons in {time.perf_counter() - start:.0f} s"
          f"{' · FAILED: ' + ', '.join(failed) if failed else ''}", flush=True)
    return runs[-1].parent


def collect(run_dirs: dict[str, Path]) -> dict:
    """Evaluate every lesson's claims on every cell; ``{"claims": [...], "spreads": [...], "cells": [...]}``."""
    rows: dict[tuple[str, str], dict] = {}
    spreads: dict[tuple[str, str], dict] = {}
    seconds: dict[str, list[float]] = {}
    for cell, run_dir in run_dirs.items():
        lessons = json.loads((run_dir / "run.json").read_text())["lessons"]
        for record in lessons:
            number = record["number"]
            if number not in claims.CLAIMS or record["status"] == "planned":
                continue
            seconds.setdefault(number, []).append(record["seconds"])
            for check in claims.evaluate(number, record["metrics"]):
                row = rows.setdefault((number, check.name), {"lesson": number, "claim": check.name, "op": check.op,
                                                             "bound": check.bound, "values": {}, "failed": []})
                row["values"][cell] = check.value
                if not check.ok:
                    row["failed"].append(cell)
            for (lesson, metric), bound in claims.SPREADS.items():
                if lesson == number and isinstance(record["metrics"].get(metric), (int, float)):
                    spread = spreads.setdefault((lesson, metric), {"lesson": lesson, "metric": metric, "bound": bound,
                                                                    "values": {}})
                    spread["values"][cell] = record["metrics"][metric]
    for spread in spreads.values():
        values = list(spread["values"].values())
        spread["spread"] = max(values) - min(values)
        spread["ok"] = spread["spread"] <= spread["bound"] and len(values) == len(run_dirs)
    return {"cells": list(run_dirs), "claims": list(rows.values()), "spreads": list(spreads.values()),
            "seconds": {n: [min(s), max(s)] for n, s in sorted(seconds.items())}}


def _range(values: list) -> tuple[str, str]:
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(numbers) == len(values) and numbers:
        return claims.shown(min(numbers)), claims.shown(max(numbers))
    texts = sorted({claims.shown(v) for v in values})
    return (texts[0], texts[-1]) if texts else ("-", "-")


def to_markdown(table: dict, skipped: dict[str, str], command: str) -> str:
    cells = table["cells"]
    failed = [r for r in table["claims"] if r["failed"]]
    spread = [s for s in table["spreads"] if not s["ok"]]
    verdict = " ".join(([f"**{len(failed)} claim(s) fail on some cell.**"] if failed else [])
                       + ([f"**{len(spread)} spread(s) over their bound.**"] if spread else []))
    lines = [f"# Claims over {len(cells)} cells: {', '.join(cells)}", "", f"`{command}`", ""]
    lines += [f"- kernel set **{k}** skipped: {why}" for k, why in skipped.items()]
    lines += [verdict or "**Every claim holds on every cell.**",
              "", "| lesson | claim | bound | min | max | cells failing |", "|---|---|---|---|---|---|"]
    for row in table["claims"]:
        low, high = _range(list(row["values"].values()))
        missing = [c for c in cells if c not in row["values"]]
        failing = ", ".join(row["failed"] + [f"{c} (not run)" for c in missing]) or "none"
        lines.append(f"| {row['lesson']} | {row['claim']} | {row['op']} {claims.shown(row['bound'])} | {low} | "
                     f"{high} | {'**' + failing + '**' if failing != 'none' else failing} |")
    if table["spreads"]:
        lines += ["", "| lesson | metric | spread over the cells (max - min) | bound | min | max |", "|---|---|---|---|---|---|"]
        for s in table["spreads"]:
            low, high = _range(list(s["values"].values()))
            mark = "" if s["ok"] else " **over**"
            lines.append(f"| {s['lesson']} | {s['metric']} | {s['spread']:.3f}{mark} | {s['bound']} | {low} | {high} |")
    lines += ["", "| lesson | seconds (min - max over cells) |", "|---|---|"]
    lines += [f"| {n} | {lo:.0f} - {hi:.0f} |" for n, (lo, hi) in table["seconds"].items()]
    return "\n".join(lines) + "\n"


def main(only: list[str] | None, seeds: list[int], kernels: list[str], path: str = "complete", jobs: int = 2,
         out_root: Path | None = None, cache_root: Path | None = None, params: list[str] = ()) -> int:
    if any(p.split("=", 1)[0] == "SEED" for p in params):
        raise SystemExit("--param SEED=...: the matrix sets SEED itself (--seeds)")
    run_kernels, skipped = supported(kernels)
    for name, why in skipped.items():
        print(f"kernel set {name} skipped: {why}", flush=True)
    if not run_kernels:
        raise SystemExit("no kernel set to run")
    out = (out_root or REPO_ROOT / "runs") / f"matrix-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True)
    cache_root = cache_root or cache_dir() / "matrix"
    run_dirs = {f"{k}/seed {s}": run_cell(k, s, path, only, out, jobs, cache_root, params)
                for k in run_kernels for s in seeds}
    table = collect(run_dirs)
    command = "python -m course matrix" + (f" --only {' '.join(only)}" if only else "") + \
        f" --seeds {' '.join(map(str, seeds))} --kernels {' '.join(kernels)} --path {path}" + \
        "".join(f" --param {p}" for p in params)
    (out / "matrix.json").write_text(json.dumps(table | {"skipped": skipped, "command": command}, indent=1,
                                                default=str) + "\n")
    text = to_markdown(table, skipped, command)
    (out / "matrix.md").write_text(text)
    print(text)
    print(f"written to {out / 'matrix.md'}")
    bad = any(r["failed"] for r in table["claims"]) or any(not s["ok"] for s in table["spreads"])
    return 1 if bad else 0
