"""Pipelines of cached stages: each stage writes its artifact into its own folder of the run, the next reads it from
disk, and every stage adds a section to one report. The capstones (curate → SFT → DPO → merge → evaluate → quantize
→ serve) are built from them.

A stage is a function ``fn(out, inputs, **params) -> metrics``: it writes what it makes under ``out`` (a folder),
reads earlier stages' artifacts from ``inputs`` (their folders, by stage name), and returns the numbers it measured
(JSON: numbers, strings, lists, dicts). ``Pipeline.run`` calls it once; a stage whose folder already holds a result
with the same key is skipped, and says so. The key covers the stage's code (its source, its module's and every
``helpers`` module's: a changed helper it calls makes it again), its parameters and the keys of the stages it reads,
so changing a parameter reruns that stage and every stage after it that reads it, and nothing else.
A stage that raises leaves no folder behind: a run stopped anywhere resumes at the first stage not done.

    pipe = Pipeline(output_dir() / "capstone")
    pipe.run("sft", train_sft, steps=300)
    pipe.run("merge", merge_adapter, needs=("sft",))
    pipe.report()  # report.md and results.json: one section per stage

The stages made from the lessons' recipes are in ``helpers.stages``. Introduced for the capstones (issue 25); tested
in tests/test_pipeline.py.
"""

from __future__ import annotations

import inspect
import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from helpers.cache import entry_key
from helpers.metrics import clean

RESULT = "stage.json"  # in a stage's folder: its key, parameters, inputs, seconds, metrics, the run's config, versions


class Pipeline:
    """An ordered run of stages under ``root`` (one folder per stage, ``NN_name``) and its report."""

    def __init__(self, root: str | Path, verbose: bool = True, config: dict | None = None, use_wandb: bool = False):
        """``config``: the run's whole configuration (the notebook's parameters), written into every stage's
        ``stage.json`` beside its own parameters and the library versions: each is a complete experiment log.
        ``use_wandb``: every stage's numbers also go to a Weights & Biases run (offline unless ``WANDB_API_KEY`` is
        set: its files in ``root/wandb``), ended by ``report()``."""
        self.root, self.verbose, self.config = Path(root), verbose, clean(config or {})
        self.root.mkdir(parents=True, exist_ok=True)
        self._wandb = None
        if use_wandb:
            from helpers.metrics import wandb_run

            self._wandb = wandb_run(self.root.name, self.config, self.root)
        self.results: dict[str, dict] = {}  # stage name -> its stage.json, in the order run

    def folder(self, name: str) -> Path:
        """The artifact folder of stage ``name`` (run in this pipeline)."""
        if name not in self.results:
            raise KeyError(f"stage {name!r} has not run in this pipeline; stages so far: {list(self.results)}")
        return self.root / self.results[name]["folder"]

    def run(self, name: str, fn: Callable[..., dict], needs: tuple[str, ...] = (), **params) -> dict:
        """Run stage ``name`` (or find it done) and return its metrics. ``needs``: earlier stages whose folders
        ``fn`` gets in ``inputs``; ``params``: its keyword arguments, part of the key."""
        if not name.isidentifier():
            raise ValueError(f"a stage name must be a Python identifier (it names a folder), got {name!r}")
        if name in self.results:
            raise ValueError(f"stage {name!r} runs twice in one pipeline: give the second another name")
        missing = [n for n in needs if n not in self.results]
        if missing:
            raise KeyError(f"stage {name!r} needs {missing}, which have not run before it; stages so far: "
                           f"{list(self.results)}")
        inputs = {n: self.folder(n) for n in needs}
        params = _with_defaults(fn, params)  # run(..., rows=3) and run(...) with rows=3 the default are one stage
        key = entry_key((fn,), files=_code_files(fn), parts=(name, clean(params), [self.results[n]["key"] for n in needs]))
        folder = self.root / f"{len(self.results):02d}_{name}"
        result_file = folder / RESULT
        if result_file.exists():
            done = json.loads(result_file.read_text())
            if done.get("key") == key:
                done["skipped"] = True
                self.results[name] = done
                self._say(f"{name}: done before, skipped (artifact in {folder})")
                self._track(name, done)
                return done["metrics"]
            shutil.rmtree(folder)  # made with other parameters or code: made again
        # this stage's folder at another position (the stages were reordered), and a half-written one
        stale = [p for p in self.root.glob(f"[0-9][0-9]_{name}") if p != folder] + list(self.root.glob(f"{folder.name}.tmp"))
        for path in stale:
            shutil.rmtree(path)
        tmp = folder.with_name(f"{folder.name}.tmp")
        tmp.mkdir(parents=True)
        self._say(f"{name}: running")
        start = time.perf_counter()
        try:
            metrics = fn(tmp, inputs, **params)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # no half-made artifact for a resumed run to trust
            raise
        if not isinstance(metrics, dict):
            shutil.rmtree(tmp, ignore_errors=True)
            raise TypeError(f"stage {name!r} must return a dict of the metrics it measured, got {type(metrics).__name__}")
        from helpers.environment import versions

        done = {"stage": name, "folder": folder.name, "key": key, "params": clean(params), "needs": list(needs),
                "seconds": round(time.perf_counter() - start, 2), "metrics": clean(metrics), "skipped": False,
                "config": self.config, "versions": versions(), "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        (tmp / RESULT).write_text(json.dumps(done, indent=1, sort_keys=True) + "\n")
        tmp.rename(folder)
        self.results[name] = done
        self._say(f"{name}: done in {done['seconds']:.1f} s · " + _short(done["metrics"]))
        self._track(name, done)
        return done["metrics"]

    def _track(self, name: str, done: dict) -> None:
        if self._wandb is not None:
            from helpers.metrics import flat_numbers

            self._wandb.log(flat_numbers({name: done["metrics"], f"{name}/seconds": done["seconds"]}),
                            step=len(self.results) - 1)

    def report(self, title: str = "Pipeline report") -> Path:
        """Write ``report.md`` (a section per stage: what it read, its parameters, its numbers, when it was made and
        in how long, and whether this run skipped it) and
        ``results.json`` (every stage's metrics) in the run folder; returns the report's path."""
        lines = [f"# {title}", "", f"Run folder: `{self.root}`", ""]
        for name, done in self.results.items():
            how = f"made in {done['seconds']:.1f} s ({done['finished']})"  # a resumed run keeps the numbers it found
            how += " · this run found it done and skipped it" if done["skipped"] else ""
            lines += [f"## {name}", "", f"- {how}; artifact `{done['folder']}/`"]
            if done["needs"]:
                lines.append("- reads: " + ", ".join(f"`{n}`" for n in done["needs"]))
            if done["params"]:
                lines.append("- parameters: " + ", ".join(f"{k}={v}" for k, v in done["params"].items()))
            lines += ["", "| metric | value |", "|---|---|"]
            lines += [f"| {k} | {_cell(v)} |" for k, v in done["metrics"].items()] + [""]
        (self.root / "results.json").write_text(json.dumps({n: d["metrics"] for n, d in self.results.items()},
                                                           indent=1, sort_keys=True) + "\n")
        path = self.root / "report.md"
        path.write_text("\n".join(lines))
        if self._wandb is not None:  # the run ends (its summary: every logged number's last value, wandb's default)
            import wandb

            self._wandb.finish()
            wandb.teardown()  # its service process too: nothing left running
            self._wandb = None
        return path

    def _say(self, message: str) -> None:
        if self.verbose:
            print(message)


def _code_files(fn: Callable) -> list[Path]:
    """The source files a stage's result depends on besides its own source: its module's file (a notebook's stage
    has none) and the ``helpers`` package's modules, in a fixed order."""
    import helpers

    module = getattr(sys.modules.get(fn.__module__), "__file__", None)
    files = sorted(Path(helpers.__file__).parent.glob("*.py"))
    if module and module.endswith(".py") and Path(module) not in files:
        files.append(Path(module))
    return files


def _with_defaults(fn: Callable, params: dict) -> dict:
    """``params`` with ``fn``'s defaults for the keyword arguments not given (an error names a wrong one)."""
    try:
        bound = inspect.signature(fn).bind(None, None, **params)
    except TypeError as err:
        raise TypeError(f"stage function {getattr(fn, '__name__', fn)!r}: {err}") from None
    bound.apply_defaults()
    return dict(list(bound.arguments.items())[2:])


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def _short(metrics: dict) -> str:
    return ", ".join(f"{k}={_cell(v)}" for k, v in list(metrics.items())[:6]) or "no metrics"
