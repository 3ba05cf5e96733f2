"""Lesson 08 · Direct preference optimization: `pytest tests/lessons/test_08.py` runs it alone."""


def test_claims(claims_failed):
    assert not claims_failed
