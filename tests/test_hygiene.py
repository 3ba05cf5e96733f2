import json
import re
import subprocess
import sys

import pytest

from course import syllabus
from course.sync import INSTALL_MARKER
from helpers import notebooks, profiles
from helpers.paths import NOTEBOOKS_DIR, REPO_ROOT

NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
SKELETON = ["Learning objectives", "Time and hardware", "## Summary", "## Exercises", "## Next lessons"]


def test_notebooks_are_the_syllabus_ready_lessons():
    # every ready lesson has its notebook, and no notebook lies outside the syllabus (planned lessons have none)
    lessons = syllabus.load().lessons.values()
    assert {p.stem for p in NOTEBOOKS} == {lesson.stem for lesson in lessons if lesson.status == "ready"}


def test_no_import_cycle_inside_helpers():
    """helpers' modules import each other one way (issue 23): every `from helpers...` import, also inside a function,
    is an edge; a cycle fails and is named."""
    import ast

    graph = {}
    for path in (REPO_ROOT / "helpers").glob("*.py"):
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "helpers":
                edges |= {a.name for a in node.names} if node.module == "helpers" else {node.module.split(".")[1]}
            elif isinstance(node, ast.Import):
                edges |= {a.name.split(".")[1] for a in node.names if a.name.startswith("helpers.")}
        graph[path.stem] = edges - {path.stem}

    def cycle_from(start, node, path):
        for nxt in sorted(graph.get(node, ())):
            if nxt == start:
                return path + [nxt]
            if nxt not in path:
                found = cycle_from(start, nxt, path + [nxt])
                if found:
                    return found
        return None

    cycles = [c for c in (cycle_from(m, m, [m]) for m in sorted(graph)) if c]
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_follows_conventions(path):
    assert re.fullmatch(r"\d\d_[a-z0-9_]+", path.stem)
    assert notebooks.problems(path) == []
    nb = json.loads(path.read_text())
    markdown = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert markdown.startswith(f"# {path.stem[:2]} · ")
    for part in SKELETON:
        assert part in markdown, f"{path.name}: skeleton part {part!r} missing"
    assert re.search(r"^## \d+\.\d+ ", markdown, re.M), "numbered N.M sections"
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    # the first code cell is the generated Colab/Kaggle install cell (course sync fills in only cells that have it)
    assert code[0].startswith(INSTALL_MARKER) and "import" in code[0], f"{path.name}: no install cell first"
    lengths = sorted(len(c.splitlines()) for c in code)
    assert lengths[len(lengths) // 2] <= 10, "median code cell over 10 lines"
    assert any("exercises.check(" in c for c in code), "exercises are checked by a helper"
    assert any("record_metrics(" in c for c in code), "the lesson records its metrics"
    # the learner's run against the lesson's claims, right before the Summary that states them
    cells = nb["cells"]
    summary = next(i for i, c in enumerate(cells) if "".join(c["source"]).startswith("## Summary"))
    assert f'show_claims("{path.stem}")' in "".join(cells[summary - 1]["source"]), "show_claims before the Summary"
    params = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])][0]
    for line in "".join(params["source"]).splitlines():
        assert "#" in line, f"{path.name}: parameter without a trailing comment: {line}"
    assert "".join(params["source"]).startswith("PROFILE = ")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_badge_and_install_cell_point_at_the_course_repo(path):
    syl = syllabus.load()
    text = path.read_text()
    lesson = syl.lessons[path.stem[:2]]
    assert syl.badge_url(lesson) in text
    assert f"https://github.com/{syl.repo}" in text


def test_hub_ids_only_in_the_profile_table():
    hub_ids = {p.base_model for p in profiles.PROFILES.values()} | {p.qlora_model for p in profiles.PROFILES.values()}
    hub_ids = {i for i in hub_ids if not i.startswith("tiny:")}
    assert hub_ids
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code" and "parameters" not in cell.get("metadata", {}).get("tags", []):
                source = "".join(cell["source"])
                assert not any(i in source for i in hub_ids), f"{path.name}: Hub id outside the parameters cell"
    for py in list((REPO_ROOT / "helpers").glob("*.py")) + list((REPO_ROOT / "course").glob("*.py")):
        if py.name != "profiles.py":
            assert not any(i in py.read_text() for i in hub_ids), f"{py}: Hub id outside helpers/profiles.py"


def test_strip_is_idempotent_on_committed_notebooks(tmp_path):
    for path in NOTEBOOKS:
        copy = tmp_path / path.name
        copy.write_text(path.read_text())
        assert notebooks.strip(copy) is False, f"{path.name} is not stripped: run `make strip`"


def test_strip_gives_new_cells_unique_ids(tmp_path):
    nb = json.loads(NOTEBOOKS[0].read_text())
    nb["cells"][1].pop("id")
    nb["cells"].insert(2, {"cell_type": "markdown", "metadata": {}, "source": ["added by a script"]})
    copy = tmp_path / "nb.ipynb"
    copy.write_text(notebooks.dumps(nb))
    assert any("unique id" in p for p in notebooks.problems(copy))
    assert notebooks.strip(copy) is True
    ids = [c["id"] for c in json.loads(copy.read_text())["cells"]]
    assert len(set(ids)) == len(ids) and notebooks.problems(copy) == []


def test_ruff_passes_on_code_and_notebooks():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", str(REPO_ROOT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_requirements_pin_everything_once_and_exclude_vllm():
    lines = [ln.split("#")[0].strip() for ln in (REPO_ROOT / "requirements.txt").read_text().splitlines()]
    pins = [ln for ln in lines if ln]
    assert all("==" in p for p in pins)
    names = [p.split("==")[0].lower() for p in pins]
    assert len(names) == len(set(names))
    assert "torch==2.13.0" in pins and "vllm" not in names
