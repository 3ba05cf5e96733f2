"""Lesson 10 · GRPO with verifiable rewards: `pytest tests/lessons/test_10.py` runs it alone."""


def test_claims(claims_failed):
    assert not claims_failed
