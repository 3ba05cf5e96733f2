"""colab/install.py decides what to install on Colab/Kaggle; these fake environments check each decision."""

import runpy
import tomllib

import pytest

from helpers.paths import REPO_ROOT

install = runpy.run_path(str(REPO_ROOT / "colab" / "install.py"))  # exactly how the notebooks' install cell loads it
PINS = install["read_pins"]((REPO_ROOT / "requirements.txt").read_text())
SYLLABUS = tomllib.loads((REPO_ROOT / "course" / "syllabus.toml").read_text())

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
    plan = plan_for("03")
    assert not names(plan.install) & ({"torch"} | IMPORTED)
    for name in ("torch", *IMPORTED):
        assert f"{name}=={COLAB[name]}" in plan.constraints, name
    assert any("keep numpy 2.0.2: already imported" in note for note in plan.notes)


def test_installs_only_what_the_lesson_needs_at_the_pinned_version():
    plan = plan_for("03")
    assert f"transformers=={PINS['transformers']}" in plan.install  # old version replaced
    assert f"bitsandbytes=={PINS['bitsandbytes']}" in plan.install
    assert "trl" not in names(plan.install)  # already at the pin
    assert not names(plan.install) & {"pytest", "ruff", "papermill", "nbclient", "jupyter-client", "ipykernel"}
    assert "bitsandbytes" not in names(plan_for("01").install)  # lesson 01 does not quantize
    assert names(plan_for("01").install) < names(plan_for(None).install)


def test_old_torchao_is_removed_unless_already_imported():
    assert plan_for("02").uninstall == ["torchao"]
    assert plan_for("02", installed={**COLAB, "torchao": "0.16.0"}).uninstall == []
    imported = plan_for("02", imported=IMPORTED | {"torchao"})
    assert imported.uninstall == [] and any("restart the runtime" in note for note in imported.notes)


def test_bad_inputs_are_refused_clearly():
    with pytest.raises(RuntimeError, match="Python 3.11"):
        plan_for("02", python=(3, 10))
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
    plan = install["main"](lesson="03", dry_run=True)
    assert plan.install == [] and plan.uninstall == []
    out = capsys.readouterr().out
    assert "course install for lesson 03" in out and "keep torch" in out


def test_llama_cpp_is_built_with_the_same_flags_everywhere():
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert f"LLAMA_CMAKE_ARGS := {install['LLAMA_CMAKE_ARGS']}" in makefile
