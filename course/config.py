"""Run configurations: `python -m course run --config FILE` maps a YAML file onto the notebooks' parameters.

A config is a mapping of parameter names (as in a notebook's ``parameters`` cell; lower case is accepted) to values::

    SEED: 1            # every lesson that has the parameter gets it
    STEPS: 200
    LEARNING_RATE: null  # null: the profile's default, as in the notebooks

Every field must be a parameter of at least one lesson of the run; a field that none has is an error naming the
file, its line and each lesson's parameters (a typo would otherwise be ignored by papermill). Each lesson gets the
fields it has. ``--param NAME=VALUE`` is checked the same way and wins over the file.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

from course.syllabus import Lesson
from helpers.paths import NOTEBOOKS_DIR

CONFIGS_DIR = Path(__file__).parent / "configs"  # example run configs (the capstones'), ready for --config


class ConfigError(SystemExit):
    """A config the run cannot use: the message names the file, line and field."""


def lesson_parameters(lesson: Lesson, notebooks_dir: Path = NOTEBOOKS_DIR) -> dict[str, str]:
    """``{NAME: its trailing comment}`` of the cell tagged ``parameters`` of ``lesson``'s notebook, in order: the
    fields a config can set for it, with what each does."""
    cells = json.loads((Path(notebooks_dir) / f"{lesson.stem}.ipynb").read_text(encoding="utf-8"))["cells"]
    cell = next(c for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))
    lines = "".join(cell["source"]).splitlines()
    out = {}
    for node in ast.parse("\n".join(lines)).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            comment = lines[node.end_lineno - 1].partition("#")[2].strip()
            out[node.targets[0].id] = comment
    return out


def load(path: str | Path) -> dict[str, tuple[object, str]]:
    """``{NAME: (value, "FILE:LINE")}`` of a YAML config; a file that is not a mapping of names to values, or that
    names a field twice, is a ConfigError naming the file and line."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--config {path}: no such file")
    text = path.read_text(encoding="utf-8")
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if root is None:
        return {}
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError(f"{path}:{root.start_mark.line + 1}: a config is a mapping of parameter names to values "
                          "(e.g. `SEED: 1`)")
    out: dict[str, tuple[object, str]] = {}
    for key, value in root.value:
        where = f"{path}:{key.start_mark.line + 1}"
        if not isinstance(key, yaml.ScalarNode) or not key.value.isidentifier():
            raise ConfigError(f"{where}: field {key.value!r} is not a parameter name")
        name = key.value.upper()
        if name in out:
            raise ConfigError(f"{where}: field {key.value!r} set twice (first at {out[name][1]})")
        out[name] = (yaml.safe_load(yaml.serialize(value)), where)
    return out


def check(params: dict[str, tuple[object, str]], lessons: list[Lesson],
          notebooks_dir: Path = NOTEBOOKS_DIR) -> dict[str, dict]:
    """Each lesson's parameters from ``params`` (``{NAME: (value, where)}``): ``{stem: {NAME: value}}``. A field no
    lesson has is a ConfigError naming where it was set and every lesson's parameters."""
    known = {lesson.stem: lesson_parameters(lesson, notebooks_dir) for lesson in lessons}
    unknown = [(name, where) for name, (_, where) in params.items() if not any(name in p for p in known.values())]
    if unknown:
        listing = "\n".join(f"  {stem}: {', '.join(p)}" for stem, p in known.items())
        fields = "; ".join(f"{where}: unknown field {name!r}" for name, where in unknown)
        raise ConfigError(f"{fields}: no lesson of this run has that parameter. Their parameters:\n{listing}\n"
                          "(`python -m course parameters NN` says what each one does)")
    return {stem: {name: value for name, (value, _) in params.items() if name in p} for stem, p in known.items()}
