"""Lesson 17 · Distributed training: DDP, FSDP, ZeRO: `pytest tests/lessons/test_17.py` runs it alone."""


def test_claims(claims_failed):
    assert not claims_failed
