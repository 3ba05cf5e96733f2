"""Recording what a lesson measured: one metrics file per notebook, one experiment log per training run.

Introduced in 00_welcome.ipynb.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

from helpers.paths import output_dir


def clean(value):
    """``value`` as the course's JSON files hold it: dicts, lists, bools, ints, strings and floats rounded to 6
    digits (numpy and torch scalars unwrapped); a non-finite float or another type is an error. Introduced in
    00_welcome.ipynb."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if hasattr(value, "item"):  # numpy / torch scalars
        value = value.item()
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"metric value {value} is not finite")
        return round(value, 6)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    raise TypeError(f"metric values must be numbers, strings, lists or dicts, not {type(value).__name__}")


def record_metrics(lesson: str, **metrics) -> None:
    """Merge ``metrics`` into ``<output_dir>/<lesson>.metrics.json`` and print one line saying what was recorded
    (numbers with their values, tables by name). Returns nothing, so a cell that ends with it shows only that line.

    Call it where each number is measured. The course runner and the tests read this file: it is how a lesson
    proves what it teaches. Introduced in 00_welcome.ipynb.
    """
    path = output_dir() / f"{lesson}.metrics.json"
    current = json.loads(path.read_text()) if path.exists() else {}
    values = clean(metrics)
    current.update(values)
    path.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
    shown = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" if isinstance(v, (bool, int, str)) or v is None
             else k for k, v in values.items()]
    print(f"recorded ({path.name}): " + ", ".join(shown))


def read_metrics(path: str | Path) -> dict:
    """Load a metrics file written by :func:`record_metrics`. Introduced in 00_welcome.ipynb."""
    return json.loads(Path(path).read_text())


class ExperimentLog:
    """A JSON log of one training run: config, seed, versions, metrics over time, final metrics.

    Written to ``<output_dir>/logs/<name>.json``. With ``use_wandb=True`` the same numbers also go to
    Weights & Biases, offline unless ``WANDB_API_KEY`` is set. Introduced in 03_sft.ipynb.
    """

    def __init__(self, name: str, config: dict, seed: int, use_wandb: bool = False):
        from helpers.environment import versions

        self.path = output_dir() / "logs" / f"{name}.json"
        self.record = {"name": name, "config": clean(config), "seed": seed, "versions": versions(),
                       "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "history": [], "final": {}}
        self._wandb = wandb_run(name, config) if use_wandb else None

    def log(self, step: int, **values) -> None:
        self.record["history"].append({"step": step, **clean(values)})
        if self._wandb is not None:
            self._wandb.log(values, step=step)

    def finish(self, **final) -> Path:
        self.record["final"] = clean(final)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.record, indent=1) + "\n")
        if self._wandb is not None:
            self._wandb.summary.update(final)
            self._wandb.finish()
        return self.path


def _require_wandb():
    try:
        import wandb
    except ImportError as err:
        raise RuntimeError("USE_WANDB=True needs `pip install wandb`; leave it False to log to JSON only") from err
    if not os.environ.get("WANDB_API_KEY"):
        os.environ["WANDB_MODE"] = "offline"
    return wandb


def wandb_run(name: str, config: dict, directory: str | Path | None = None):
    """Start a wandb run, offline unless ``WANDB_API_KEY`` is set; never prompts. Its files go under ``directory``
    (default: the lesson's output folder), in ``wandb/``. Introduced in 03_sft.ipynb."""
    wandb = _require_wandb()
    return wandb.init(project="llm-course", name=name, config=config, dir=str(directory or output_dir()))


def flat_numbers(values: dict, prefix: str = "") -> dict[str, float]:
    """The numbers of a nested metrics dict under slash-joined keys (``{"sft/accuracy_after": 0.8}``), bools as 0/1;
    strings and lists left out: what a tracker plots. Introduced in 19_capstone_post_training.ipynb."""
    out: dict[str, float] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out |= flat_numbers(value, f"{name}/")
        elif isinstance(value, (bool, int, float)):
            out[name] = float(value)
    return out


def report_to(use_wandb: bool) -> str:
    """The ``report_to`` value for trainer configs: 'none' unless wandb was asked for. Introduced in 03_sft.ipynb."""
    if not use_wandb:
        return "none"
    _require_wandb()
    return "wandb"


def show_claims(lesson: str) -> list:
    """Print what lesson ``lesson`` (its file stem, e.g. ``"09_ppo_rlhf"``) claims next to what this run measured,
    and return the checks. The claims are ``course/claims.py``'s, the ones the tests assert and ``python -m course
    matrix`` checks over seeds and CPU kernel sets: bounds meant to hold on every machine, where this run's numbers
    move from one machine to the next. They are written for the ``tiny`` profile; on another they are shown, not judged.
    Introduced in 03_sft.ipynb.
    """
    from course import claims

    metrics = read_metrics(output_dir() / f"{lesson}.metrics.json")
    checks = claims.evaluate(lesson[:2], metrics)
    tiny = metrics.get("profile") == "tiny"
    if not tiny:
        print(f"profile {metrics.get('profile')!r}: the bounds below are the tiny profile's; your values are for reading")
    for check in checks:
        mark = ("✓" if check.ok else "✗") if tiny else "·"
        why = f": {check.why}" if check.why else ""
        print(f"{mark} {check.name}: {claims.shown(check.value)}  (claim {check.op} {claims.shown(check.bound)}{why})")
    return checks
