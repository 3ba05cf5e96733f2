"""The one home of the course's model cache: where entries live, how they are written, and which seed builds them.

Every cached build (the tokenizer and pretrained models of ``helpers.tiny``, the fine-tuned models of
``helpers.recipes``, the t4 stand-ins of ``helpers.standins``) writes through ``atomic_save`` into ``cache_dir()``.
This module imports nothing else of the course's, so ``tiny`` → ``cache`` and ``recipes`` → ``tiny``, ``cache``
run one way.

The seed of the shared fine-tuned models (``tiny:sft``, ``tiny:rm``, ``tiny:dpo``) is the lesson's ``SEED``:
``environment.setup(SEED, ...)`` and the course runner put it in ``$COURSE_SEED``, so a lesson run with another
seed also starts from models trained with that seed (each seed is its own cache entry). The pretrained models
(``tiny:base``, ``tiny:draft``, ``tiny:large``) play the part of a downloaded checkpoint and are built from seed 0.

Introduced in 03_sft.ipynb.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
from pathlib import Path

from helpers.paths import cache_dir

__all__ = ["SEED_VARIABLE", "atomic_save", "cache_dir", "entry_key", "shared_seed", "use_seed"]

SEED_VARIABLE = "COURSE_SEED"


def entry_key(functions=(), files=(), parts=()) -> str:
    """A cache entry's key: the source of the ``functions`` that build it (a code change rebuilds), the bytes of the
    ``files`` it is built from, and each of ``parts`` as JSON; 12 hex digits of their SHA-256."""
    h = hashlib.sha256()
    for fn in functions:
        h.update(inspect.getsource(fn).encode())
    for file in files:
        h.update(Path(file).read_bytes())
    for part in parts:
        h.update(json.dumps(part, sort_keys=True, default=str).encode())
    return h.hexdigest()[:12]


def shared_seed() -> int:
    """The seed the shared fine-tuned models are built with: ``$COURSE_SEED``, else 0. Introduced in 03_sft.ipynb."""
    value = os.environ.get(SEED_VARIABLE, "0")
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"${SEED_VARIABLE} must be an integer seed, got {value!r}") from None


def use_seed(seed: int) -> None:
    """Make ``seed`` the shared models' seed for this process and the processes it starts (``$COURSE_SEED``)."""
    os.environ[SEED_VARIABLE] = str(int(seed))


def atomic_save(folder: Path, save) -> None:
    """Write a cache entry into a private temporary folder with ``save(tmp)``, then rename it into place.

    Two processes building the same entry at once (parallel notebooks, pytest-xdist) each write their own
    temporary folder; the first rename wins and the other copy is discarded, since both are identical.
    """
    folder = Path(folder)
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    save(tmp)
    try:
        tmp.rename(folder)
    except OSError:
        if not folder.exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
