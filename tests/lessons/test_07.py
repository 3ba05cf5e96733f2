"""Lesson 07 · Reward models from preferences: `pytest tests/lessons/test_07.py` runs it alone."""


def test_claims(claims_failed):
    assert not claims_failed
