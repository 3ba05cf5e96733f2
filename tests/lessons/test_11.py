"""Lesson 11 · Chain-of-thought, self-consistency and reasoning RL: `pytest tests/lessons/test_11.py` runs it alone."""


def test_claims(claims_failed):
    assert not claims_failed
