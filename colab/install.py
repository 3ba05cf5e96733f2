"""Colab / Kaggle install step: what one lesson needs, at the versions pinned in requirements.txt, without
touching anything the running kernel has already imported.

The first code cell of every notebook runs it *inside the notebook's kernel*, so it can see ``sys.modules``::

    install = runpy.run_path("llm-course/colab/install.py")
    install["main"](lesson="02")

Decisions (made by :func:`plan`, a pure function the tests feed with fake environments):

- torch is never installed: the platform's build (CUDA) stays, and a constraint pins it so no dependency
  can pull another one;
- a package whose modules the kernel has already imported (numpy on Colab, pillow, ipykernel, ...) keeps its
  installed version, pinned by a constraint: a new numpy under a running kernel breaks it until a restart;
- only the lesson's packages (``[course] packages`` plus the lesson's ``packages`` in course/syllabus.toml)
  are installed, and only those not already at the pinned version;
- a torchao older than 0.16 is uninstalled: peft >= 0.19 refuses to import beside it (Colab ships 0.10).

Runs in well under two minutes on a fresh Colab runtime (wheels only) and prints what it did; lesson 12's
llama-cpp-python compiles from source (~10 minutes, once per runtime).
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NEVER_INSTALL = {"torch"}  # the platform's build stays
TORCHAO_MINIMUM = (0, 16)  # peft's own minimum (peft/import_utils.py)
MIN_PYTHON = (3, 11)
# llama-cpp-python compiles llama.cpp from source (no CPU wheel on PyPI): only the library, not its tools, examples,
# tests or the multimodal part. The Makefile passes the same flags.
LLAMA_CMAKE_ARGS = "-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF"


def canonical(name: str) -> str:
    """PEP 503 name: lower case, runs of ``-_.`` as one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3])


@dataclass
class Plan:
    install: list[str] = field(default_factory=list)  # "name==version" to pip install
    constraints: list[str] = field(default_factory=list)  # "name==version" nothing may change
    uninstall: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # one line per decision, printed


def read_pins(text: str) -> dict[str, str]:
    """requirements.txt → {canonical name: version}; every line must be ``name==version``."""
    pins = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#")[0].strip()
        if not line:
            continue
        if "==" not in line:
            raise ValueError(f"requirements.txt:{number}: expected name==version, got {line!r}")
        name, version = line.split("==", 1)
        pins[canonical(name)] = version.strip()
    return pins


def lesson_packages(syllabus: dict, lesson: str | None) -> list[str]:
    """The packages a lesson needs: the course's core list plus the lesson's own (all lessons' when None)."""
    core = list(syllabus["course"]["packages"])
    lessons = syllabus["lessons"]
    if lesson is not None and lesson not in {entry["number"] for entry in lessons}:
        raise ValueError(f"unknown lesson {lesson!r}; course/syllabus.toml has {[e['number'] for e in lessons]}")
    extra = [p for e in lessons if lesson is None or e["number"] == lesson for p in e.get("packages", [])]
    return list(dict.fromkeys(canonical(p) for p in core + extra))


def plan(pins: dict[str, str], wanted: list[str], installed: dict[str, str], imported: set[str],
         python: tuple[int, int] = MIN_PYTHON) -> Plan:
    """Decide what to install, pin and remove.

    ``installed``: {canonical distribution: version} of the environment; ``imported``: canonical names of the
    distributions whose modules the running kernel has loaded.
    """
    if tuple(python) < MIN_PYTHON:
        raise RuntimeError(f"the course needs Python {'.'.join(map(str, MIN_PYTHON))}+, this runtime has "
                           f"{'.'.join(map(str, python))}")
    result = Plan()
    missing = [name for name in wanted if name not in pins]
    if missing:
        raise ValueError(f"course/syllabus.toml asks for {missing}, which requirements.txt does not pin")
    for name in sorted(set(imported) | NEVER_INSTALL):
        if name in installed:
            result.constraints.append(f"{name}=={installed[name]}")
    for name in sorted(NEVER_INSTALL):
        result.notes.append(f"keep {name} {installed.get(name, '(missing: install it first)')}: the platform's build")
    for name in wanted:
        have = installed.get(name)
        if name in NEVER_INSTALL:
            continue
        if name in imported and have is not None:
            if have != pins[name]:
                result.notes.append(f"keep {name} {have}: already imported by this kernel (course pin {pins[name]})")
        elif have == pins[name]:
            result.notes.append(f"ok   {name} {have}")
        else:
            result.install.append(f"{name}=={pins[name]}")
            result.notes.append(f"get  {name} {pins[name]}" + (f" (was {have})" if have else ""))
    torchao = installed.get("torchao")
    if torchao is not None and _version_tuple(torchao) < TORCHAO_MINIMUM:
        if "torchao" in imported:
            result.notes.append(f"torchao {torchao} is imported and too old for peft: restart the runtime, "
                                "then run this cell again")
        else:
            result.uninstall.append("torchao")
            result.notes.append(f"drop torchao {torchao}: peft refuses to import beside a torchao older than "
                                f"{'.'.join(map(str, TORCHAO_MINIMUM))}")
    return result


def installed_distributions() -> dict[str, str]:
    return {canonical(d.metadata["Name"]): d.version for d in importlib.metadata.distributions() if d.metadata["Name"]}


def imported_distributions(modules=None) -> set[str]:
    """Canonical names of the distributions that provide the top-level modules already imported."""
    modules = sys.modules if modules is None else modules
    owners = importlib.metadata.packages_distributions()
    tops = {name.split(".")[0] for name in modules}
    return {canonical(dist) for top in tops for dist in owners.get(top, [])}


def main(lesson: str | None = None, dry_run: bool = False) -> Plan:
    """Install what ``lesson`` (e.g. "02") needs; every lesson's packages when None."""
    start = time.perf_counter()
    syllabus = tomllib.loads((REPO / "course" / "syllabus.toml").read_text())
    pins = read_pins((REPO / "requirements.txt").read_text())
    decided = plan(pins, lesson_packages(syllabus, lesson), installed_distributions(), imported_distributions(),
                   sys.version_info[:2])
    print(f"course install for lesson {lesson or 'all'} (Python {sys.version.split()[0]}):")
    for note in decided.notes:
        print("  " + note)
    if dry_run:
        return decided
    pip = [sys.executable, "-m", "pip"]
    if decided.uninstall:
        subprocess.run([*pip, "uninstall", "-y", "-q", *decided.uninstall], check=True)
    if decided.install:
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as constraints:
            constraints.write("\n".join(decided.constraints) + "\n")
        if any(p.startswith("llama-cpp-python") for p in decided.install):
            print("  compiling llama-cpp-python (llama.cpp from source): ~10 min, once per runtime")
        env = {**os.environ, "CMAKE_ARGS": os.environ.get("CMAKE_ARGS", LLAMA_CMAKE_ARGS)}
        subprocess.run([*pip, "install", "-q", "--prefer-binary", "-c", constraints.name, *decided.install],
                       check=True, env=env)
    print(f"  done in {time.perf_counter() - start:.0f}s; {len(decided.constraints)} packages held at their "
          "installed versions")
    return decided


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lesson", help="lesson number, e.g. 02 (default: every lesson's packages)")
    parser.add_argument("--dry-run", action="store_true", help="print the decisions, install nothing")
    args = parser.parse_args()
    main(args.lesson, args.dry_run)
