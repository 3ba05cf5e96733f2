"""Lesson 02 · Supervised fine-tuning with TRL: `pytest tests/lessons/test_02.py` runs it alone."""


def test_claims(claims_failed):
    assert not claims_failed
