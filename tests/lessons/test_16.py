"""Lesson 16 · Serving: an OpenAI-compatible API: `pytest tests/lessons/test_16.py` runs it alone."""


def test_claims(claims_failed):
    assert not claims_failed
