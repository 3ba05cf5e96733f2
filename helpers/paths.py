"""Where the course keeps things: the repository, its shipped data, the tiny-model cache, run outputs.

Introduced in 00_welcome.ipynb.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "data"
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"


# Folders that outlive a hosted runtime, first found wins: Kaggle keeps /kaggle/working as the notebook's output,
# and a Google Drive the learner mounted in Colab stays after the runtime is recycled (the course never mounts it:
# mounting asks for a login).
PERSISTENT_ROOTS = (Path("/kaggle/working"), Path("/content/drive/MyDrive"))


def cache_dir() -> Path:
    """Folder for the models the course builds and caches: ``$COURSE_CACHE``; else, on Kaggle or in a Colab with
    Drive mounted, ``llm-course-cache`` there (it survives the runtime: the t4 SFT, reward and DPO models are
    trained once); else ``~/.cache/llm-course``.

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
