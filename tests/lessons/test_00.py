"""Lesson 00 · Welcome: how the course works: `pytest tests/lessons/test_00.py` runs it alone."""


def test_claims(claims_failed):
    assert not claims_failed
