"""Lesson 19 · Capstone: a post-training pipeline from data to a served API: `pytest tests/lessons/test_19.py` runs it alone."""


def test_claims(claims_failed):
    assert not claims_failed
