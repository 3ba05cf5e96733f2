"""Lesson 18 · Pruning: sparse weights, smaller models, distillation to recover: `pytest tests/lessons/test_18.py` runs it alone."""


def test_claims(claims_failed):
    assert not claims_failed
