"""Lesson 14 · Quantization: int8, NF4, GGUF: `pytest tests/lessons/test_14.py` runs it alone."""


def test_claims(claims_failed):
    assert not claims_failed
