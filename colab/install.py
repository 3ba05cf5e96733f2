"""Colab / Kaggle install step: the course's pinned libraries, without ever replacing the platform's torch.

Called by the first cell of every notebook on a hosted runtime: ``python llm-course/colab/install.py``.
It reads requirements.txt (the one place versions are pinned), drops torch and the test-only tools, pins
torch to the version already installed (so no dependency can pull another build), and installs the course
package itself in editable mode.
"""

import importlib.metadata
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SKIP = {"torch", "pytest", "ruff", "papermill"}  # the platform's torch stays; tests/lint are not needed there


def main() -> None:
    pins = []
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and line.split("==")[0].lower() not in SKIP:
            pins.append(line)
    torch_version = importlib.metadata.version("torch")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as constraints:
        constraints.write(f"torch=={torch_version}\n")
    print(f"keeping torch {torch_version}; installing {len(pins)} pinned packages")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-c", constraints.name, *pins], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-e", str(REPO)], check=True)


if __name__ == "__main__":
    main()
