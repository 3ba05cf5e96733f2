"""Retrieval and RAG plumbing: a sentence embedder made from any encoder id, ranking scores, a BM25 baseline, and
the passages-plus-question prompts of a reader. The ideas themselves (InfoNCE, recall@1 and MRR, an index, the
reader's counterfactual training) are written out in the lesson; the domain-adaptation capstone reuses these.

Introduced in 02_embeddings_retrieval_rag.ipynb.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from helpers.tasks import FACTS


def embedder(model_id: str, device: str = "cpu", max_seq_length: int = 64, seed: int = 0):
    """A ``SentenceTransformer`` of any encoder the course knows (``tiny:encoder``, a Hub id, a folder): the encoder
    (``models.Transformer``, the masked-LM head left out) and mean pooling over the real tokens. ``seed`` seeds
    what the checkpoint lacks (BERT's pooler, unused by mean pooling)."""
    from sentence_transformers import SentenceTransformer, models

    from helpers.recipes import resolve_model

    torch.manual_seed(seed)
    encoder = models.Transformer(resolve_model(model_id), max_seq_length=max_seq_length)
    pooling = models.Pooling(encoder.get_word_embedding_dimension(), pooling_mode="mean")
    return SentenceTransformer(modules=[encoder, pooling], device=device)


def encode(model, texts: list[str], batch_size: int = 128) -> torch.Tensor:
    """Unit-length embeddings (rows) on the CPU: their dot products are cosine similarities."""
    return model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_tensor=True,
                        show_progress_bar=False).float().cpu()


def ranking_scores(top: np.ndarray | torch.Tensor, gold: list[int], k: int = 10) -> dict[str, float]:
    """``recall@1`` (the right document first), ``recall@k`` (in the top k) and ``mrr@k`` (mean of 1/rank, 0 past
    k) of ranked document ids ``top`` (one row per query) against each query's right document."""
    top = np.asarray(top)[:, :k]
    gold = np.asarray(gold)[:, None]
    hit = top == gold
    rank = np.where(hit.any(1), hit.argmax(1) + 1, np.inf)
    return {"recall@1": float(hit[:, 0].mean()), f"recall@{k}": float(hit.any(1).mean()),
            f"mrr@{k}": float((1 / rank).mean())}


def bm25_search(documents: list[str], queries: list[str], k: int = 10) -> np.ndarray:
    """The top-``k`` document ids of each query by BM25 (``bm25s``, English stopwords removed): the lexical
    baseline every dense retriever is compared with."""
    import bm25s

    index = bm25s.BM25()
    index.index(bm25s.tokenize(documents, stopwords="en", show_progress=False), show_progress=False)
    ids, _ = index.retrieve(bm25s.tokenize(queries, stopwords="en", show_progress=False), k=k, show_progress=False)
    return np.asarray(ids)


def flat_index(vectors: torch.Tensor | np.ndarray):
    """An exact inner-product FAISS index (``IndexFlatIP``) holding unit-length ``vectors``: its scores are cosine
    similarities (lesson 02 builds it, and an IVF one, by hand)."""
    import faiss

    vectors = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    return index


def rag_prompt(passages: list[str], question: str) -> list[dict]:
    """The reader's chat prompt: the passages, one per line, then the question."""
    return [{"role": "user", "content": "\n".join([*passages, question])}]


def reader_rows(atlas: dict[str, list[dict]], n: int, seed: int = 0) -> list[dict]:
    """``n`` SFT rows (``messages``) that teach a model to answer from the passage in its prompt: the training
    questions, each with its document **rewritten with a fresh count** (the answer too), so no fact can be
    memorised and reading is the only way to a low loss. Test countries never appear."""
    rng = random.Random(seed)
    documents = {d["id"]: d for d in atlas["documents"]}
    rows = []
    while len(rows) < n:
        question = rng.choice(atlas["train"])
        doc = documents[question["doc"]]
        count = str(rng.randint(1, 9))
        passage = FACTS[doc["fact"]].statement.format(c=doc["country"], d=count)
        rows.append({"messages": [*rag_prompt([passage], question["query"]),
                                  {"role": "assistant", "content": count}]})
    return rows
