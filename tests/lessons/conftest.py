"""A lesson's own tests: `pytest tests/lessons/test_NN.py` runs lesson NN alone (after the shared models it needs,
tests/conftest.py's `run`); the whole suite runs every lesson once, two at a time, and these read that run."""

from pathlib import Path

import pytest

from course import claims


@pytest.fixture
def claims_failed(request, metrics_of) -> str:
    """The claims of this file's lesson (course/claims.py) that its run did not meet, one per line ("" if none)."""
    number = Path(str(request.fspath)).stem.removeprefix("test_")
    return "\n".join(map(str, claims.failures(number, metrics_of(number))))
