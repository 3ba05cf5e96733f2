"""Shared test setup: offline, one tiny-model cache inside the checkout, quiet tokenizers."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("COURSE_CACHE", str(REPO / ".cache" / "llm-course"))
