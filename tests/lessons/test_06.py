"""Lesson 06 · Knowledge distillation: teacher to student: `pytest tests/lessons/test_06.py` runs it alone."""


def test_claims(claims_failed):
    assert not claims_failed
