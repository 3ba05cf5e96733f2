"""Lesson 09 · RLHF with PPO: `pytest tests/lessons/test_09.py` runs it alone."""


def test_claims(claims_failed):
    assert not claims_failed
