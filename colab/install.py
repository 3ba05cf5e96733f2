"""Colab / Kaggle install step: what one lesson needs, at the versions pinned in requirements.txt, without
touching anything the running kernel has already imported.

The first code cell of every notebook runs it *inside the notebook's kernel*, so it can see ``sys.modules``::

    install = runpy.run_path("llm-course/colab/install.py")
    install["main"](lesson="03")

Decisions (made by :func:`plan`, a pure function the tests feed with fake environments):

- torch is never installed: the platform's build (CUDA) stays, and a constraint pins it so no dependency
  can pull another one;
- a package whose modules the kernel has already imported (numpy on Colab, pillow, ipykernel, ...) keeps its
  installed version, pinned by a constraint: a new numpy under a running kernel breaks it until a restart;
- only the lesson's packages (``[course] packages`` plus the lesson's ``packages`` in course/syllabus.toml)
  are installed, and only those not already at the pinned version;
- a torchao older than 0.16 is uninstalled: peft >= 0.19 refuses to import beside it (Colab ships 0.10);
- the platform's ipywidgets stays: its notebook frontend renders the widgets of the version it ships (Colab 7.x);
- an imported package that a package to install cannot work with (Colab's pyarrow 18 under datasets 5.2, which
  requires pyarrow >= 24: the requirements of every pin are in colab/requires.json, written by
  ``python -m course sync``) is upgraded instead, and the kernel restarts once after the install (a new version
  under a running kernel is not the one it uses); the cell then runs again without installing anything.

Runs in well under two minutes on a fresh Colab runtime (wheels only) and prints what it did; lesson 14's
llama-cpp-python compiles from source (~10 minutes, once per runtime).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[1]
NEVER_INSTALL = {"torch"}  # the platform's build stays
PLATFORM_KEEPS = {"ipywidgets"}  # the platform's frontend renders its own version's widgets
REQUIRES_FILE = REPO / "colab" / "requires.json"  # every pin's own requirements (python -m course sync)
RESTART_MARKER = Path(tempfile.gettempdir()) / "llm-course-restarted.json"  # survives a kernel restart
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
    restart: list[str] = field(default_factory=list)  # imported packages upgraded: the kernel must restart once


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


def _applies(requirement: Requirement) -> bool:
    """Whether a requirement counts here: not an extra's, and its environment marker (if any) holds."""
    if requirement.marker is None:
        return True
    return "extra" not in str(requirement.marker) and requirement.marker.evaluate()


def conflicts(requires: dict[str, list[str]], wanted: list[str],
              held: dict[str, str]) -> dict[str, list[tuple[str, Requirement]]]:
    """The held packages ({name: version} nothing may change) that a wanted package cannot work with:
    {held name: [(wanted name, its requirement), ...]}, read from the wanted packages' own requirements."""
    found: dict[str, list[tuple[str, Requirement]]] = {}
    for name in wanted:
        for text in requires.get(name, []):
            req = Requirement(text)
            dep = canonical(req.name)
            if dep in held and _applies(req) and not req.specifier.contains(held[dep], prereleases=True):
                found.setdefault(dep, []).append((name, req))
    return found


def plan(pins: dict[str, str], wanted: list[str], installed: dict[str, str], imported: set[str],
         python: tuple[int, int] = MIN_PYTHON, requires: dict[str, list[str]] | None = None) -> Plan:
    """Decide what to install, pin, remove and whether the kernel must restart.

    ``installed``: {canonical distribution: version} of the environment; ``imported``: canonical names of the
    distributions whose modules the running kernel has loaded; ``requires``: {pinned package: its requirements}
    (colab/requires.json), to find the held packages a pin cannot work with.
    """
    if tuple(python) < MIN_PYTHON:
        raise RuntimeError(f"the course needs Python {'.'.join(map(str, MIN_PYTHON))}+, this runtime has "
                           f"{'.'.join(map(str, python))}")
    result = Plan()
    missing = [name for name in wanted if name not in pins]
    if missing:
        raise ValueError(f"course/syllabus.toml asks for {missing}, which requirements.txt does not pin")
    held = {name: installed[name] for name in sorted((set(imported) | NEVER_INSTALL | PLATFORM_KEEPS) & set(installed))}
    upgrade: dict[str, str] = {}  # held package -> what to install instead
    for dep, found in conflicts(requires or {}, wanted, held).items():
        why = [f"{name} {pins.get(name, '')} needs {req.name}{req.specifier}" for name, req in found]
        if dep in NEVER_INSTALL:
            raise RuntimeError(f"this runtime's {dep} {held[dep]} is too old for the course ({'; '.join(why)}): "
                               f"choose a newer runtime (the course never replaces the platform's {dep})")
        needed = SpecifierSet(",".join(str(req.specifier) for _, req in found))
        upgrade[dep] = f"{dep}=={pins[dep]}" if dep in pins and needed.contains(pins[dep]) else f"{dep}{needed}"
        del held[dep]
        result.notes.append(f"up   {dep} {installed[dep]} -> {upgrade[dep][len(dep):]}: {'; '.join(why)}"
                            + ("; the kernel has imported it: it restarts once" if dep in imported else ""))
        if dep in imported:
            result.restart.append(dep)
    result.constraints = [f"{name}=={version}" for name, version in held.items()]
    for name in sorted(NEVER_INSTALL):
        result.notes.append(f"keep {name} {installed.get(name, '(missing: install it first)')}: the platform's build")
    for name in wanted:
        have = installed.get(name)
        if name in NEVER_INSTALL or name in upgrade:
            continue
        if name in held:
            if have != pins[name]:
                why = "the platform's widget frontend" if name in PLATFORM_KEEPS else "already imported by this kernel"
                result.notes.append(f"keep {name} {have}: {why} (course pin {pins[name]})")
        elif have == pins[name]:
            result.notes.append(f"ok   {name} {have}")
        else:
            result.install.append(f"{name}=={pins[name]}")
            result.notes.append(f"get  {name} {pins[name]}" + (f" (was {have})" if have else ""))
    result.install += list(upgrade.values())
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
    """{canonical name: version} of what ``import`` finds: the first copy on ``sys.path`` (Colab also has older
    copies under /usr/lib/python3/dist-packages, later on the path)."""
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():  # in sys.path order
        if dist.metadata["Name"]:
            found.setdefault(canonical(dist.metadata["Name"]), dist.version)
    return found


def read_requires(path: Path = REQUIRES_FILE) -> dict[str, list[str]]:
    return json.loads(path.read_text()) if path.exists() else {}


def imported_distributions(modules=None) -> set[str]:
    """Canonical names of the distributions that provide the top-level modules already imported."""
    modules = sys.modules if modules is None else modules
    owners = importlib.metadata.packages_distributions()
    tops = {name.split(".")[0] for name in modules}
    return {canonical(dist) for top in tops for dist in owners.get(top, [])}


def one_gpu(syllabus: dict, lesson: str | None, environ=os.environ) -> bool:
    """Show this kernel one GPU unless the lesson uses several (``gpus`` in its syllabus entry) or the variable is
    already set; must run before CUDA starts, as the install cell does. True when it set it."""
    entry = next((e for e in syllabus["lessons"] if e["number"] == lesson), {})
    if lesson is None or entry.get("gpus", 1) > 1 or "CUDA_VISIBLE_DEVICES" in environ:
        return False
    environ["CUDA_VISIBLE_DEVICES"] = "0"
    return True


def _pip(args: list[str], env: dict | None = None, heartbeat: str | None = None) -> None:
    """Run pip quietly; with ``heartbeat``, print it with the minutes elapsed every minute (a long compile
    with quiet output looks like a hang otherwise)."""
    done = threading.Event()
    if heartbeat:
        start = time.perf_counter()

        def beat():
            while not done.wait(60):
                print(f"  ... {heartbeat}: {(time.perf_counter() - start) / 60:.0f} min so far", flush=True)

        threading.Thread(target=beat, daemon=True).start()
    try:
        subprocess.run([sys.executable, "-m", "pip", *args], check=True, env=env)
    finally:
        done.set()


def restart_kernel(upgraded: list[str], marker: Path = RESTART_MARKER) -> None:
    """Restart the kernel once so that it imports the upgraded packages (Colab and Kaggle start a new kernel when
    the old one exits). A second restart for the same packages means the upgrade did not take: say so instead."""
    if marker.exists() and json.loads(marker.read_text()) == sorted(upgraded):
        raise RuntimeError(f"the kernel already restarted once for {', '.join(upgraded)}, and this runtime still "
                           f"loads the old version: use Runtime > Restart session, then run this cell again "
                           f"(or delete {marker} to let the cell restart it)")
    marker.write_text(json.dumps(sorted(upgraded)))
    print(f"  restarting the kernel once so that it loads the new {', '.join(upgraded)}: when it is back, run "
          "this cell again (it installs nothing the second time)", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def main(lesson: str | None = None, dry_run: bool = False) -> Plan:
    """Install what ``lesson`` (e.g. "03") needs; every lesson's packages when None."""
    start = time.perf_counter()
    syllabus = tomllib.loads((REPO / "course" / "syllabus.toml").read_text())
    pins = read_pins((REPO / "requirements.txt").read_text())
    decided = plan(pins, lesson_packages(syllabus, lesson), installed_distributions(), imported_distributions(),
                   sys.version_info[:2], read_requires())
    print(f"course install for lesson {lesson or 'all'} (Python {sys.version.split()[0]}):")
    if one_gpu(syllabus, lesson):
        print("  one GPU: CUDA_VISIBLE_DEVICES=0 (on Kaggle's 2 x T4 the trainers would otherwise spread this lesson "
              "over both with DataParallel)")
    for note in decided.notes:
        print("  " + note)
    if dry_run:
        return decided
    if decided.uninstall:
        _pip(["uninstall", "-y", "-q", *decided.uninstall])
    wheels = [p for p in decided.install if not p.startswith("llama-cpp-python")]
    compiled = [p for p in decided.install if p.startswith("llama-cpp-python")]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as constraints:
        constraints.write("\n".join(decided.constraints) + "\n")
    if wheels:
        _pip(["install", "-q", "--prefer-binary", "-c", constraints.name, *wheels])
    if compiled:
        print("  compiling llama-cpp-python (llama.cpp from source, no wheel on PyPI): ~10 min on a free Colab's "
              "2 vCPUs, once per runtime", flush=True)
        env = {**os.environ, "CMAKE_ARGS": os.environ.get("CMAKE_ARGS", LLAMA_CMAKE_ARGS)}
        _pip(["install", "-q", "-c", constraints.name, *compiled], env=env, heartbeat="compiling llama.cpp")
    print(f"  done in {time.perf_counter() - start:.0f}s; {len(decided.constraints)} packages held at their "
          "installed versions")
    if decided.restart:
        restart_kernel(decided.restart)
    return decided


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lesson", help="lesson number, e.g. 02 (default: every lesson's packages)")
    parser.add_argument("--dry-run", action="store_true", help="print the decisions, install nothing")
    args = parser.parse_args()
    main(args.lesson, args.dry_run)
