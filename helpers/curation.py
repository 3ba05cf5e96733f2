"""Data curation (05_data_curation.ipynb): the dirty corpus's planted truth, scores against it, and the data card.

The pipeline itself (cleaning, filters, dedup, decontamination, PII) is written out in the notebook; this module
holds what only grades or reports it.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from helpers.paths import DATA_DIR

DIRTY_FILE = DATA_DIR / "curation" / "dirty.jsonl"
PLANTED_FILE = DATA_DIR / "curation" / "planted.json"


def load_planted(path: str | Path = PLANTED_FILE) -> dict[str, dict]:
    """``{document id: {"kind", ...}}``: what ``helpers.data.build_dirty`` planted. Introduced in 05_data_curation.ipynb."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


DUPLICATE_KINDS = ("clean", "exact", "near")


def groups(planted: dict[str, dict], present: set[str], kinds=DUPLICATE_KINDS) -> dict[str, set[str]]:
    """Planted duplicate groups among the ``present`` documents: a clean document with its copies of ``kinds``."""
    found: dict[str, set[str]] = {}
    for doc_id in present:
        source = planted[doc_id].get("of", doc_id)
        if planted[doc_id]["kind"] in kinds:
            found.setdefault(source, set()).add(doc_id)
    return {source: members for source, members in found.items() if len(members) > 1}


def dedup_scores(dropped: dict[str, str], planted: dict[str, dict], present: set[str],
                 kinds=DUPLICATE_KINDS) -> dict[str, float]:
    """Precision and recall of a deduplicator that dropped ``{doc id: the kept doc it matched}`` out of ``present``.

    A drop is right when both documents are in the same planted group (a clean document and its copies of
    ``kinds``). A group of n documents should lose n - 1 of them, whichever is kept. Introduced in
    05_data_curation.ipynb.
    """
    planted_groups = groups(planted, present, kinds)
    group_of = {doc: source for source, members in planted_groups.items() for doc in members}
    right = sum(1 for doc, match in dropped.items() if doc in group_of and group_of[doc] == group_of.get(match))
    should = sum(len(members) - 1 for members in planted_groups.values())
    return {"precision": right / len(dropped) if dropped else 1.0, "recall": right / should if should else 1.0,
            "dropped": len(dropped), "should_drop": should}


def removed_by_kind(removed: set[str], planted: dict[str, dict]) -> dict[str, int]:
    """How many documents of each planted kind a stage removed. Introduced in 05_data_curation.ipynb."""
    return dict(Counter(planted[doc]["kind"] for doc in removed))


def data_card(source: str, stages: list[tuple[str, int, dict[str, int]]], kept: int, out_path: str | Path,
              notes: list[str] = ()) -> str:
    """Write a data card (Markdown): the source, each stage's removals and reasons, what is left. Returns the text.

    ``stages``: ``(stage, documents removed, {reason: count})`` in pipeline order. Introduced in
    05_data_curation.ipynb.
    """
    total = kept + sum(n for _, n, _ in stages)
    lines = ["# Data card: curated corpus", "", f"Source: `{source}` ({total:,} documents).", "",
             "| stage | removed | why |", "|---|---:|---|"]
    for stage, n, reasons in stages:
        why = ", ".join(f"{reason} {count}" for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1]))
        lines.append(f"| {stage} | {n:,} | {why or '-'} |")
    lines += ["", f"**Kept: {kept:,} documents ({kept / total:.1%}).**", ""] + [f"- {note}" for note in notes]
    text = "\n".join(lines) + "\n"
    Path(out_path).write_text(text, encoding="utf-8")
    return text
