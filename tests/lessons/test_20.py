"""Lesson 20 · Capstone: domain adaptation from corpus to a served RAG model: `pytest tests/lessons/test_20.py` runs it alone."""


def test_claims(claims_failed):
    assert not claims_failed
