"""Lesson 01 · Tokenizer and pretraining a LLaMA-style model: `pytest tests/lessons/test_01.py` runs it alone."""


def test_claims(claims_failed):
    assert not claims_failed
