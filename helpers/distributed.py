"""Launching the multi-process runs of 17_distributed_training.ipynb from a notebook, and reading their logs.

The training script itself is written out in the notebook; this module only starts it (``torchrun`` or
``accelerate launch``), waits with a time limit, kills the whole process group if it overruns, and loads the JSON
record each rank writes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from helpers import processes


def run_processes(command: list[str], timeout: float = 300, threads_per_rank: int = 1) -> str:
    """Run ``command`` (a launcher and its script) to the end and return its output.

    The child gets the notebook's ``sys.path`` (so ``helpers`` imports on Colab too) and ``OMP_NUM_THREADS``; it
    runs in its own process group, which is killed whole on timeout, so no rank outlives the cell. A failure
    raises with the last lines of the output. Introduced in 17_distributed_training.ipynb.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
           "OMP_NUM_THREADS": str(threads_per_rank), "TOKENIZERS_PARALLELISM": "false"}
    process = processes.start(command, subprocess.PIPE, env, text=True)  # its own process group
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        processes.stop(process, timeout=0)  # SIGKILL, the whole group
        output, _ = process.communicate()
        raise RuntimeError(f"{' '.join(command)} ran past {timeout} s and was killed:\n{output[-3000:]}") from None
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {process.returncode}:\n{output[-3000:]}")
    return output


def read_ranks(folder: str | Path, mode: str) -> list[dict]:
    """The records ``<mode>-rank<N>.json`` the ranks of one run wrote, in rank order. Introduced in
    17_distributed_training.ipynb."""
    paths = sorted(Path(folder).glob(f"{mode}-rank*.json"), key=lambda p: int(p.stem.rsplit("rank", 1)[1]))
    if not paths:
        raise FileNotFoundError(f"no {mode}-rank*.json in {folder}: did the run start?")
    return [json.loads(p.read_text()) for p in paths]
