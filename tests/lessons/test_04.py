"""Lesson 04 · LoRA and QLoRA with PEFT and bitsandbytes: `pytest tests/lessons/test_04.py` runs it alone."""


def test_claims(claims_failed):
    assert not claims_failed
