"""Lesson 10 · Evaluation: benchmarks, judges and pitfalls: `pytest tests/lessons/test_10.py` runs it alone."""


def test_claims(claims_failed):
    assert not claims_failed
