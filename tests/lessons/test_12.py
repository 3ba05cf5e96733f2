"""Lesson 12 · Evaluation: benchmarks, judges and pitfalls: `pytest tests/lessons/test_12.py` runs it alone."""


def test_claims(claims_failed):
    assert not claims_failed
