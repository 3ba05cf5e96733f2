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
              notes: list[str] = (), unit: str = "documents") -> str:
    """Write a data card (Markdown): the source, each stage's removals and reasons, what is left. Returns the text.

    ``stages``: ``(stage, items removed, {reason: count})`` in pipeline order; ``unit``: what the items are (the
    capstone's chat sets: "rows"). Introduced in 05_data_curation.ipynb.
    """
    total = kept + sum(n for _, n, _ in stages)
    lines = ["# Data card: curated corpus", "", f"Source: `{source}` ({total:,} {unit}).", "",
             "| stage | removed | why |", "|---|---:|---|"]
    for stage, n, reasons in stages:
        why = ", ".join(f"{reason} {count}" for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1]))
        lines.append(f"| {stage} | {n:,} | {why or '-'} |")
    lines += ["", f"**Kept: {kept:,} {unit} ({kept / total:.1%}).**", ""] + [f"- {note}" for note in notes]
    text = "\n".join(lines) + "\n"
    Path(out_path).write_text(text, encoding="utf-8")
    return text


# ---------------------------------------------------------------------------------------------
# Chat sets (the post-training capstone, 19_capstone_post_training.ipynb): lesson 05's steps on SFT rows and
# preference pairs instead of documents.
# ---------------------------------------------------------------------------------------------
def _prompt(row: dict) -> list[dict]:
    return row["messages"][:-1] if "messages" in row else row["prompt"]


def _reply(row: dict) -> str:
    return (row["messages"] if "messages" in row else row["chosen"])[-1]["content"]


def raw_chat_sets(seed: int = 0, per_kind: int = 30) -> tuple[dict[str, list[dict]], dict[str, dict]]:
    """The shipped SFT and preference training sets as a scraped copy would hold them, and what was planted in
    them: ``({"sft": rows, "preference": pairs}, {row id: {"kind", "intended"?}})``. Every row gets an ``id``.
    Planted, ``per_kind`` rows of each kind in each set: ``contaminated`` (a held-out test row copied in, its case
    and spacing changed), ``escaped`` (a row whose prompt was HTML-escaped, ``&nbsp;`` for spaces: ``intended``
    is the text it should read), ``empty`` (the reply blank), and in the preference set ``tie`` (chosen equals
    rejected: no preference at all). The shipped sets' own repeats are left as they are: they are found, not
    planted. Introduced in 19_capstone_post_training.ipynb."""
    import random

    from helpers import data

    rng = random.Random(seed)
    sets, planted = {}, {}
    for kind in ("sft", "preference"):
        rows = [{"id": f"{kind}-{i:05d}", **r} for i, r in enumerate(data.load_split(kind, "train"))]
        test = data.load_split(kind, "test")
        fields = ("messages",) if kind == "sft" else ("prompt", "chosen", "rejected")
        for n, row in enumerate(rng.sample(test, per_kind)):  # test rows copied in, shouted or spaced out
            copy = json.loads(json.dumps(row))
            user = _prompt(copy)[-1]
            user["content"] = user["content"].upper() if n % 2 else "  " + user["content"].replace(" ", "  ")
            rows.append({"id": f"{kind}-contaminated-{n:03d}", **{f: copy[f] for f in ("task",) + fields}})
            planted[rows[-1]["id"]] = {"kind": "contaminated"}
        victims = rng.sample(range(len(rows) - per_kind), 3 * per_kind if kind == "preference" else 2 * per_kind)
        for i in victims[:per_kind]:
            user = _prompt(rows[i])[-1]
            planted[rows[i]["id"]] = {"kind": "escaped", "intended": user["content"]}
            user["content"] = user["content"].replace(" ", "&nbsp;")
        for i in victims[per_kind:2 * per_kind]:
            (rows[i]["messages"] if kind == "sft" else rows[i]["chosen"])[-1]["content"] = rng.choice(["", " ", "\n"])
            planted[rows[i]["id"]] = {"kind": "empty"}
        for i in victims[2 * per_kind:]:
            rows[i]["rejected"] = json.loads(json.dumps(rows[i]["chosen"]))
            planted[rows[i]["id"]] = {"kind": "tie"}
        rng.shuffle(rows)
        sets[kind] = rows
    return sets, planted


def _normalise_chat(text: str) -> str:
    """Lesson 05's normalisation: ftfy (HTML entities, mojibake), whitespace runs to one space, trimmed."""
    import re

    import ftfy

    return re.sub(r"\s+", " ", ftfy.fix_text(text, uncurl_quotes=False)).strip()


def _key(text: str) -> str:
    """What decontamination compares: the normalised prompt, lower case, no trailing full stop."""
    return _normalise_chat(text).lower().rstrip(".?! ")


def curate_chats(rows: list[dict], test_prompts: list[str]) -> tuple[list[dict], dict[str, dict[str, str]]]:
    """Lesson 05's pipeline on chat rows (SFT ``messages`` or preference ``prompt``/``chosen``/``rejected``), in
    order: normalise every message (ftfy, whitespace), drop rows with an empty reply, drop ties (chosen ==
    rejected), drop exact duplicates (SHA-256 of the normalised row, the first kept), drop rows whose prompt is a
    held-out ``test_prompts`` after normalising case, spacing and the final full stop (decontamination: the prompts
    are too short for n-grams). Returns (kept rows, ``{step: {row id: why}}``). Introduced in
    19_capstone_post_training.ipynb."""
    import hashlib

    test = {_key(p) for p in test_prompts}
    removed: dict[str, dict[str, str]] = {"empty reply": {}, "tie": {}, "duplicate": {}, "contaminated": {}}
    seen: dict[str, str] = {}
    kept = []
    for row in rows:
        row = json.loads(json.dumps(row))
        for field in ("messages", "prompt", "chosen", "rejected"):
            for message in row.get(field, []):
                message["content"] = _normalise_chat(message["content"])
        content = {f: row[f] for f in ("messages", "prompt", "chosen", "rejected") if f in row}
        digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
        if not _reply(row):
            removed["empty reply"][row["id"]] = "its reply is empty"
        elif "rejected" in row and row["rejected"] == row["chosen"]:
            removed["tie"][row["id"]] = "chosen equals rejected"
        elif digest in seen:
            removed["duplicate"][row["id"]] = seen[digest]
        elif _key(_prompt(row)[-1]["content"]) in test:
            removed["contaminated"][row["id"]] = "its prompt is a test prompt"
        else:
            seen[digest] = row["id"]
            kept.append(row)
    return kept, removed


def chat_scores(kept: list[dict], removed: dict[str, dict[str, str]], planted: dict[str, dict]) -> dict:
    """How curation did against what ``raw_chat_sets`` planted: the share of each harmful kind removed, of the
    escaped rows repaired to their intended text, and how many rows nothing was planted in were removed (by step:
    the sets' own repeats are the duplicates). Introduced in 19_capstone_post_training.ipynb."""
    gone = {i: step for step, ids in removed.items() for i in ids}
    ids = {r["id"] for r in kept} | set(gone)
    caught = {}
    for kind in ("contaminated", "empty", "tie"):
        of_kind = [i for i in ids if planted.get(i, {}).get("kind") == kind]
        if of_kind:
            caught[kind] = sum(i in gone for i in of_kind) / len(of_kind)
    text = {r["id"]: _prompt(r)[-1]["content"] for r in kept}
    escaped = [i for i in ids if planted.get(i, {}).get("kind") == "escaped"]
    repaired = sum(text.get(i) == planted[i]["intended"] or gone.get(i) == "duplicate" for i in escaped)
    clean_removed = Counter(step for i, step in gone.items() if i not in planted)
    return {"caught": caught, "repaired": repaired / len(escaped) if escaped else 1.0,
            "unplanted_removed": dict(clean_removed)}
