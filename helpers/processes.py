"""Child processes a lesson starts (lesson 16's server, lesson 17's ranks): each in a process group of its own,
stopped whole, and sent SIGTERM if the notebook's kernel dies first, so no process outlives its lesson.

Introduced in 16_serving.ipynb; 17_distributed_training.ipynb starts its ranks the same way.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess


def _die_with_parent():  # Linux: the child gets SIGTERM if the process that started it dies first
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def start(command: list[str], stdout, env: dict | None = None, text: bool = False) -> subprocess.Popen:
    """Start ``command`` in a new process group (its children join it), stderr into ``stdout``."""
    return subprocess.Popen(command, stdout=stdout, stderr=subprocess.STDOUT, env=env, text=text,
                            start_new_session=True, preexec_fn=_die_with_parent)


def stop(process: subprocess.Popen, timeout: float = 30.0) -> int:
    """SIGTERM the process's whole group, SIGKILL it after ``timeout`` s (0: at once); the exit code."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM if timeout > 0 else signal.SIGKILL)
        try:
            process.wait(timeout if timeout > 0 else None)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode


def alive(process: subprocess.Popen) -> bool:
    """True while the process or any process of its group still exists."""
    try:
        os.killpg(process.pid, 0)
        return True
    except ProcessLookupError:
        return False
