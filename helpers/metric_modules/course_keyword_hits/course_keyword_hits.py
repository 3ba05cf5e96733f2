"""The course's keyword hit rate as a Hugging Face `evaluate` module: for each reply, the share of its keywords it
contains (after the course's normalization), averaged over replies. Self-contained, as course_exact_match; a reply
"It is 12." hits the keyword "12", so longer replies than the bare answer are scored on what they say."""

import datasets
import evaluate

_DESCRIPTION = ("Mean over replies of the share of each reply's keywords that appear in it, both normalized "
                "(lower case, spaces collapsed, a trailing full stop dropped).")
_INPUTS = """
Args:
    predictions (list of str): the model's replies.
    references (list of list of str): the keywords each reply should contain.
Returns:
    keyword_hit_rate (float): in [0, 1].
    all_keywords (float): the share of replies that contain every one of their keywords.
Example:
    >>> metric = evaluate.load("helpers/metric_modules/course_keyword_hits")
    >>> metric.compute(predictions=["The capital is Lulu.", "12"], references=[["lulu", "capital"], ["13"]])
    {'keyword_hit_rate': 0.5, 'all_keywords': 0.5}
"""


def normalize(text: str) -> str:
    return " ".join(text.lower().strip().rstrip(".").split())


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _INPUTS)
class CourseKeywordHits(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(description=_DESCRIPTION, citation="", inputs_description=_INPUTS,
                                   features=datasets.Features({"predictions": datasets.Value("string"),
                                                               "references": datasets.Sequence(datasets.Value("string"))}))

    def _compute(self, predictions, references):
        shares = []
        for reply, keywords in zip(predictions, references):
            found = [normalize(k) in normalize(reply) for k in keywords]
            shares.append(sum(found) / len(found) if found else 1.0)
        return {"keyword_hit_rate": sum(shares) / len(shares) if shares else 0.0,
                "all_keywords": sum(s == 1.0 for s in shares) / len(shares) if shares else 0.0}
