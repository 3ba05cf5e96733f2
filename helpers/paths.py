"""Where the course keeps things: the repository, its shipped data, the tiny-model cache, run outputs.

Introduced in 00_welcome.ipynb.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "data"
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"


# A folder that outlives a hosted runtime: Kaggle keeps /kaggle/working as the notebook's output (up to 20 GB). Colab
# has none by default; a learner who mounted Drive sets COURSE_CACHE=/content/drive/MyDrive/llm-course-cache
# (the t4 shared models take ~12 GB in fp32, most of a free Drive: the course never puts them there unasked).
PERSISTENT_ROOTS = (Path("/kaggle/working"),)


def cache_dir() -> Path:
    """Folder for the models the course builds and caches: ``$COURSE_CACHE``; else, on Kaggle, ``llm-course-cache``
    in its working folder (it survives the session: the t4 SFT, reward and DPO models are trained once); else
    ``~/.cache/llm-course``.

    Introduced in 00_welcome.ipynb.
    """
    persistent = next((root / "llm-course-cache" for root in PERSISTENT_ROOTS if root.is_dir()), None)
    path = Path(os.environ.get("COURSE_CACHE") or persistent or Path.home() / ".cache" / "llm-course")
    path.mkdir(parents=True, exist_ok=True)
    return path


def output_dir() -> Path:
    """Folder where a notebook writes its metrics and logs: ``$COURSE_OUTPUT_DIR`` (set by the runner) or the cwd.

    Introduced in 00_welcome.ipynb.
    """
    path = Path(os.environ.get("COURSE_OUTPUT_DIR", "."))
    path.mkdir(parents=True, exist_ok=True)
    return path
