"""A learner's own data, the rest of the way: any common SFT or preference format, from any common container.

Containers (``rows``): JSON Lines (errors name the line), a ``.json`` array (errors name the item), Parquet, CSV,
a folder written by ``Dataset.save_to_disk`` (errors name the row), and, where the Hub is reachable (the ``t4``
profile), a Hub dataset id. Formats: see ``load_sft`` and ``load_preferences``; every row becomes the course's
conversational row, so a lesson trains on a learner's file exactly as on the shipped one. The course's own files
are generated and read by ``helpers.data``.

Introduced in 03_sft.ipynb (SFT files) and 07_reward_model.ipynb (preference files).
"""

from __future__ import annotations

import codecs
import json
import os
from pathlib import Path


class DataError(ValueError):
    """A shipped or user-supplied data file is malformed; the message names file, line and field."""


def check_messages(value: list, where: str, field: str) -> None:
    """Raise DataError (naming ``where`` and ``field``) unless ``value`` is a list of role/content messages."""
    for i, message in enumerate(value):
        if not isinstance(message, dict) or set(message) != {"role", "content"}:
            raise DataError(f"{where}: field '{field}'[{i}] must be an object with exactly 'role' and 'content'")
        if message["role"] not in {"system", "user", "assistant"}:
            raise DataError(f"{where}: field '{field}'[{i}].role is {message['role']!r}, not system/user/assistant")
        if not isinstance(message["content"], str) or not message["content"]:
            raise DataError(f"{where}: field '{field}'[{i}].content must be a non-empty string")


def json_lines(path: Path, raw: bytes | None = None):
    """Yield ``(row, "file:line")`` for each non-blank line of a JSONL file (``raw``: its bytes, if already read).

    Accepted: a UTF-8 byte-order mark (Windows editors write one), Windows line endings, blank lines (skipped).
    Errors (DataError naming file and line): bytes that are not UTF-8 (with the byte and its column), a line that is
    not JSON (on the last line: the file looks cut off), a value that is not a JSON object, a file with no rows.
    """
    if raw is None:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise DataError(f"{path}: no such file") from None
    raw = raw.removeprefix(codecs.BOM_UTF8)
    lines = raw.split(b"\n")
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for i, line in enumerate(lines):
        where = f"{path}:{i + 1}"
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as err:
            raise DataError(f"{where}: not UTF-8 (byte 0x{line[err.start]:02x} at column {err.start + 1}); "
                            "save the file as UTF-8") from None
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            cut = " (the last line is incomplete: was the file cut off?)" if i == last else ""
            raise DataError(f"{where}: not valid JSON ({err.msg} at column {err.colno}){cut}") from None
        if not isinstance(value, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(value).__name__}")
        yield value, where
    if last < 0:
        raise DataError(f"{path}: no rows")


def _json_array(path: Path, raw: bytes):
    """Yield ``(row, "file: item N")`` for each object of a ``.json`` file holding one array (``raw``: its bytes,
    without a byte-order mark)."""
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 (byte at offset {err.start}); save the file as UTF-8") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{err.lineno}: not valid JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(value, list) or not value:
        raise DataError(f"{path}: expected a JSON array of objects (or JSON Lines), got {type(value).__name__}"
                        + (" with no rows" if value == [] else ""))
    for i, row in enumerate(value):
        if not isinstance(row, dict):
            raise DataError(f"{path}: item {i + 1}: expected a JSON object, got {type(row).__name__}")
        yield row, f"{path}: item {i + 1}"


def _dataset_rows(dataset, name: str):
    """Yield ``(row, "name: row N")`` from a ``datasets`` Dataset (or the train split of a DatasetDict)."""
    if hasattr(dataset, "keys") and not hasattr(dataset, "column_names"):  # a DatasetDict
        splits = list(dataset.keys())
        if "train" not in splits and len(splits) != 1:
            raise DataError(f"{name}: has splits {splits}; the course reads 'train' or a single split")
        dataset = dataset["train" if "train" in splits else splits[0]]
    if len(dataset) == 0:
        raise DataError(f"{name}: no rows")
    for i, row in enumerate(dataset):
        yield dict(row), f"{name}: row {i + 1}"


def rows(source: str | Path):
    """Yield ``(row, where)`` for every row of a learner's file, folder or Hub dataset id; ``where`` names the file
    and the line, item or row for error messages. Introduced in 03_sft.ipynb."""
    path = Path(source)
    if path.is_dir():
        if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
            import datasets

            yield from _dataset_rows(datasets.load_from_disk(str(path)), str(path))
            return
        raise DataError(f"{path}: is a folder, not a data file: give a .jsonl, .json, .parquet or .csv file, or a "
                        "folder written by Dataset.save_to_disk")
    if not path.exists():
        if "/" in str(source) and not str(source).startswith((".", "/")) and path.suffix == "":
            yield from _hub_rows(str(source))
            return
        raise DataError(f"{path}: no such file")
    with path.open("rb") as file:
        head = file.read(4)  # Parquet's magic bytes: not the whole file
    suffix = path.suffix.lower()
    if head == b"PAR1" or suffix == ".parquet":
        import datasets

        yield from _dataset_rows(datasets.Dataset.from_parquet(str(path)), str(path))
    elif suffix in (".csv", ".tsv"):
        import datasets

        yield from _dataset_rows(datasets.Dataset.from_csv(str(path), sep="\t" if suffix == ".tsv" else ","), str(path))
    elif suffix == ".json":  # an array of objects, or JSON Lines under another name
        raw = path.read_bytes().removeprefix(codecs.BOM_UTF8)
        yield from _json_array(path, raw) if raw.lstrip()[:1] in (b"[", b"") else json_lines(path, raw)
    else:
        yield from json_lines(path)


def _hub_rows(repo_id: str):
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise DataError(f"{repo_id}: no such file, and the Hub is off (HF_HUB_OFFLINE=1, the tiny profile): a Hub "
                        "dataset id needs the t4 profile or a machine online")
    import datasets

    try:
        dataset = datasets.load_dataset(repo_id, split="train")
    except Exception as err:  # noqa: BLE001 - whatever the Hub says, the learner hears it with the id
        raise DataError(f"{repo_id}: could not load it from the Hub ({type(err).__name__}: {err})") from None
    yield from _dataset_rows(dataset, repo_id)


SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant",
                  "model": "assistant", "system": "system"}


def _sharegpt(value, where: str) -> list[dict]:
    """ShareGPT's ``conversations`` (``from``/``value``, or ``role``/``content``) as course messages."""
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: field 'conversations' must be a non-empty list of turns")
    messages = []
    for i, turn in enumerate(value):
        if not isinstance(turn, dict):
            raise DataError(f"{where}: field 'conversations'[{i}] must be an object, got {type(turn).__name__}")
        speaker, text = (turn.get("from"), turn.get("value")) if "from" in turn else (turn.get("role"), turn.get("content"))
        if speaker not in SHAREGPT_ROLES:
            raise DataError(f"{where}: field 'conversations'[{i}] speaker {speaker!r} is not one of "
                            f"{sorted(SHAREGPT_ROLES)}")
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{where}: field 'conversations'[{i}] has no text")
        messages.append({"role": SHAREGPT_ROLES[speaker], "content": text})
    return messages


def _preference_row(row: dict, where: str) -> dict:
    """One preference row in any of TRL's formats, as the course's conversational row (see load_preferences)."""
    missing = [f for f in ("chosen", "rejected") if f not in row]
    if missing:
        raise DataError(f"{where}: missing field(s) {missing}; a preference row needs 'chosen' and 'rejected' "
                        "(and 'prompt', unless chosen/rejected are whole conversations)")
    fields = [f for f in ("prompt", "chosen", "rejected") if f in row]
    kinds = {f: "text" if isinstance(row[f], str) else "messages" if isinstance(row[f], list) else None for f in fields}
    for field, kind in kinds.items():
        if kind is None:
            raise DataError(f"{where}: field '{field}' must be a string or a list of messages, "
                            f"got {type(row[field]).__name__}")
        if kind == "text" and not row[field].strip():
            raise DataError(f"{where}: field '{field}' is empty")
        if kind == "messages":
            check_messages(row[field], where, field)
    if len(set(kinds.values())) > 1:
        raise DataError(f"{where}: fields {fields} mix strings and message lists ({kinds}); use one format")
    task = row.get("task", "custom")
    if not isinstance(task, str):
        raise DataError(f"{where}: field 'task' must be a string, got {type(task).__name__}")
    if row["chosen"] == row["rejected"]:
        raise DataError(f"{where}: 'chosen' and 'rejected' are the same reply: the pair teaches nothing")
    if "prompt" not in row:  # implicit prompt: two whole conversations that share everything but the last reply
        chosen, rejected = row["chosen"], row["rejected"]
        if kinds["chosen"] == "text" or len(chosen) < 2 or chosen[:-1] != rejected[:-1]:
            raise DataError(f"{where}: missing field 'prompt' (without it, 'chosen' and 'rejected' must be "
                            "conversations that differ only in their last message)")
        return {"task": task, "prompt": chosen[:-1], "chosen": chosen[-1:], "rejected": rejected[-1:]}
    if kinds["prompt"] == "text":
        return {"task": task, "prompt": [{"role": "user", "content": row["prompt"]}],
                "chosen": [{"role": "assistant", "content": row["chosen"]}],
                "rejected": [{"role": "assistant", "content": row["rejected"]}]}
    return {"task": task, "prompt": row["prompt"], "chosen": row["chosen"], "rejected": row["rejected"]}


SFT_FORMATS = ('"messages" (TRL conversational)', '"conversations" with "from"/"value" (ShareGPT)',
               '"prompt" + "completion" (strings or message lists)', '"prompt" + "response"',
               '"instruction" + "output", optional "input" (Alpaca)')


def _sft_row(row: dict, where: str) -> dict:
    """One SFT row in any of the common formats, as the course's ``{"task", "messages"}`` row (see load_sft)."""
    task = row.get("task", "custom")
    if not isinstance(task, str):
        raise DataError(f"{where}: field 'task' must be a string, got {type(task).__name__}")

    def text(field: str, value) -> str:
        if not isinstance(value, str) or not value.strip():
            raise DataError(f"{where}: field '{field}' must be a non-empty string, got {value!r:.40}")
        return value

    if "messages" in row:
        if not isinstance(row["messages"], list) or not row["messages"]:
            raise DataError(f"{where}: field 'messages' must be a non-empty list of messages")
        messages = row["messages"]
        check_messages(messages, where, "messages")
    elif "conversations" in row:
        messages = _sharegpt(row["conversations"], where)
    elif "prompt" in row and ("completion" in row or "response" in row):
        reply = "completion" if "completion" in row else "response"
        prompt, answer = row["prompt"], row[reply]
        if isinstance(prompt, list) != isinstance(answer, list):
            raise DataError(f"{where}: fields 'prompt' and '{reply}' mix a string and a message list; use one format")
        if isinstance(prompt, list):
            check_messages(prompt, where, "prompt")
            check_messages(answer, where, reply)
            messages = prompt + answer
        else:
            messages = [{"role": "user", "content": text("prompt", prompt)},
                        {"role": "assistant", "content": text(reply, answer)}]
    elif "instruction" in row and "output" in row:
        extra = row.get("input") or ""
        if not isinstance(extra, str):
            raise DataError(f"{where}: field 'input' must be a string, got {type(extra).__name__}")
        user = text("instruction", row["instruction"]) + (f"\n\n{extra}" if extra.strip() else "")
        messages = [{"role": "user", "content": user}, {"role": "assistant", "content": text("output", row["output"])}]
    else:
        raise DataError(f"{where}: not an SFT row (fields {sorted(row)}); accepted: " + "; ".join(SFT_FORMATS))
    if not messages or messages[-1]["role"] != "assistant":
        raise DataError(f"{where}: the conversation must end with an assistant message (the reply to learn)")
    return {"task": task, "messages": messages}


def load_sft(path: str | Path) -> list[dict]:
    """Supervised fine-tuning rows from a learner's file in any common format, as conversational rows.

    The file: anything :func:`rows` reads. Accepted per row (see ``SFT_FORMATS``): TRL's ``messages``; ShareGPT's
    ``conversations`` (``from`` human/gpt/system and ``value``); ``prompt`` + ``completion`` as strings (the prompt
    becomes a user turn, the completion the assistant's) or as message lists; ``prompt`` + ``response``; Alpaca's
    ``instruction`` + ``output`` with an optional ``input`` (appended to the instruction after a blank line).
    ``task`` is optional (default ``"custom"``); other fields are ignored. Returns ``{"task", "messages"}`` rows,
    what the course's SFT lessons train on. Raises DataError naming file, line and field. Introduced in
    03_sft.ipynb.
    """
    return [_sft_row(row, where) for row, where in rows(path)]


def load_preferences(path: str | Path) -> list[dict]:
    """Preference pairs from a learner's file (anything :func:`rows` reads) in any of TRL's formats, as
    conversational rows; a pair whose chosen reply equals its rejected one is refused (it teaches nothing).

    Accepted per row: ``prompt``/``chosen``/``rejected`` as strings (standard format; the prompt becomes a user
    turn, the replies assistant turns), as message lists (conversational), or ``chosen``/``rejected`` alone as
    whole conversations that differ only in the last message (implicit prompt). ``task`` is optional
    (default ``"custom"``); other fields are ignored. Returns ``{"task", "prompt", "chosen", "rejected"}`` rows
    with message lists, what the course's preference lessons train on. Raises DataError naming file, line and
    field. Introduced in 07_reward_model.ipynb.
    """
    return [_preference_row(row, where) for row, where in rows(path)]
