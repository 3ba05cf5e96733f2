"""Notebook hygiene: strip outputs and check the course conventions.

``python -m helpers.notebooks strip notebooks/*.ipynb`` clears outputs, execution counts and noisy metadata;
``python -m helpers.notebooks check notebooks/*.ipynb`` lists what breaks the conventions (exit 1 if any).
Introduced in 00_welcome.ipynb (for maintainers).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

KEEP_NOTEBOOK_METADATA = ("kernelspec", "language_info")
MAX_CELL_LINES = 40


def _lines(cell: dict) -> list[str]:
    src = cell["source"]
    return "".join(src).splitlines() if isinstance(src, list) else src.splitlines()


def dumps(nb: dict) -> str:
    """A notebook as the course commits it: JSON with one-space indents, UTF-8 kept, a final newline."""
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def strip(path: Path) -> bool:
    """Clear outputs/execution counts, drop non-essential metadata and give new cells an id, in place.

    Returns True if the file changed. nbformat 4.5 requires a unique ``id`` per cell; a cell added by a script
    or an old editor has none, so it gets ``c<index>`` (or ``c<index>-<n>`` if that is taken).
    """
    text = path.read_text()
    nb = json.loads(text)
    taken = {c["id"] for c in nb["cells"] if "id" in c}
    for i, cell in enumerate(nb["cells"]):
        if "id" not in cell:
            cell_id, n = f"c{i:03d}", 0
            while cell_id in taken:
                n += 1
                cell_id = f"c{i:03d}-{n}"
            cell["id"] = cell_id
            taken.add(cell_id)
    nb["metadata"] = {k: v for k, v in nb.get("metadata", {}).items() if k in KEEP_NOTEBOOK_METADATA}
    for cell in nb["cells"]:
        tags = cell.get("metadata", {}).get("tags")
        cell["metadata"] = {"tags": tags} if tags else {}
        if cell["cell_type"] == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    new = dumps(nb)
    if new != text:
        path.write_text(new)
    return new != text


def problems(path: Path) -> list[str]:
    """Convention breaks in one notebook: outputs committed, parameters cell count, long cells, kernelspec."""
    try:
        nb = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        return [f"{path}: not valid JSON ({err})"]
    found = []
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    if any(c.get("outputs") or c.get("execution_count") is not None for c in code):
        found.append(f"{path}: outputs or execution counts committed (run `make strip`)")
    params = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(params) != 1:
        found.append(f"{path}: {len(params)} cells tagged 'parameters' (need exactly one)")
    for i, cell in enumerate(code):
        if len(_lines(cell)) > MAX_CELL_LINES:
            found.append(f"{path}: code cell {i} has {len(_lines(cell))} lines (max {MAX_CELL_LINES})")
    ids = [c.get("id") for c in nb["cells"]]
    if None in ids or len(set(ids)) != len(ids):
        found.append(f"{path}: cells without a unique id (run `make strip`)")
    if "kernelspec" not in nb.get("metadata", {}):
        found.append(f"{path}: no kernelspec metadata (papermill needs it)")
    return found


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2 or argv[0] not in {"strip", "check"}:
        print(__doc__)
        return 2
    paths = [Path(p) for p in argv[1:]]
    if argv[0] == "strip":
        for path in paths:
            print(f"{'stripped' if strip(path) else 'clean   '} {path}")
        return 0
    found = [p for path in paths for p in problems(path)]
    print("\n".join(found) or "all notebooks follow the conventions")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
