"""The course's metrics as Hugging Face `evaluate` modules (helpers/metric_modules, issue 25): loaded offline from
their folders, self-contained, and scoring exactly as helpers.evaluation does."""

import pytest

from helpers import data, evaluation


def _replies():
    """Replies to the SFT test rows as a model might give them: right, right but formatted, and wrong."""
    rows = data.load_split("sft", "test")
    refs = [r["messages"][-1]["content"] for r in rows]
    forms = [lambda a, i: a, lambda a, i: f" {a.upper()}. ", lambda a, i: refs[(i + 1) % len(refs)],
             lambda a, i: f"It is {a}.", lambda a, i: ""]
    return [forms[i % len(forms)](a, i) for i, a in enumerate(refs)], refs


def test_exact_match_module_scores_as_the_course_does():
    replies, refs = _replies()
    expected = sum(evaluation.exact_match(p, r) for p, r in zip(replies, refs)) / len(refs)
    assert 0.2 < expected < 0.8, "the replies mix right and wrong"
    metric = evaluation.load_metric("course_exact_match")
    assert metric.compute(predictions=replies, references=refs)["exact_match"] == pytest.approx(expected)
    assert metric.compute(predictions=[" Lemon. ", "lemons"], references=["lemon", "lemon"]) == {"exact_match": 0.5}


def test_keyword_module_scores_as_contains_answer():
    replies, refs = _replies()
    expected = sum(evaluation.contains_answer(p, r) for p, r in zip(replies, refs)) / len(refs)
    metric = evaluation.load_metric("course_keyword_hits")
    got = metric.compute(predictions=replies, references=[[r] for r in refs])
    assert got["keyword_hit_rate"] == pytest.approx(expected) == pytest.approx(got["all_keywords"])
    assert metric.compute(predictions=["The capital is Lulu.", "12"], references=[["lulu", "capital"], ["13"]]) == {
        "keyword_hit_rate": 0.5, "all_keywords": 0.5}


def test_an_unknown_metric_names_the_course_metrics():
    with pytest.raises(ValueError, match="course_exact_match"):
        evaluation.load_metric("bleu")
