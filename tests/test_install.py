"""colab/install.py decides what to install on Colab/Kaggle; these fake environments check each decision."""

import ast
import importlib.metadata
import json
import os
import runpy
import sys
import tomllib

import pytest
from packaging.requirements import Requirement

from helpers.paths import REPO_ROOT

install = runpy.run_path(str(REPO_ROOT / "colab" / "install.py"))  # exactly how the notebooks' install cell loads it
PINS = install["read_pins"]((REPO_ROOT / "requirements.txt").read_text())
SYLLABUS = tomllib.loads((REPO_ROOT / "course" / "syllabus.toml").read_text())
REQUIRES = install["read_requires"]()
PLATFORMS = {k: v for k, v in json.loads((REPO_ROOT / "tests" / "data" / "platforms.json").read_text()).items()
             if not k.startswith("_")}
LESSONS = [None] + [entry["number"] for entry in SYLLABUS["lessons"]]

# A Colab runtime as measured in 2026 (stack-notes.md): Python 3.13, torch 2.11+cu128, numpy 2.0.2 imported at
# kernel start, an old torchao, an old transformers, trl already at the course's pin.
COLAB = {"torch": "2.11.0+cu128", "numpy": "2.0.2", "pillow": "11.3.0", "ipykernel": "6.17.1",
         "transformers": "4.57.1", "torchao": "0.10.0", "trl": PINS["trl"], "matplotlib": "3.10.0"}
IMPORTED = {"numpy", "pillow", "ipykernel", "matplotlib"}


def plan_for(lesson, installed=COLAB, imported=IMPORTED, python=(3, 13)):
    return install["plan"](PINS, install["lesson_packages"](SYLLABUS, lesson), installed, imported, python)


def names(specs):
    return {spec.split("==")[0] for spec in specs}


def test_never_touches_torch_or_what_the_kernel_imported():
    plan = plan_for("04")
    assert not names(plan.install) & ({"torch"} | IMPORTED)
    for name in ("torch", *IMPORTED):
        assert f"{name}=={COLAB[name]}" in plan.constraints, name
    assert any("keep numpy 2.0.2: already imported" in note for note in plan.notes)


def test_installs_only_what_the_lesson_needs_at_the_pinned_version():
    plan = plan_for("04")
    assert f"transformers=={PINS['transformers']}" in plan.install  # old version replaced
    assert f"bitsandbytes=={PINS['bitsandbytes']}" in plan.install
    assert "trl" not in names(plan.install)  # already at the pin
    assert not names(plan.install) & {"pytest", "ruff", "papermill", "nbclient", "jupyter-client", "ipykernel"}
    assert "bitsandbytes" not in names(plan_for("01").install)  # lesson 01 does not quantize
    assert names(plan_for("01").install) < names(plan_for(None).install)


def test_old_torchao_is_removed_unless_already_imported():
    assert plan_for("03").uninstall == ["torchao"]
    assert plan_for("03", installed={**COLAB, "torchao": "0.16.0"}).uninstall == []
    imported = plan_for("03", imported=IMPORTED | {"torchao"})
    assert imported.uninstall == [] and any("restart the runtime" in note for note in imported.notes)


def test_bad_inputs_are_refused_clearly():
    with pytest.raises(RuntimeError, match="Python 3.11"):
        plan_for("03", python=(3, 10))
    with pytest.raises(ValueError, match="unknown lesson '77'"):
        install["lesson_packages"](SYLLABUS, "77")
    with pytest.raises(ValueError, match="does not pin"):
        install["plan"]({}, ["trl"], {}, set())
    with pytest.raises(ValueError, match=r"requirements.txt:2: expected name==version"):
        install["read_pins"]("torch==2.13.0\ntrl>=1\n")


def test_every_package_a_lesson_names_is_pinned():
    for lesson in [None] + [entry["number"] for entry in SYLLABUS["lessons"]]:
        wanted = install["lesson_packages"](SYLLABUS, lesson)
        assert set(wanted) <= set(PINS), lesson


def test_imported_distributions_maps_modules_to_packages():
    found = install["imported_distributions"]({"numpy": None, "numpy.linalg": None, "PIL.Image": None, "json": None})
    assert found == {"numpy", "pillow"}


def test_dry_run_in_this_environment_installs_nothing(capsys):
    # make venv installed exactly the pins: nothing to get, every decision printed
    plan = install["main"](lesson="04", dry_run=True)
    assert plan.install == [] and plan.uninstall == []
    out = capsys.readouterr().out
    assert "course install for lesson 04" in out and "keep torch" in out


def test_llama_cpp_is_built_with_the_same_flags_everywhere():
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert f"LLAMA_CMAKE_ARGS := {install['LLAMA_CMAKE_ARGS']}" in makefile


def unmet(plan, wanted, installed):
    """The requirements of the wanted packages that the environment after ``plan`` would not meet (what pip's
    resolver would refuse, for the packages whose versions are known here). An installed package that the plan
    neither pins nor holds by a constraint is one pip upgrades when a requirement needs it ("only if needed")."""
    held = {install["canonical"](Requirement(spec).name) for spec in plan.constraints}
    after = {name: version for name, version in installed.items() if install["canonical"](name) in held}
    for spec in plan.install:
        req = Requirement(spec)
        pinned = str(req.specifier).startswith("==")
        after[install["canonical"](req.name)] = str(req.specifier)[2:] if pinned else None  # None: pip picks a fit
    broken = []
    for name in wanted:
        for text in REQUIRES.get(name, []):
            req = Requirement(text)
            have = after.get(install["canonical"](req.name))
            if have is not None and install["_applies"](req) and not req.specifier.contains(have, prereleases=True):
                broken.append(f"{name} needs {req}, would have {have}")
    return broken


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_every_lesson_installs_on_the_recorded_platforms(platform):
    env = PLATFORMS[platform]
    installed, imported = env["installed"], set(env["imported"])
    for lesson in LESSONS:
        wanted = install["lesson_packages"](SYLLABUS, lesson)
        plan = install["plan"](PINS, wanted, installed, imported, tuple(env["python"]), REQUIRES)
        assert unmet(plan, wanted, installed) == [], (platform, lesson)
        assert not names(plan.install) & {"torch", "ipywidgets"}, (platform, lesson)
    # the check has teeth: holding everything imported, as the plan did before, cannot be resolved on Colab
    old = install["plan"](PINS, install["lesson_packages"](SYLLABUS, "03"), installed, imported, (3, 13))
    if platform.startswith("colab"):
        assert any("pyarrow" in line for line in unmet(old, install["lesson_packages"](SYLLABUS, "03"), installed))


def test_an_imported_package_a_pin_cannot_use_is_upgraded_and_the_kernel_restarts_once():
    env = PLATFORMS["colab-gpu-2026"]
    plan = install["plan"](PINS, install["lesson_packages"](SYLLABUS, "03"), env["installed"], set(env["imported"]),
                           (3, 13), REQUIRES)
    assert plan.restart == ["pyarrow"] and "pyarrow==18.1.0" not in plan.constraints
    assert any(spec.startswith("pyarrow>=") for spec in plan.install)
    assert any(note.startswith("up   pyarrow 18.1.0") and "datasets" in note for note in plan.notes)
    assert "numpy==2.1.3" in plan.constraints  # what no pin conflicts with stays as loaded
    with pytest.raises(RuntimeError, match="too old for the course"):  # torch itself is never replaced
        install["plan"](PINS, ["bitsandbytes"], {"torch": "2.1.0"}, {"torch"}, (3, 13), REQUIRES)


def test_the_platforms_ipywidgets_stays():
    plan = plan_for("03", installed={**COLAB, "ipywidgets": "7.7.1"})
    assert "ipywidgets" not in names(plan.install) and "ipywidgets==7.7.1" in plan.constraints
    assert any("keep ipywidgets 7.7.1: the platform's widget frontend" in note for note in plan.notes)
    assert f"ipywidgets=={PINS['ipywidgets']}" in plan_for("03", installed={}).install  # none there: the pin


def test_restart_happens_once(tmp_path, monkeypatch):
    killed = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: killed.append(pid))
    marker = tmp_path / "restarted.json"
    install["restart_kernel"](["pyarrow"], marker)
    assert killed == [os.getpid()] and json.loads(marker.read_text()) == ["pyarrow"]
    with pytest.raises(RuntimeError, match="already restarted once for pyarrow"):
        install["restart_kernel"](["pyarrow"], marker)
    assert len(killed) == 1


def test_installed_distributions_reports_the_copy_python_imports(monkeypatch):
    class Dist:
        def __init__(self, name, version):
            self.metadata, self.version = {"Name": name}, version

    # sys.path order: the pip copy first, Colab's older apt copy under /usr/lib/python3/dist-packages after it
    fake = [Dist("PyYAML", "6.0.2"), Dist("pyyaml", "5.4.1")]
    monkeypatch.setattr(importlib.metadata, "distributions", lambda: iter(fake))
    assert install["installed_distributions"]() == {"pyyaml": "6.0.2"}


def _imports(path):
    tops = set()
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "\n".join(line for line in "".join(cell["source"]).splitlines() if not line.startswith(("!", "%")))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                tops |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                tops.add(node.module.split(".")[0])
    return tops


def test_every_notebook_import_is_installed_by_its_lesson():
    owners = importlib.metadata.packages_distributions()
    platform = {"ipython", "ipykernel"}  # the notebook kernel itself
    for entry in SYLLABUS["lessons"]:
        path = REPO_ROOT / "notebooks" / f"{entry['number']}_{entry['slug']}.ipynb"
        if not path.exists():
            continue
        wanted = set(install["lesson_packages"](SYLLABUS, entry["number"]))
        needed = {install["canonical"](Requirement(r).name) for name in wanted for r in REQUIRES.get(name, [])}
        covered = wanted | needed | install["NEVER_INSTALL"] | platform  # a pin's own requirement comes with it
        for top in _imports(path) - set(sys.stdlib_module_names) - {"helpers", "course"}:
            dists = {install["canonical"](d) for d in owners.get(top, [])}
            assert dists & covered, f"{path.name} imports {top} ({dists or 'not installed'}), which neither " \
                                    f"[course] packages nor lesson {entry['number']}'s packages install"


def test_one_gpu_lessons_hide_the_second_gpu_before_cuda_starts():
    environ = {}
    assert install["one_gpu"](SYLLABUS, "04", environ) and environ == {"CUDA_VISIBLE_DEVICES": "0"}
    assert not install["one_gpu"](SYLLABUS, "17", {})  # the distributed lesson uses both of Kaggle's T4s
    assert not install["one_gpu"](SYLLABUS, "04", {"CUDA_VISIBLE_DEVICES": "1"})  # the learner's choice stays
    assert not install["one_gpu"](SYLLABUS, None, {})


def test_a_failed_clone_names_the_repo_and_what_to_switch_on(tmp_path, monkeypatch):
    import subprocess

    from course import syllabus, sync

    syl = syllabus.load()
    cell = sync.install_cell(syl, "03")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    calls = []

    def offline(args, **kwargs):
        calls.append(args)
        return subprocess.CompletedProcess(args, 128, "", "fatal: unable to access: Could not resolve host: github.com")

    monkeypatch.setattr(subprocess, "run", offline)
    with pytest.raises(RuntimeError) as caught:
        exec(compile(cell, "install-cell", "exec"), {})
    message = str(caught.value)
    assert f"https://github.com/{syl.repo}" in message and "Could not resolve host" in message
    assert "switch Internet on" in message and "course set-repo" in message and calls[0][:2] == ["git", "clone"]
