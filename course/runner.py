"""Execute a learning path's notebooks headless with papermill and record what happened."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from multiprocessing import get_context
from pathlib import Path

from traitlets.config import Config

from course.syllabus import Lesson, Syllabus
from helpers.paths import REPO_ROOT

BUDGET_SECONDS = 90  # each lesson <= 90 s on the tiny profile (README, maintainers; shown in the report, not asserted)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")

# Appended to the runner's copy of each notebook (never to the lesson itself): the kernel's peak memory.
PROBE_SOURCE = '''# Added by the course runner, not part of the lesson: this kernel's peak memory, for the run report.
import json as _json, os as _os, resource as _resource, sys as _sys
_unit = 2**30 if _sys.platform == "darwin" else 2**20  # ru_maxrss: bytes on macOS, KiB on Linux
_peak = {"host_gib": max(_resource.getrusage(w).ru_maxrss for w in (_resource.RUSAGE_SELF, _resource.RUSAGE_CHILDREN)) / _unit}
if "torch" in _sys.modules and _sys.modules["torch"].cuda.is_available():
    _peak["gpu_gib"] = _sys.modules["torch"].cuda.max_memory_reserved() / 2**30
with open(_os.path.join(_os.environ["COURSE_OUTPUT_DIR"], "{stem}.resources.json"), "w") as _f:
    _json.dump(_peak, _f)'''


def parse_params(items: list[str]) -> dict:
    """``NAME=VALUE`` strings → papermill parameters (VALUE parsed as JSON when it can be)."""
    params = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--param expects NAME=VALUE, got {item!r}")
        name, value = item.split("=", 1)
        try:
            params[name] = json.loads(value)
        except json.JSONDecodeError:
            params[name] = value
    return params


def prepare(profile: str, lessons: list[Lesson] = (), seed: int = 0) -> dict:
    """Build the cached models the lessons share, once, before any notebook starts; returns seconds per model.

    That is ``helpers.recipes.SHARED`` plus the ``models`` the given lessons name in the syllabus, the fine-tuned
    ones with ``seed`` (the lessons' ``SEED``, which their setup cell makes the shared models' seed too), in the
    profile's meaning (``recipes.shared_ids``: on t4 the recipes are trained on the Hub models). Notebooks
    running in parallel would otherwise each build the same model at the same time.
    """
    from helpers import cache, recipes
    from helpers.profiles import resolve_profile

    cache.use_seed(seed)  # the notebooks' kernels inherit it
    extra = [m for lesson in lessons for m in lesson.models if m not in recipes.SHARED]
    # "auto" on a CPU is tiny: built here, not in each kernel at once
    return recipes.build_shared((*recipes.SHARED, *dict.fromkeys(extra)), resolve_profile(profile))


def prepare_in_child(profile: str, lessons: list[Lesson], seed: int = 0) -> dict:
    """``prepare`` in a child Python process with this process's environment; returns its seconds per model.

    A child reads the environment as it is now: huggingface_hub fixes its cache folder and offline switch when it is
    first imported, so a runner that imported it before a stand-in run set ``HF_HUB_CACHE`` would build the t4
    recipes against the wrong cache. The seed is also set here, for the kernels to inherit.
    """
    import subprocess
    import sys

    from helpers import cache

    cache.use_seed(seed)
    code = ("import json, sys; from course import runner, syllabus; lessons = syllabus.load().lessons; "
            "seconds = runner.prepare(sys.argv[1], [lessons[n] for n in sys.argv[3:]], int(sys.argv[2])); "
            "print('PREPARED ' + json.dumps(seconds))")
    done = subprocess.run([sys.executable, "-c", code, profile, str(seed), *(lesson.number for lesson in lessons)],
                          cwd=REPO_ROOT, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("PREPARED ")]
    if done.returncode or not lines:
        raise SystemExit(f"building the shared models failed (profile {profile}):\n" + done.stderr[-3000:])
    return json.loads(lines[-1].removeprefix("PREPARED "))


def with_probe(lesson: Lesson):
    """The lesson's notebook with the runner's peak-memory cell appended (the file on disk is untouched)."""
    import nbformat

    nb = nbformat.read(lesson.path, as_version=4)
    cell = nbformat.v4.new_code_cell(PROBE_SOURCE.replace("{stem}", lesson.stem))
    cell.metadata["tags"] = ["course-probe"]
    nb.cells.append(cell)
    return nb


def execute_lesson(lesson: Lesson, run_dir: Path, parameters: dict, threads: int | None = None) -> dict:
    """Execute one notebook into ``run_dir``; returns its record (status, seconds, error, metrics, resources).

    ``threads``: torch/BLAS threads for the kernel (one per lesson when lessons run in parallel).
    """
    variables = {"COURSE_OUTPUT_DIR": str(Path(run_dir).resolve())}
    variables |= {name: str(threads) for name in THREAD_VARIABLES} if threads else {}
    with _environ(variables):  # the kernel inherits them; the caller's environment is left as it was
        return _execute(lesson, run_dir, parameters)


@contextmanager
def _environ(variables: dict[str, str]):
    """Set ``variables`` in ``os.environ`` for the block, then restore what was there (or remove them)."""
    before = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _execute(lesson: Lesson, run_dir: Path, parameters: dict) -> dict:
    import papermill

    record = {"number": lesson.number, "stem": lesson.stem, "title": lesson.title, "status": "ok",
              "seconds": 0.0, "error": None}
    # The kernel talks to the runner over Unix sockets: no TCP port is opened, and ipykernel does not warn about
    # unencrypted TCP. Each kernel gets its own short socket folder, so kernels running at once never share one.
    sockets = tempfile.mkdtemp(prefix="course-kernel-")
    config = Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(sockets, "ipc")}})
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            with_probe(lesson), str(run_dir / f"{lesson.stem}.ipynb"), parameters=parameters,
            kernel_name="python3", cwd=str(run_dir), progress_bar=False, config=config,
        )
    except Exception as err:  # papermill raises PapermillExecutionError with the failing cell
        record["status"] = "failed"
        record["error"] = f"{type(err).__name__}: {getattr(err, 'ename', '')} {getattr(err, 'evalue', err)}".strip()
    record["seconds"] = round(time.perf_counter() - start, 1)
    shutil.rmtree(sockets, ignore_errors=True)
    for key in ("metrics", "resources"):
        path = Path(run_dir) / f"{lesson.stem}.{key}.json"
        record[key] = json.loads(path.read_text()) if path.exists() else {}
    return record


def run_path(syllabus: Syllabus, path: str, profile: str, only: list[str] | None = None,
             out_root: Path | None = None, params: dict | None = None, jobs: int = 1,
             optional: bool = False, stand_ins: bool = False, lesson_params: dict[str, dict] | None = None) -> Path:
    """Run the ready lessons of ``path`` (optionally ``only`` some numbers); returns the run folder.

    Each notebook is executed into ``<run>/<NN_slug>.ipynb``; it writes ``<NN_slug>.metrics.json`` beside
    it (``COURSE_OUTPUT_DIR``). ``<run>/run.json`` lists status, seconds, peak memory and error of every lesson.
    With ``jobs > 1`` that many notebooks run at once, each kernel with one torch thread.

    ``stand_ins`` (profile ``t4`` only): the Hub models are small random-weight models of their architecture in an
    offline Hugging Face cache under their Hub ids (``helpers.standins``) and every step count is capped
    (``Profile.capped``), so the t4 branch of every lesson runs on a CPU in seconds.

    ``params`` go to every lesson; ``lesson_params`` (``{stem: {NAME: value}}``, ``course.config.check``) to one
    lesson each, over ``params``.
    """
    with _environ(_stand_in_variables(profile) if stand_ins else {}):
        return _run(syllabus, path, profile, only, out_root, params, jobs, optional, stand_ins, lesson_params)


def select_lessons(syllabus: Syllabus, path: str, only: list[str] | None = None, optional: bool = False) -> list[Lesson]:
    """The lessons of ``path`` (and its optional ones), only the numbers ``only`` when given."""
    lessons = syllabus.path_lessons(path, optional)
    if only:
        unknown = [n for n in only if n not in {lesson.number for lesson in lessons}]
        if unknown:
            raise SystemExit(f"--only {' '.join(unknown)}: not in path {path!r}")
        lessons = [lesson for lesson in lessons if lesson.number in only]
    return lessons


def _run(syllabus, path, profile, only, out_root, params, jobs, optional, stand_ins, lesson_params) -> Path:
    lessons = select_lessons(syllabus, path, only, optional)
    lesson_params = lesson_params or {}
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = (out_root or REPO_ROOT / "runs") / f"{path}-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=False)
    ready = [lesson for lesson in lessons if lesson.status == "ready"]
    print(f"path {path} · profile {profile} · {len(ready)} of {len(lessons)} lessons ready · {jobs} at a time · "
          f"output {run_dir}", flush=True)
    start_all = time.perf_counter()
    parameters = {"PROFILE": profile, **(params or {})}

    def parameters_of(lesson: Lesson) -> dict:
        return {**parameters, **lesson_params.get(lesson.stem, {})}

    # the shared models are built with the SEED the lessons get (their setup cell makes it the course seed)
    prepared = prepare_in_child(profile, ready, int(parameters_of(ready[0]).get("SEED", 0))) if ready else {}

    records = {}
    for lesson in lessons:
        if lesson.status != "ready":
            print(f"  {lesson.stem}: planned, skipped")
            records[lesson.number] = {"number": lesson.number, "stem": lesson.stem, "title": lesson.title,
                                      "status": "planned", "seconds": 0.0, "error": None}

    def report(record: dict) -> None:
        records[record["number"]] = record
        peak = record["resources"].get("host_gib")
        memory = f" · peak RAM {peak:.1f} GiB" if peak else ""
        print(f"  {record['stem']}: {record['status']} in {record['seconds']:.0f}s{memory} · "
              f"{_headline(record['metrics'])}", flush=True)

    if jobs <= 1:
        for lesson in ready:
            print(f"  {lesson.stem} ...", flush=True)
            report(execute_lesson(lesson, run_dir, parameters_of(lesson)))
    else:
        # a lesson that trains a shared model's recipe in its cells gets the threads the shared models were built with
        # (threads None: this process's, as prepare_in_child's): 1 thread would round differently from the cached one
        for lesson in (lesson for lesson in ready if lesson.as_built):
            print(f"  {lesson.stem} (alone, as the shared models were built) ...", flush=True)
            report(execute_lesson(lesson, run_dir, parameters_of(lesson)))
        # spawn, not fork: forking a process that has imported torch (and its threads) is unsafe
        # the longest lessons first (the syllabus' CPU estimate), so a long one does not start last
        longest_first = sorted((lesson for lesson in ready if not (lesson.alone or lesson.as_built)),
                               key=lambda lesson: -lesson.minutes_cpu)
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(execute_lesson, lesson, run_dir, parameters_of(lesson), 1) for lesson in longest_first]
            for future in as_completed(futures):
                report(future.result())
        # lessons whose claims are speed ratios, one at a time after the others (one thread, as in the pool)
        for lesson in (lesson for lesson in ready if lesson.alone):
            print(f"  {lesson.stem} (alone) ...", flush=True)
            report(execute_lesson(lesson, run_dir, parameters_of(lesson), 1))
    summary = {"path": path, "profile": profile, "stand_ins": stand_ins, "started": stamp, "jobs": jobs,
               "prepare_seconds": prepared,
               "lessons": [records[lesson.number] for lesson in lessons],
               "seconds": round(time.perf_counter() - start_all, 1)}
    (run_dir / "run.json").write_text(json.dumps(summary, indent=1) + "\n")
    return run_dir


STAND_IN_STEPS = 2  # every step count of a stand-in run (only whether each cell runs is checked)


def _stand_in_variables(profile: str) -> dict[str, str]:
    """Build the small stand-ins; the variables under which the runner and its kernels load them, steps capped."""
    from helpers import profiles, standins
    from helpers.cache import cache_dir

    if profile != "t4":
        raise SystemExit(f"--stand-ins replaces the t4 profile's Hub models; it needs --profile t4, not {profile!r}")
    hub_cache = cache_dir() / "stand-ins" / "small"
    start = time.perf_counter()
    standins.build_all(profiles.hub_ids("t4"), hub_cache, "small")
    print(f"stand-ins of {', '.join(profiles.hub_ids('t4'))} ready in {time.perf_counter() - start:.1f}s "
          f"({hub_cache}); steps capped at {STAND_IN_STEPS}", flush=True)
    return standins.environment(hub_cache) | {profiles.STEP_CAP_VARIABLE: str(STAND_IN_STEPS)}


def _headline(metrics: dict, limit: int = 4) -> str:
    scalars = [(k, v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return ", ".join(f"{k}={v:.4g}" for k, v in scalars[:limit]) or "no metrics"


def failed_cell(notebook: Path) -> dict | None:
    """The first code cell of an executed notebook whose outputs hold an error, with its source and message."""
    if not notebook.exists():
        return None
    nb = json.loads(notebook.read_text())
    for index, cell in enumerate(nb["cells"]):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
                return {"index": index, "source": source, "ename": output["ename"], "evalue": output["evalue"]}
    return None
