"""Lesson 15 · Speculative decoding: `pytest tests/lessons/test_15.py` runs it alone."""


def test_claims(claims_failed):
    assert not claims_failed
