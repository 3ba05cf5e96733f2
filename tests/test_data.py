import json
import re

import pytest

from helpers import data, tasks, userdata
from helpers.paths import DATA_DIR


def test_shipped_files_equal_a_fresh_build(tmp_path):
    assert data.main(["build", "--check"]) == 0, "data/ is stale: run `python -m helpers.data build`"
    assert data.main(["build", "--out", str(tmp_path)]) == 0
    assert data.build_all() == data.build_all(), "the generator is not deterministic"


def test_every_shipped_split_loads():
    for kind in ("sft", "preference", "rl"):
        for split in ("train", "validation", "test"):
            rows = data.load_split(kind, split)
            extra = {"unknown"} if kind == "preference" else set()
            assert {r["task"] for r in rows} == set(data.TASK_NAMES) | extra


def test_test_split_is_held_out():
    train = data.load_split("sft", "train")
    test = data.load_split("sft", "test")
    train_prompts = {r["messages"][0]["content"] for r in train}
    assert not [r for r in test if r["messages"][0]["content"] in train_prompts]

    # the test split's sums are training pairs asked in the held-out phrasing; sft/unseen.jsonl asks 20 pairs that no
    # split answers, one row each
    test_pairs, train_pairs = data.add_pairs(test), data.add_pairs(train)
    assert test_pairs <= train_pairs and len(train_pairs) == 70 and len(test_pairs) >= 40
    unseen = data.load_split("sft", "unseen")
    answered = set().union(*(data.add_pairs(data.load_split("sft", s)) for s in ("train", "validation", "test")))
    assert len(unseen) == len(data.add_pairs(unseen)) == 20 and not data.add_pairs(unseen) & answered
    held_out = {form for family in data.TEMPLATES.values() for form in family[tasks.TRAIN_PHRASINGS:]}
    assert {r["messages"][0]["content"].split()[0] for r in unseen} == {"Compute"} and len(held_out) == 3


def test_pretraining_chats_teach_the_format_not_the_tasks():
    chats = data.load_chats()
    assert len(chats) >= 1000 and all([m["role"] for m in c] == ["user", "assistant"] for c in chats)
    for chat in chats:
        text = " ".join(m["content"] for m in chat).lower()
        assert not {"capital", "letter", "+", "add"} & set(text.replace(".", " ").split()), chat
        assert not any(ch.isdigit() for ch in text), chat
    # one dialogue in six declines a question its story does not answer (what lesson 08's DPO builds on)
    declined = [c for c in chats if c[1]["content"] == data.IDK]
    assert 0.12 <= len(declined) / len(chats) <= 0.22
    for chat in declined:
        story, question = chat[0]["content"].rsplit(". ", 1)
        assert question.split()[-1].rstrip("?") not in story, chat  # the thing asked about is not in the story


def test_answers_are_correct():
    for row in data.load_split("rl", "test") + data.load_split("rl", "train"):
        prompt = row["prompt"][0]["content"]
        if row["task"] == "add":
            question = re.search(r"[A-Z][^.?]*\d(?: \+ | and | plus )\d[.?]", prompt).group()  # not the distractor
            a, b = (int(x) for x in re.findall(r"\d", question))
            assert row["answer"] == str(a + b), (prompt, question)
        elif row["task"] == "letter":
            word = re.search(r"letter of (\w+)|does (\w+) (?:start|begin)|word (\w+) starts", prompt)
            assert row["answer"] == next(w for w in word.groups() if w)[0], prompt
    for row in data.load_split("preference", "train"):
        assert row["chosen"][0]["content"] != row["rejected"][0]["content"]


def test_rl_rows_add_a_distractor_of_the_same_kind_with_held_out_phrasings():
    sft = {s: [r["messages"][0]["content"] for r in data.load_split("sft", s)] for s in ("train", "test")}
    for split in ("train", "test"):
        rows = data.load_split("rl", split)
        forms = [f for family in tasks.FAMILIES.values() for f in tasks.phrasings(family.distractors, split)]
        patterns = [re.sub(r"\\\{\w+\\\}", r"\\w+", re.escape(f)) for f in forms]  # "{n} has" -> r"\w+\ has"
        for row, question in zip(rows, sft[split]):  # the same questions as the SFT split, in the same order
            prompt = row["prompt"][0]["content"]
            assert question in prompt and prompt != question, (row, question)
            sentence = prompt.replace(question, "").strip()
            assert any(re.fullmatch(p, sentence) for p in patterns), (split, sentence)
            assert data.distractor_answer(row) != row["answer"], row
    train = {r["prompt"][0]["content"] for r in data.load_split("rl", "train")}
    assert not train & {r["prompt"][0]["content"] for r in data.load_split("rl", "test")}


def _write(tmp_path, lines):
    path = tmp_path / "sft" / "bad.jsonl"
    path.parent.mkdir(exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    return path


GOOD = json.dumps({"task": "add", "messages": [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2"}]})


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"task": "add"}), "missing field(s) ['messages']"),
        (json.dumps({"task": "add", "messages": [], "extra": 1}), "unexpected field(s) ['extra']"),
        (json.dumps({"task": 3, "messages": []}), "field 'task' must be str"),
        (json.dumps({"task": "a", "messages": [{"role": "bot", "content": "x"}]}), "'messages'[0].role is 'bot'"),
        (json.dumps({"task": "a", "messages": [{"role": "user"}]}), "exactly 'role' and 'content'"),
        ("[1, 2]", "expected a JSON object"),
        ('{"task": "add", "messages": [{"role": "user", "con', "the last line is incomplete"),
    ],
)
def test_bad_files_name_file_line_and_field(tmp_path, bad_line, message):
    path = _write(tmp_path, [GOOD, bad_line])
    with pytest.raises(data.DataError) as err:
        data.load_jsonl(path)
    assert f"{path}:2:" in str(err.value)
    assert message in str(err.value)


def test_unknown_kind_and_empty_file(tmp_path):
    path = _write(tmp_path, [GOOD])
    with pytest.raises(data.DataError, match="unknown dataset kind"):
        data.load_jsonl(path, kind="nope")
    path.write_text("")
    with pytest.raises(data.DataError, match="no rows"):
        data.load_jsonl(path)


def test_unknown_countries_are_new_names_held_out_and_only_in_preference_data():
    corpus = " ".join(data.load_corpus("train") + data.load_corpus("validation"))
    sft = json.dumps([r["messages"] for s in ("train", "validation", "test") for r in data.load_split("sft", s)])
    countries = {}
    for split in ("train", "validation", "test"):
        rows = [r for r in data.load_split("preference", split) if r["task"] == "unknown"]
        assert len(rows) == data.UNKNOWN_ROWS[split]
        countries[split] = {r["prompt"][0]["content"].rstrip("?").split()[-1] for r in rows}
        for row in rows:
            assert row["chosen"][0]["content"] == data.IDK and row["rejected"][0]["content"] != data.IDK
    assert not countries["test"] & (countries["train"] | countries["validation"])
    for name in set().union(*countries.values()):
        assert name not in corpus, f"{name} appears in the corpus: it would not be unknown"
    assert data.IDK not in sft, "declining must be new behaviour, absent from the SFT data"
    test_prompts = {r["prompt"][0]["content"] for r in data.load_split("preference", "test") if r["task"] == "unknown"}
    assert all(p.startswith("Which city is the capital of") for p in test_prompts), "held-out phrasing"


def _prefs(tmp_path, rows):
    path = tmp_path / "prefs.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_load_preferences_accepts_trl_formats(tmp_path):
    user = [{"role": "user", "content": "Hi?"}]
    good, bad = [{"role": "assistant", "content": "Hello."}], [{"role": "assistant", "content": "Go away."}]
    path = _prefs(tmp_path, [
        {"prompt": "Hi?", "chosen": "Hello.", "rejected": "Go away.", "score": 3},  # standard, extra field ignored
        {"task": "greet", "prompt": user, "chosen": good, "rejected": bad},  # conversational
        {"chosen": user + good, "rejected": user + bad},  # implicit prompt
    ])
    rows = userdata.load_preferences(path)
    assert [r["task"] for r in rows] == ["custom", "greet", "custom"]
    assert all(r["prompt"] == user and r["chosen"] == good and r["rejected"] == bad for r in rows)
    shipped = userdata.load_preferences(data.DATA_DIR / "preference" / "test.jsonl")
    assert shipped == data.load_split("preference", "test")


@pytest.mark.parametrize(
    "bad_row, message",
    [
        ({"prompt": "Hi?", "chosen": "Hello."}, "missing field(s) ['rejected']"),
        ({"prompt": "Hi?", "chosen": 3, "rejected": "x"}, "field 'chosen' must be a string or a list of messages"),
        ({"prompt": "Hi?", "chosen": "", "rejected": "x"}, "field 'chosen' is empty"),
        ({"prompt": "Hi?", "chosen": [{"role": "assistant", "content": "a"}], "rejected": "b"}, "mix strings"),
        ({"prompt": [{"role": "robot", "content": "a"}], "chosen": [], "rejected": []}, "'prompt'[0].role is 'robot'"),
        ({"chosen": "a", "rejected": "b"}, "missing field 'prompt'"),
        ({"prompt": "Hi?", "chosen": "a", "rejected": "b", "task": 1}, "field 'task' must be a string"),
        ("{oops", "not valid JSON"),
    ],
)
def test_load_preferences_names_file_line_and_field(tmp_path, bad_row, message):
    path = _prefs(tmp_path, [{"prompt": "Hi?", "chosen": "a", "rejected": "b"}, bad_row])
    with pytest.raises(data.DataError) as err:
        userdata.load_preferences(path)
    assert f"{path}:2:" in str(err.value) and message in str(err.value)


def test_dirty_corpus_plants_what_its_truth_says():
    rows, planted = data.build_dirty()
    text = {r["id"]: r["text"] for r in rows}
    assert set(text) == set(planted) and len(rows) == sum(data.DIRTY_COUNTS.values())
    kinds = [p["kind"] for p in planted.values()]
    assert {k: kinds.count(k) for k in data.DIRTY_COUNTS} == data.DIRTY_COUNTS
    corpus = set(data.build_corpus()["train"].splitlines())
    clean = [text[i] for i, p in planted.items() if p["kind"] == "clean"]
    assert set(clean) <= corpus
    assert len(set(clean)) == len(clean), "clean documents are distinct"
    for i, p in planted.items():
        if p["kind"] == "exact":
            assert text[i] == text[p["of"]] and planted[p["of"]]["kind"] == "clean"
        elif p["kind"] == "near":
            assert text[i] != text[p["of"]] and p["edit"] in data.NEAR_EDITS
        elif p["kind"] == "markup":
            assert text[i].startswith("<html>") and p["intended"] in corpus
        elif p["kind"] == "mojibake":
            assert text[i] != p["intended"] and "café" in p["intended"]
        elif p["kind"] == "pii":
            assert all(x in text[i] for x in p["emails"] + p["phones"])
        elif p["kind"] == "contaminated":
            assert p["prompt"] in text[i]
    assert all("Ã" in text[i] for i, p in planted.items() if p["kind"] == "mojibake")
    assert data.load_jsonl(data.DATA_DIR / "curation" / "dirty.jsonl", "curation") == rows


# --- bring your own data: what a learner's JSONL may look like ----------------------------------------------
USER, BOT = {"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}


@pytest.mark.parametrize("row", [
    {"messages": [USER, BOT]},
    {"prompt": "Hi?", "completion": "Hello."},
    {"prompt": [USER], "completion": [BOT]},
    {"prompt": "Hi?", "response": "Hello.", "id": 7},
    {"instruction": "Hi?", "output": "Hello."},
    {"instruction": "Hi?", "input": "", "output": "Hello."},
])
def test_load_sft_accepts_the_common_formats(tmp_path, row):
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps(row) + "\n")
    assert userdata.load_sft(path) == [{"task": "custom", "messages": [USER, BOT]}]


def test_alpaca_input_follows_the_instruction(tmp_path):
    path = tmp_path / "alpaca.jsonl"
    path.write_text(json.dumps({"instruction": "Add.", "input": "2 and 3", "output": "5", "task": "add"}) + "\n")
    assert userdata.load_sft(path)[0] == {"task": "add", "messages": [{"role": "user", "content": "Add.\n\n2 and 3"},
                                                                  {"role": "assistant", "content": "5"}]}


@pytest.mark.parametrize("row, message", [
    ({"question": "Hi?", "answer": "Hello."}, "not an SFT row (fields ['answer', 'question']); accepted: \"messages\""),
    ({"prompt": "Hi?", "completion": ""}, "field 'completion' must be a non-empty string"),
    ({"prompt": "Hi?", "completion": [BOT]}, "fields 'prompt' and 'completion' mix a string and a message list"),
    ({"messages": [BOT, USER]}, "must end with an assistant message"),
    ({"prompt": [], "completion": []}, "must end with an assistant message"),
    ({"instruction": "Hi?", "input": 3, "output": "Hello."}, "field 'input' must be a string"),
    ({"messages": "Hi?"}, "field 'messages' must be a non-empty list"),
])
def test_load_sft_names_line_field_and_formats(tmp_path, row, message):
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps({"prompt": "a", "completion": "b"}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(data.DataError) as err:
        userdata.load_sft(path)
    assert f"{path}:2:" in str(err.value) and message in str(err.value)


def test_file_quirks_accepted(tmp_path):
    # accepted: a UTF-8 byte-order mark, Windows line endings, blank lines (anywhere), no final newline
    row = json.dumps({"prompt": "Hi?", "completion": "Hello."})
    path = tmp_path / "windows.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + f"{row}\r\n\r\n{row}\r\n\n{row}".encode())
    assert len(userdata.load_sft(path)) == 3
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_bytes(b"\xef\xbb\xbf" + json.dumps({"prompt": "Hi?", "chosen": "Yes.", "rejected": "No."}).encode())
    assert len(userdata.load_preferences(prefs)) == 1


def test_file_quirks_refused(tmp_path):
    row = json.dumps({"prompt": "Hi?", "completion": "Hello."}).encode()
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(row + b"\n" + b'{"prompt": "caf\xe9", "completion": "ok"}\n')  # Latin-1, not UTF-8
    with pytest.raises(data.DataError, match=r"latin1.jsonl:2: not UTF-8 \(byte 0xe9 at column 16\)"):
        userdata.load_sft(path)
    path.write_bytes(row + b"\n" + row[:20])  # a download cut short
    with pytest.raises(data.DataError, match=r":2: not valid JSON .*the last line is incomplete"):
        userdata.load_sft(path)
    path.write_bytes(b"\n\r\n")
    with pytest.raises(data.DataError, match="no rows"):
        userdata.load_sft(path)
    with pytest.raises(data.DataError, match="no such file"):
        userdata.load_sft(tmp_path / "missing.jsonl")


@pytest.mark.parametrize("fmt", ["messages", "prompt/completion", "alpaca"])
def test_the_course_rows_survive_a_round_trip_through_each_format(tmp_path, fmt):
    rows = data.load_split("sft", "train")
    def record(row):
        user, bot = (m["content"] for m in row["messages"])
        return {"messages": {"task": row["task"], "messages": row["messages"]},
                "prompt/completion": {"task": row["task"], "prompt": user, "completion": bot},
                "alpaca": {"task": row["task"], "instruction": user, "input": "", "output": bot}}[fmt]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(record(r)) + "\n" for r in rows))
    assert userdata.load_sft(path) == rows


USER_ROW = {"role": "user", "content": "Hi?"}
BOT_ROW = {"role": "assistant", "content": "Hello."}


def test_sharegpt_conversations_load_as_messages(tmp_path):
    path = tmp_path / "sharegpt.jsonl"
    rows = [{"conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "Hi?"},
                               {"from": "gpt", "value": "Hello."}]},
            {"conversations": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    loaded = userdata.load_sft(path)
    assert loaded[0]["messages"] == [{"role": "system", "content": "Be brief."}, USER_ROW, BOT_ROW]
    assert loaded[1]["messages"] == [USER_ROW, BOT_ROW]
    path.write_text(json.dumps({"conversations": [{"from": "human", "value": "Hi?"}, {"from": "robot", "value": "x"}]}))
    with pytest.raises(data.DataError, match=r"sharegpt.jsonl:1: field 'conversations'\[1\] speaker 'robot'"):
        userdata.load_sft(path)


def test_every_container_a_learner_has_loads_the_same_rows(tmp_path):
    import datasets

    table = [{"prompt": "Hi?", "completion": "Hello."}, {"prompt": "Add 2 and 3.", "completion": "5"}]
    expected = userdata.load_sft(_jsonl_file(tmp_path / "a.jsonl", table))
    (tmp_path / "a.json").write_text(json.dumps(table, indent=2))  # a JSON array, not JSON Lines
    datasets.Dataset.from_list(table).to_parquet(str(tmp_path / "a.parquet"))
    datasets.Dataset.from_list(table).to_csv(str(tmp_path / "a.csv"), index=False)
    datasets.Dataset.from_list(table).save_to_disk(str(tmp_path / "saved"))
    for name in ("a.json", "a.parquet", "a.csv", "saved"):
        assert userdata.load_sft(tmp_path / name) == expected, name
    (tmp_path / "b.json").write_text(json.dumps([table[0], {"prompt": "Hi?"}]))
    with pytest.raises(data.DataError, match=r"b.json: item 2: not an SFT row"):
        userdata.load_sft(tmp_path / "b.json")
    datasets.Dataset.from_list([table[0], {"prompt": "Hi?", "completion": ""}]).to_parquet(str(tmp_path / "b.parquet"))
    with pytest.raises(data.DataError, match=r"b.parquet: row 2: field 'completion' must be a non-empty string"):
        userdata.load_sft(tmp_path / "b.parquet")
    (tmp_path / "folder").mkdir()
    with pytest.raises(data.DataError, match="is a folder, not a data file"):
        userdata.load_sft(tmp_path / "folder")


def test_a_hub_id_loads_online_and_is_refused_offline(monkeypatch):
    import datasets

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(data.DataError, match="the Hub is off"):
        userdata.load_sft("someone/chats")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    asked = []
    monkeypatch.setattr(datasets, "load_dataset", lambda repo, split: asked.append((repo, split))
                        or datasets.Dataset.from_list([{"prompt": "Hi?", "completion": "Hello."}]))
    assert userdata.load_sft("someone/chats") == [{"task": "custom", "messages": [USER_ROW, BOT_ROW]}]
    assert asked == [("someone/chats", "train")]


def test_a_pair_that_teaches_nothing_is_refused_by_line(tmp_path):
    path = _prefs(tmp_path, [{"prompt": "Hi?", "chosen": "a", "rejected": "b"},
                             {"prompt": "Hi?", "chosen": "Hello.", "rejected": "Hello."}])
    with pytest.raises(data.DataError, match=r"prefs.jsonl:2: 'chosen' and 'rejected' are the same reply"):
        userdata.load_preferences(path)


def _jsonl_file(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_every_family_draws_answers_of_its_shape_and_a_new_family_is_one_entry(monkeypatch):
    rows = data.load_split("sft", "train") + data.load_split("sft", "test")
    for name, family in tasks.core().items():
        answers = [r["messages"][-1]["content"] for r in rows if r["task"] == name]
        assert answers and all(family.well_formed(a) for a in answers), name
        assert len(family.templates) > tasks.TRAIN_PHRASINGS and len(family.distractors) == 8
    context = tasks.Context([(3, 4)], [("Eldoria", "Varn"), ("Mossia", "Kell")], ("lemon",))
    assert tasks.FAMILIES["add"].draw(__import__("random").Random(0), context)[:2] == ({"a": 3, "b": 4}, "7")
    double = tasks.Family("double", tuple(f"Q{k}: twice {{a}}?" for k in range(7)), tasks.FAMILIES["add"].distractors,
                          r"\d+", lambda rng, c: ({"a": rng.choice(c.pairs)[0]}, "0", "1"),
                          lambda c: ["0", "1"])
    monkeypatch.setitem(tasks.FAMILIES, "double", double)
    built = data.build_tasks()
    assert {t.task for t in built["train"]} == {"add", "capital", "letter", "double"}
    assert all(t.prompt.startswith("Q6:") for t in built["test"] if t.task == "double"), "the held-out phrasing"
    assert {t.task for t in data.build_rl()["test"]} >= {"double"}


def test_retrieval_set_states_new_facts_and_holds_out_countries_and_phrasing():
    atlas = data.load_atlas()
    documents = atlas["documents"]
    assert [d["id"] for d in documents] == list(range(len(documents))) == list(range(4 * 300))
    everything_else = " ".join(path.read_text() for path in data.DATA_DIR.rglob("*.*")
                               if path.parent.name != "retrieval" and path.suffix != ".md")  # the data card quotes one
    countries = {split: {documents[q["doc"]]["country"] for q in atlas[split]} for split in ("train", "test")}
    assert len(countries["train"]) == 200 and len(countries["test"]) == 100
    assert not countries["train"] & countries["test"]
    for name in countries["train"] | countries["test"]:
        assert name not in everything_else, f"{name} is named outside data/retrieval: its facts would not be new"
    for split in ("train", "test"):
        for q in atlas[split]:
            doc = documents[q["doc"]]
            fact = tasks.FACTS[q["fact"]]
            assert doc["fact"] == q["fact"] and doc["text"] == fact.statement.format(c=doc["country"], d=q["answer"])
            held_out = fact.questions[-1].format(c=doc["country"])
            assert (q["query"] == held_out) == (split == "test"), q


def test_reasoning_splits_hold_out_tuples_and_phrasing_and_their_traces_check():
    splits = {split: data.load_jsonl(data.DATA_DIR / "reasoning" / f"{split}.jsonl") for split in ("train", "test")}
    family = tasks.FAMILIES["chain"]
    terms = {split: {tuple(int(d) for d in re.findall(r"\d+", r["prompt"][0]["content"])) for r in rows}
             for split, rows in splits.items()}
    assert not terms["train"] & terms["test"] and len(terms["test"]) == 200
    for split, rows in splits.items():
        assert len(rows) == data.REASONING_ROWS[split]
        assert sorted({len(t) for t in terms[split]}) == [3, 4]
        for row in rows:
            question = row["prompt"][0]["content"]
            assert (question.startswith("Work out")) == (split == "test"), question
            assert tasks.chain_trace_valid(question, row["trace"]) and tasks.final_answer(row["trace"]) == row["answer"]
            assert family.well_formed(row["answer"]) and int(row["answer"]) <= 9
    question = "Add 4, 3 and 1."
    assert tasks.chain_trace_valid(question, "4 + 3 + 1. 4 + 3 = 7. 7 + 1 = 8. Answer: 8")
    assert not tasks.chain_trace_valid(question, "4 + 3 + 1. 4 + 3 = 7. 7 + 1 = 9. Answer: 9")  # a false step
    assert not tasks.chain_trace_valid(question, "4 + 3 + 1. 4 + 3 = 7. Answer: 8")  # a step left out
    assert not tasks.chain_trace_valid(question, "3 + 4 + 1. 3 + 4 = 7. 7 + 1 = 8. Answer: 8")  # not the question's order
    assert not tasks.chain_trace_valid(question, "4 + 3 + 1. 4 + 3 = 7. 7 + 3 = 10. Answer: 10")  # a digit miscopied
    # the rewrite is scratch work: the steps are checked against the question, with or without it
    assert tasks.chain_trace_valid(question, "4 + 3 = 7. 7 + 1 = 8. Answer: 8")
    assert tasks.chain_trace_valid(question, "4 + 3 + 3. 4 + 3 = 7. 7 + 1 = 8. Answer: 8")
    assert tasks.final_answer("8") == "8" and tasks.final_answer("no") is None
    assert "chain" not in data.TASK_NAMES, "a family outside the core splits changes none of their files"


def test_domain_corpus_states_every_fact_and_its_questions_hold_out_herbs():
    """data/domain (the domain-adaptation capstone): every herb's four facts are in the training corpus; the test
    questions ask only about herbs no training question names; the field's names are new to the course."""
    herbs = data.load_jsonl(DATA_DIR / "domain" / "herbs.jsonl", "herbs")
    corpus = "\n".join(data.load_corpus("train", domain=True))
    assert len(data.load_corpus("train", domain=True)) >= 3000, "several thousand documents"
    for herb in herbs:
        for relation, (statements, _) in data.DOMAIN_RELATIONS.items():
            assert any(s.format(h=herb["herb"], v=herb[relation]) in corpus for s in statements), (herb, relation)
    train, test = data.load_split("domain", "train"), data.load_split("domain", "test")
    split_of = {h["herb"]: h["split"] for h in herbs}
    named = lambda row: next(h for h in split_of if h in row["messages"][0]["content"])  # noqa: E731
    assert {split_of[named(r)] for r in train} == {"train"} and {split_of[named(r)] for r in test} == {"test"}
    facts = {h["herb"]: h for h in herbs}
    assert all(r["messages"][-1]["content"] == facts[named(r)][r["task"]] for r in train + test)
    assert len(test) == 4 * sum(s == "test" for s in split_of.values())
    course_words = {w for kind in ("sft", "preference") for r in data.load_split(kind, "train")
                    for w in re.findall(r"[A-Za-z]+", json.dumps(r))}
    course_words |= set(re.findall(r"[A-Za-z]+", " ".join(data.load_corpus("train"))))
    assert not set(split_of) & course_words, "herb names are new words (a country may start with the same syllables)"
