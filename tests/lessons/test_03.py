"""Lesson 03 · LoRA and QLoRA with PEFT and bitsandbytes: `pytest tests/lessons/test_03.py` runs it alone."""


def test_claims(claims_failed):
    assert not claims_failed
