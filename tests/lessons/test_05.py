"""Lesson 05 · Data curation: cleaning, dedup, decontamination: `pytest tests/lessons/test_05.py` runs it alone."""


def test_claims(claims_failed):
    assert not claims_failed
