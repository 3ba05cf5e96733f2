"""The course's exact match as a Hugging Face `evaluate` module: `evaluate.load("<this folder>")` offline, or pushed
to the Hub as a Space and loaded by id. Self-contained (it works where the course is not installed); it normalizes
as ``helpers.evaluation.normalize`` does, which tests/test_evaluate_modules.py checks row by row."""

import datasets
import evaluate

_DESCRIPTION = ("Share of predictions equal to their reference after normalization: lower case, outer spaces and "
                "one trailing full stop dropped, inner spaces collapsed (' Lemon. ' matches 'lemon').")
_INPUTS = """
Args:
    predictions (list of str): the model's replies.
    references (list of str): the expected answers, one per reply.
Returns:
    exact_match (float): the share of replies that match, in [0, 1].
Example:
    >>> metric = evaluate.load("helpers/metric_modules/course_exact_match")
    >>> metric.compute(predictions=[" Lemon. ", "lemons"], references=["lemon", "lemon"])
    {'exact_match': 0.5}
"""


def normalize(text: str) -> str:
    return " ".join(text.lower().strip().rstrip(".").split())


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _INPUTS)
class CourseExactMatch(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(description=_DESCRIPTION, citation="", inputs_description=_INPUTS,
                                   features=datasets.Features({"predictions": datasets.Value("string"),
                                                               "references": datasets.Value("string")}))

    def _compute(self, predictions, references):
        hits = [normalize(p) == normalize(r) for p, r in zip(predictions, references)]
        return {"exact_match": sum(hits) / len(hits) if hits else 0.0}
