"""Lesson 02 · Masked-LM and contrastive embeddings, retrieval and RAG: `pytest tests/lessons/test_02.py` runs it alone."""


def test_claims(claims_failed):
    assert not claims_failed
