"""Lesson 03 · Supervised fine-tuning with TRL: `pytest tests/lessons/test_03.py` runs it alone."""


def test_claims(claims_failed):
    assert not claims_failed
