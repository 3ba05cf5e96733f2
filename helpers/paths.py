"""Where the course keeps things: the repository, its shipped data, the tiny-model cache, run outputs.

Introduced in 00_welcome.ipynb.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "data"
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"


def cache_dir() -> Path:
    """Folder for the tiny models the course builds (``$COURSE_CACHE``, default ``~/.cache/llm-course``).

    Introduced in 00_welcome.ipynb.
    """
    path = Path(os.environ.get("COURSE_CACHE", Path.home() / ".cache" / "llm-course"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def output_dir() -> Path:
    """Folder where a notebook writes its metrics and logs: ``$COURSE_OUTPUT_DIR`` (set by the runner) or the cwd.

    Introduced in 00_welcome.ipynb.
    """
    path = Path(os.environ.get("COURSE_OUTPUT_DIR", "."))
    path.mkdir(parents=True, exist_ok=True)
    return path
