"""Load and check the syllabus (course/syllabus.toml)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from helpers.paths import NOTEBOOKS_DIR

SYLLABUS_FILE = Path(__file__).with_name("syllabus.toml")
STATUSES = {"ready", "planned"}


@dataclass(frozen=True)
class Lesson:
    number: str
    slug: str
    title: str
    status: str
    minutes_t4: int
    minutes_cpu: int
    hardware: str
    packages: tuple[str, ...] = ()  # installed on Colab/Kaggle beside the course's core packages
    models: tuple[str, ...] = ()  # shared models beyond helpers.recipes.SHARED (names of recipes.shared_ids), built first
    alone: bool = False  # its claims are speed ratios that another lesson on the other core skews: run after the others
    # its cells train a shared model's recipe (03: tiny:sft's): with --jobs > 1 it runs first, by itself, with the
    # threads the shared models were built with (a CPU's thread count changes a training run's rounding)
    as_built: bool = False
    time_note: str = ""  # a sentence after the generated time/hardware line (what else takes time, or why)
    gpus: int = 1  # GPUs it uses; on Colab/Kaggle the others are hidden from a one-GPU lesson (colab/install.py)

    @property
    def stem(self) -> str:
        return f"{self.number}_{self.slug}"

    @property
    def path(self) -> Path:
        return NOTEBOOKS_DIR / f"{self.stem}.ipynb"


@dataclass(frozen=True)
class Syllabus:
    title: str
    repo: str
    branch: str
    lessons: dict[str, Lesson]
    paths: dict[str, list[str]]
    optional: dict[str, list[str]] = field(default_factory=dict)  # lessons a path offers but does not require

    def path_lessons(self, name: str, optional: bool = False) -> list[Lesson]:
        """The lessons of path ``name`` in number order; with ``optional``, its optional lessons too."""
        if name not in self.paths:
            raise SystemExit(f"unknown path {name!r}; choose one of {', '.join(self.paths)}")
        numbers = set(self.paths[name]) | (set(self.optional.get(name, [])) if optional else set())
        return [self.lessons[n] for n in sorted(numbers)]

    def badge_url(self, lesson: Lesson) -> str:
        return f"https://colab.research.google.com/github/{self.repo}/blob/{self.branch}/notebooks/{lesson.stem}.ipynb"


def load(path: Path = SYLLABUS_FILE) -> Syllabus:
    """Parse the syllabus and check it: unique numbers, known statuses, paths naming known lessons."""
    raw = tomllib.loads(path.read_text())
    lessons: dict[str, Lesson] = {}
    for i, entry in enumerate(raw["lessons"]):
        try:
            lesson = Lesson(**{**entry, "packages": tuple(entry.get("packages", ())),
                               "models": tuple(entry.get("models", ()))})
        except TypeError as err:
            raise ValueError(f"{path}: lessons[{i}]: {err}") from None
        if lesson.number in lessons:
            raise ValueError(f"{path}: lesson number {lesson.number} appears twice")
        if lesson.status not in STATUSES:
            raise ValueError(f"{path}: lesson {lesson.number} status {lesson.status!r} not in {sorted(STATUSES)}")
        lessons[lesson.number] = lesson
    paths, optional = raw["paths"], raw.get("optional", {})
    for table, entries in (("paths", paths), ("optional", optional)):
        for name, numbers in entries.items():
            unknown = [n for n in numbers if n not in lessons]
            if unknown:
                raise ValueError(f"{path}: {table}: path {name!r} names unknown lesson(s) {unknown}")
    orphans = sorted(set(optional) - set(paths))
    if orphans:
        raise ValueError(f"{path}: optional: {orphans} are not paths")
    course = raw["course"]
    return Syllabus(course["title"], course["repo"], course["branch"], lessons, paths, optional)
