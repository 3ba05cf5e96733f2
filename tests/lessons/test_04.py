"""Lesson 04 · Data curation: cleaning, dedup, decontamination: `pytest tests/lessons/test_04.py` runs it alone."""


def test_claims(claims_failed):
    assert not claims_failed
