"""Lesson 13 · Decoding strategies and the KV cache: `pytest tests/lessons/test_13.py` runs it alone."""


def test_claims(claims_failed):
    assert not claims_failed
