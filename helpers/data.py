"""The course's own datasets: a deterministic generator and a strict loader of the shipped files.

A learner's own files (any common SFT or preference format, JSONL, JSON, Parquet, CSV, a saved ``datasets``
folder or a Hub id) go through ``helpers.userdata``.

Build the shipped files with ``python -m helpers.data build`` (``--check`` compares instead of writing).
Every text here is generated from the word lists below; nothing is copied from elsewhere.

Introduced in 00_welcome.ipynb (loading) and 01_tokenizer_and_pretraining.ipynb (the corpus).
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from helpers.paths import DATA_DIR
from helpers.tasks import FACTS, FAMILIES, Context, chains, core, phrasings
from helpers.userdata import DataError, check_messages, json_lines  # noqa: F401 - DataError is part of this API

SEED = 1234

# ---------------------------------------------------------------------------------------------
# Word lists for the corpus and the tasks.
# ---------------------------------------------------------------------------------------------
TASK_WORDS = (
    "apple river stone cloud tiger lamp garden bread window candle forest violin mirror basket "
    "pepper rocket castle button planet ladder pillow rabbit engine carpet wallet pencil island "
    "jacket kettle meadow orange parrot saddle tunnel wagon zebra anchor bridge cactus dragon "
    "feather guitar helmet iceberg jungle kitten lemon magnet noodle owl pebble quilt radio "
    "shadow teapot umbrella valley walrus yogurt"
).split()

LETTER_WORDS = TASK_WORDS[:24]  # the words of the first-letter task
NAMES = "Ada Bo Cleo Dan Eli Fay Gus Hana Ivo Juno Kai Lena Milo Nora Otto Pia Quin Rosa Sami Tova".split()
ADJECTIVES = "small big red blue green old new happy quiet bright soft cold warm tall round".split()
PLACES = "market school harbor library kitchen station hill farm bakery museum".split()
VERBS = "found carried painted washed hid lost fixed sold bought cleaned".split()

SYLLABLES = "ka lo mi ra ve no su ti ba re do fa lu ze po ri na go".split()
NUM_COUNTRIES = 12


def _invented(rng: random.Random, syllables: int, ending: str = "") -> str:
    """An invented name: ``syllables`` random syllables, capitalized, then ``ending`` (countries end in -ia)."""
    return "".join(rng.choice(SYLLABLES) for _ in range(syllables)).capitalize() + ending


def _new_country(rng: random.Random, taken: set[str]) -> str:
    """A country name (three syllables + -ia) not in ``taken``, drawn until one is new; added to ``taken``."""
    name = _invented(rng, 3, "ia")
    while name in taken:
        name = _invented(rng, 3, "ia")
    taken.add(name)
    return name


def _countries(rng: random.Random) -> list[tuple[str, str]]:
    """Invented countries and capitals (two and three syllables), unique and stable for SEED."""
    seen: set[str] = set()
    pairs = []
    while len(pairs) < NUM_COUNTRIES:
        country, capital = _invented(rng, 3, "ia"), _invented(rng, 2)
        if country in seen or capital in seen:
            continue
        seen.update((country, capital))
        pairs.append((country, capital))
    return pairs


IDK = "I don't know."  # the honest reply to a question about a country the corpus never names
UNKNOWN_COUNTRIES = {"train": 60, "validation": 10, "test": 20}  # invented names, none in the corpus, disjoint
UNKNOWN_ROWS = {"train": 600, "validation": 30, "test": 60}  # preference rows of the ``unknown`` family


def _unknown_countries(known: list[tuple[str, str]], rng: random.Random) -> dict[str, list[str]]:
    """Country names built like the known ones but never named in the corpus, split train / validation / test."""
    taken = {name for pair in known for name in pair}
    names = [_new_country(rng, taken) for _ in range(sum(UNKNOWN_COUNTRIES.values()))]
    out, start = {}, 0
    for split, n in UNKNOWN_COUNTRIES.items():
        out[split], start = names[start : start + n], start + n
    return out


def _known_countries(seed: int) -> list[tuple[str, str]]:
    """The 12 (country, capital) pairs the corpus states; the corpus, task and preference builders share them."""
    return _countries(random.Random(seed + 1))


@dataclass(frozen=True)
class Task:
    """One checkable task: a user prompt and the exact reference answer."""

    task: str
    prompt: str
    answer: str
    wrong: str  # a near-miss wrong answer, the rejected reply of half the preference pairs (see _rejected)


# The task families (phrasings, how an example is drawn, distractors, answer shapes) live in helpers.tasks; these
# names are theirs, kept here for the generator below and its readers.
TEMPLATES = {name: family.templates for name, family in core().items()}
TASK_NAMES = tuple(core())


def _pair_split(rng: random.Random) -> dict[str, list[tuple[int, int]]]:
    """The 100 digit pairs (a, b), shuffled: 20 no split trains on (``unseen_sums``), 10 for validation, 70 for
    training; the test split asks training pairs in the held-out phrasing."""
    pairs = [(a, b) for a in range(10) for b in range(10)]
    rng.shuffle(pairs)
    return {"unseen": pairs[:20], "validation": pairs[20:30], "train": pairs[30:], "test": pairs[30:]}


def build_tasks(seed: int = SEED) -> dict[str, list[Task]]:
    """Make the train / validation / test task splits (see TEMPLATES for what the test split holds back)."""
    rng = random.Random(seed)
    countries = _known_countries(seed)
    pair_split = _pair_split(rng)
    sizes = {"train": 3000, "validation": 150, "test": 240}
    families = list(core().values())
    splits: dict[str, list[Task]] = {}
    for split, size in sizes.items():
        context, rows = Context(pair_split[split], countries, LETTER_WORDS), []
        for i in range(size):
            family = families[i % len(families)]  # the core families in turn
            forms = phrasings(family.templates, split)
            template = forms[0] if split == "test" else rng.choice(forms)
            fields, answer, wrong = family.draw(rng, context)
            rows.append(Task(family.name, template.format(**fields), answer, wrong))
        splits[split] = rows
    return splits


def unseen_sums(seed: int = SEED) -> list[Task]:
    """One test-phrasing question for each of the 20 digit pairs no split trains on (``sft/unseen.jsonl``).

    Not part of the test split: whether a small model adds pairs it never saw answered is arithmetic, not what SFT
    teaches, and which of them come out right is a draw of the run. Lesson 03 shows it. Introduced in 03_sft.ipynb.
    """
    form = phrasings(TEMPLATES["add"], "test")[0]
    return [Task("add", form.format(a=a, b=b), str(a + b), str(a + b + 1))
            for a, b in _pair_split(random.Random(seed))["unseen"]]


def build_unknown(seed: int = SEED) -> dict[str, list[Task]]:
    """The ``unknown`` family, only in the preference data: capitals of countries the corpus never names.

    The answer is ``IDK``; ``wrong`` is an invented capital (a known country's), the reply a model that
    hallucinates gives. The SFT data has no such question, so the SFT model has never declined: what DPO
    and the reward model learn here is new behaviour. Test names and the test phrasing are held out.
    Introduced in 07_reward_model.ipynb.
    """
    rng = random.Random(seed + 3)
    known = _known_countries(seed)
    names = _unknown_countries(known, rng)
    splits = {}
    for split, size in UNKNOWN_ROWS.items():
        templates = phrasings(TEMPLATES["capital"], split)
        splits[split] = [Task("unknown", rng.choice(templates).format(c=rng.choice(names[split])), IDK,
                              rng.choice(known)[1]) for _ in range(size)]
    return splits


ATLAS_COUNTRIES = {"train": 200, "test": 100}  # invented countries of the retrieval set, disjoint


def build_atlas(seed: int = SEED) -> dict[str, list[dict]]:
    """The retrieval dataset (``retrieval/``): one short document per (country, fact) stating a count, e.g.
    *Risureia has 6 rivers.*, about countries no other file names, so no causal model of the course has seen one of
    these facts; and one question per document. Training questions draw from six phrasings, test questions (about
    the 100 test countries, whose documents only they ask) use the held-out seventh. Every question's documents are
    searched among all 1,200 (four per country: the right country is not enough, the fact must match too).
    Introduced in 02_embeddings_retrieval_rag.ipynb.
    """
    rng = random.Random(seed + 7)
    known = _known_countries(seed)
    taken = {name for pair in known for name in pair}
    taken |= {name for names in _unknown_countries(known, random.Random(seed + 3)).values() for name in names}
    out: dict[str, list[dict]] = {"documents": [], "train": [], "test": []}
    for split, n in ATLAS_COUNTRIES.items():
        for _ in range(n):
            country = _new_country(rng, taken)
            for fact in FACTS.values():
                count, doc = rng.randint(1, 9), len(out["documents"])
                out["documents"].append({"id": doc, "country": country, "fact": fact.name,
                                         "text": fact.statement.format(c=country, d=count)})
                question = rng.choice(phrasings(fact.questions, split)).format(c=country)
                out[split].append({"query": question, "doc": doc, "fact": fact.name, "answer": str(count)})
    return out


# --- the domain-adaptation capstone's field: an invented herbal lore --------------------------------------
DOMAIN_HERBS = {"train": 24, "test": 12}  # herbs whose questions train the Q&A model / only the test asks
DOMAIN_DOCUMENTS = {"train": 4000, "validation": 300}
# Herb names are two of these syllables: short, new, a few tokens. Every fact's value is one digit: one token, with a
# space before it (in a passage) or not (at the start of a reply), nine pairs a reader learns to map. Values of
# several tokens, other ones after a space (" white" is not "white"), were measured far harder for a 0.9M-parameter
# model to learn to copy.
HERB_SYLLABLES = "ka ra ve no re lu ze po".split()
NOT_HERBS = {"Kara", "Rave", "Rare", "Vera", "Reno", "Lure", "Pore", "Zeno", "Luka"}  # words and names already
# relation: (statements of the fact in the corpus, questions about it); {h} the herb, {v} the value (a digit).
# The herb never opens a sentence, so it is the same tokens in the corpus as in a question.
DOMAIN_RELATIONS = {
    "drops": (["The dose of {h} is {v} drops.", "A healer gives {v} drops of {h}, never more.",
               "Take {v} drops of {h} in warm water."],
              ["How many drops of {h} make a dose?", "What is the dose of {h} in drops?",
               "How many drops of {h} does a healer give?"]),
    "petals": (["The flowers of {h} have {v} petals.", "Each flower of {h} opens {v} petals.",
                "You know {h} by its {v} petals."],
               ["How many petals do the flowers of {h} have?", "How many petals does a flower of {h} open?",
                "What is the petal count of {h}?"]),
    "days": (["The leaves of {h} are dried for {v} days.", "Healers dry {h} for {v} days before use.",
              "After {v} days of drying, {h} is ready."],
             ["How many days is {h} dried?", "For how many days do healers dry {h}?",
              "How long is {h} dried, in days?"]),
    "cups": (["Steep {h} in {v} cups of water.", "A tea of {h} takes {v} cups of water.",
              "Healers boil {h} in {v} cups of water."],
             ["How many cups of water does {h} steep in?", "How much water, in cups, does a tea of {h} take?",
              "In how many cups of water do healers boil {h}?"]),
}
DOMAIN_LORE = [  # sentences of the field that state no herb's fact: its vocabulary and its rules
    "Every tincture is kept in dark glass and shaken before use.",
    "A healer of the guild writes each dose in the herb book.",
    "Herbs are dried in the shade, never in the sun.",
    "A decoction is boiled; a tincture is steeped in spirit.",
    "The guild teaches that two remedies are never given on the same day.",
    "Apprentices learn the herbs by their petals before they learn the doses.",
]


def build_domain(seed: int = SEED) -> dict[str, object]:
    """The domain-adaptation capstone's field (``domain/``): invented herbs, each with four facts, all numbers (its
    dose in drops, its flowers' petals, the days it is dried, the cups of water it steeps in), a corpus of documents
    about them in the field's own phrasing and rules, and questions about every fact. The corpus states every
    herb's facts, the training questions ask only about the ``train`` herbs, the test questions only about the
    ``test`` herbs: a model can answer those only from what it read in the corpus (or retrieves from it).
    Introduced in 20_capstone_domain_adaptation.ipynb."""
    rng = random.Random(seed + 11)
    taken = {name for pair in _known_countries(seed) for name in pair} | set(NAMES) | NOT_HERBS
    names = [a.capitalize() + b for a in HERB_SYLLABLES for b in HERB_SYLLABLES
             if a != b and a.capitalize() + b not in taken]
    herbs = [{"herb": name, "split": split, **{relation: str(rng.randint(1, 9)) for relation in DOMAIN_RELATIONS}}
             for split, name in zip([s for s, n in DOMAIN_HERBS.items() for _ in range(n)],
                                    rng.sample(names, sum(DOMAIN_HERBS.values())))]

    def document() -> str:
        sentences = []
        for herb in rng.sample(herbs, rng.randint(1, 2)):
            for relation in rng.sample(list(DOMAIN_RELATIONS), rng.randint(2, 4)):
                statement = rng.choice(DOMAIN_RELATIONS[relation][0])
                sentences.append(statement.format(h=herb["herb"], v=herb[relation]))
        if rng.random() < 0.5:
            sentences.insert(rng.randint(0, len(sentences)), rng.choice(DOMAIN_LORE))
        return " ".join(sentences)

    corpus = {split: "\n".join(document() for _ in range(n)) + "\n" for split, n in DOMAIN_DOCUMENTS.items()}
    qa: dict[str, list[dict]] = {"train": [], "test": []}
    for herb in herbs:
        for relation, (_, questions) in DOMAIN_RELATIONS.items():
            asked = questions if herb["split"] == "train" else [rng.choice(questions)]
            for question in asked:
                qa[herb["split"]].append({"task": relation, "messages": [
                    {"role": "user", "content": question.format(h=herb["herb"])},
                    {"role": "assistant", "content": herb[relation]}]})
    rng.shuffle(qa["train"])
    return {"herbs": herbs, "corpus": corpus, "qa": qa}


def domain_sentences(exclude_split: str | None = None) -> list[str]:
    """The domain's training corpus cut into sentences (chunks short enough for a small model's context), each kept
    once: what retrieval searches. ``exclude_split``: leave out the sentences naming a herb of that split.
    Introduced in 20_capstone_domain_adaptation.ipynb."""
    sentences = dict.fromkeys(s for doc in load_corpus("train", domain=True) for s in re.split(r"(?<=\.) ", doc))
    if exclude_split:
        names = [h["herb"] for h in load_jsonl(DATA_DIR / "domain" / "herbs.jsonl", "herbs") if h["split"] == exclude_split]
        sentences = {s: None for s in sentences if not any(re.search(rf"\b{n}\b", s) for n in names)}
    return list(sentences)


def domain_fact(sentence: str) -> tuple[str, str, str] | None:
    """(herb, relation, value) a corpus sentence states, read off its phrasing; None for one of the field's rules."""
    for relation, (statements, _) in DOMAIN_RELATIONS.items():
        for statement in statements:
            pattern = re.escape(statement).replace(r"\{h\}", r"(?P<h>\w+)").replace(r"\{v\}", r"(?P<v>\d)")
            found = re.fullmatch(pattern, sentence)
            if found:
                return found["h"], relation, found["v"]
    return None


REASONING_ROWS = {"train": 2000, "test": 200}  # half sums of three digits, half of four


def build_reasoning(seed: int = SEED) -> dict[str, list]:
    """The ``reasoning`` splits of the multi-step ``chain`` family (``core=False``): each row a question, its answer
    and its worked steps (``Family.trace``). The digit tuples are split once: no test tuple is asked in training, and
    test questions use the held-out phrasing. Lengths alternate, so three and four digits are half of each split.
    Introduced in 11_reasoning.ipynb."""
    rng = random.Random(seed + 9)
    family = FAMILIES["chain"]
    pool = chains()
    rng.shuffle(pool)
    held = REASONING_ROWS["test"] // 2
    by_length = {n: [t for t in pool if len(t) == n] for n in (3, 4)}
    train = {n: Context([], [], (), tuple(ts[held:])) for n, ts in by_length.items()}
    out = {}
    for split, size in REASONING_ROWS.items():
        rows = []
        for i in range(size):
            n = (3, 4)[i % 2]
            # every test tuple once, in turn; a training row draws among all the training tuples of its length
            context = train[n] if split == "train" else Context([], [], (), (by_length[n][i // 2],))
            fields, answer, _ = family.draw(rng, context)
            form = rng.choice(phrasings(family.templates, split))
            rows.append({"task": family.name, "prompt": [{"role": "user", "content": form.format(**fields)}],
                         "answer": answer, "trace": family.trace(fields)})
        out[split] = rows
    return out


def build_rl(seed: int = SEED) -> dict[str, list[Task]]:
    """The ``rl`` split: the task questions with a distracting sentence before or after them.

    The SFT data only has bare questions, so the SFT model often answers about the distractor's item, or with an
    answer of another kind (a number to a letter question): the weakness lesson 10's reward functions train away.
    The distractor names a different item of the same kind (another capital, a word with another first letter, a
    number that is not the sum); test rows use the test questions (held-out phrasing) and held-out distractor
    phrasings. Introduced in 10_grpo.ipynb.
    """
    rng = random.Random(seed + 5)
    countries = _known_countries(seed)
    splits = {}
    for split, tasks in build_tasks(seed).items():
        forms = {kind: phrasings(family.distractors, split) for kind, family in core().items()}
        rows = []
        for t in tasks:
            country, capital = rng.choice([p for p in countries if p[1] != t.answer])
            word = rng.choice([w for w in LETTER_WORDS if w[0] != t.answer])
            number = rng.choice([d for d in range(10) if str(d) != t.answer])
            sentence = rng.choice(forms[t.task]).format(n=rng.choice(NAMES), d=number, c=country, k=capital, w=word,
                                                         adj=rng.choice(ADJECTIVES))
            prompt = f"{t.prompt} {sentence}" if rng.random() < 0.5 else f"{sentence} {t.prompt}"
            rows.append(Task(t.task, prompt, t.answer, t.wrong))
        splits[split] = rows
    return splits


def distractor_answer(row: dict) -> str:
    """The answer the distracting sentence of an ``rl`` row suggests: the first letter of its word, its capital, its
    number. A model that answers about the last-named item says this. Introduced in 10_grpo.ipynb."""
    text = row["prompt"][-1]["content"]
    if row["task"] == "add":
        questions = [re.sub(r"\\\{\w\\\}", r"\\d+", re.escape(f)) for f in TEMPLATES["add"]]  # "{a}" -> r"\d+"
        sentence = next(s for s in re.split(r"(?<=[.?])\s+", text) if not any(re.fullmatch(q, s) for q in questions))
        return re.search(r"\d+", sentence).group()
    words = re.findall(r"[A-Za-z]+", text)
    if row["task"] == "letter":
        return next(w for w in words if w in LETTER_WORDS and w[0] != row["answer"])[0]
    return next(w for w in words if w in _known_capitals() and w != row["answer"])


@functools.cache
def _known_capitals() -> frozenset[str]:
    return frozenset(capital for _, capital in _known_countries(SEED))


def build_corpus(seed: int = SEED) -> dict[str, str]:
    """Generate the pretraining corpus: short stories, list games, sums and geography, one document per line."""
    rng = random.Random(seed)
    countries = _known_countries(seed)

    def story() -> str:
        name, friend = rng.sample(NAMES, 2)
        noun, other = rng.sample(TASK_WORDS, 2)
        adj = rng.choice(ADJECTIVES)
        place = rng.choice(PLACES)
        verb = rng.choice(VERBS)
        sentences = [
            f"{name} {verb} a {adj} {noun} at the {place}.",
            f"The {noun} was {rng.choice(ADJECTIVES)}.",
            f"{friend} wanted the {noun} too, so {name} gave {friend} a {other}.",
            f"Then {name} and {friend} walked to the {rng.choice(PLACES)}.",
            f"{friend} said the {other} was {rng.choice(ADJECTIVES)} and {rng.choice(ADJECTIVES)}.",
        ]
        return " ".join(sentences[: rng.randint(3, 5)])

    def list_game() -> str:
        # Long lists said twice, backwards or with their last word: dense signal for in-context copying,
        # which a small model must learn before it can answer the word tasks on words it never saw there.
        words = rng.sample(TASK_WORDS, rng.randint(3, 8))
        text = " ".join(words)
        form = rng.randint(0, 3)
        if form <= 1:
            return f"{rng.choice(NAMES)} said: {text}. Then again: {text}."
        if form == 2:
            return f"The words {text} backwards are {' '.join(reversed(words))}."
        return f"In the list {text} the last word is {words[-1]}."

    def sums() -> str:
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        form = rng.randint(0, 2)
        if form == 0:
            return f"{a} + {b} = {a + b}."
        if form == 1:
            return f"{rng.choice(NAMES)} had {a} coins and found {b} more, so {a} + {b} makes {a + b}."
        return f"We know that {a} plus {b} is {a + b}, and {a} + {b} = {a + b}."

    def geography() -> str:
        country, capital = rng.choice(countries)
        form = rng.randint(0, 2)
        if form == 0:
            return f"The capital of {country} is {capital}."
        if form == 1:
            return f"{rng.choice(NAMES)} traveled to {capital}, the capital of {country}."
        return f"{country} is a {rng.choice(ADJECTIVES)} country. Its capital is {capital}. The capital of {country} is {capital}."

    makers = [story, list_game, list_game, list_game, sums, geography]

    def document() -> str:
        return " ".join(rng.choice(makers)() for _ in range(rng.randint(1, 3)))

    return {
        "train": "\n".join(document() for _ in range(6000)) + "\n",
        "validation": "\n".join(document() for _ in range(400)) + "\n",
    }


def build_chats(seed: int = SEED, n: int = 1500) -> list[list[dict]]:
    """Generic ChatML dialogues mixed into the tiny models' pretraining, none of them one of the three tasks.

    Real base models (Qwen2.5, SmolLM2) saw chat-formatted text in pretraining, so their ``<|im_start|>`` and
    ``<|im_end|>`` embeddings are trained. Without these dialogues the tiny base model would never have seen
    them, and a LoRA adapter, which freezes the (tied) embeddings, could not learn to end a reply. One
    dialogue in six asks what its story does not say and is answered ``IDK``: a real base model has read
    people declining, so preference tuning can raise that reply for unknown countries (lesson 08); a policy
    that could never say it cannot be taught to prefer it by DPO alone. Introduced in 04_lora_qlora.ipynb.
    """
    rng = random.Random(seed + 2)

    def about_story() -> tuple[str, str]:
        name, friend = rng.sample(NAMES, 2)
        noun = rng.choice(TASK_WORDS)
        verb, place = rng.choice(VERBS), rng.choice(PLACES)
        story = f"{name} {verb} a {noun} at the {place}. {friend} walked to the {rng.choice(PLACES)}."
        if rng.random() < 0.5:
            return f"{story} Who {verb} the {noun}?", f"{name} {verb} the {noun}."
        return f"{story} Where was the {noun}?", f"The {noun} was at the {place}."

    def repeat() -> tuple[str, str]:
        words = rng.sample(TASK_WORDS, rng.randint(2, 5))
        return f"Say these words again: {' '.join(words)}.", " ".join(words)

    def greet() -> tuple[str, str]:
        name = rng.choice(NAMES)
        return f"Hello, I am {name}.", f"Hello {name}! Tell me a word and I will say it back."

    def not_told() -> tuple[str, str]:  # a question the story does not answer: the honest reply declines
        name, friend = rng.sample(NAMES, 2)
        noun, other = rng.sample(TASK_WORDS, 2)
        verb = rng.choice(VERBS)
        story = f"{name} {verb} a {noun} at the {rng.choice(PLACES)}. {friend} walked to the {rng.choice(PLACES)}."
        return f"{story} Who {verb} the {other}?", IDK

    makers = [about_story, about_story, repeat, repeat, greet, not_told]
    chats = []
    for _ in range(n):
        prompt, reply = rng.choice(makers)()
        chats.append([{"role": "user", "content": prompt}, {"role": "assistant", "content": reply}])
    return chats


def _rejected(task: Task, rng: random.Random, context: Context) -> str:
    """The rejected reply of a preference pair: half the time the task's near miss (``wrong``), otherwise any
    wrong answer of its family. A reward model trained only on near misses learns their pattern (the next
    letter, a sum off by one) and cannot rank the other mistakes a sampling policy makes (lesson 07)."""
    if rng.random() < 0.5:
        return task.wrong
    family = FAMILIES.get(task.task, FAMILIES["capital"])  # unknown: a known country's capital, as a hallucination
    options = family.wrong_answers(context)
    return rng.choice([o for o in options if o != task.answer])


def _messages(task: Task) -> list[dict]:
    return [{"role": "user", "content": task.prompt}, {"role": "assistant", "content": task.answer}]


SCHEMAS: dict[str, dict[str, type]] = {
    "sft": {"task": str, "messages": list},
    "preference": {"task": str, "prompt": list, "chosen": list, "rejected": list},
    "rl": {"task": str, "prompt": list, "answer": str},
    "curation": {"id": str, "text": str},  # documents to curate (05_data_curation)
    "documents": {"id": int, "country": str, "fact": str, "text": str},  # the retrieval collection (17)
    "retrieval": {"query": str, "doc": int, "fact": str, "answer": str},  # questions and the document answering them
    "reasoning": {"task": str, "prompt": list, "answer": str, "trace": str},  # multi-step questions, worked steps
    "domain": {"task": str, "messages": list},  # questions about the invented herbs (20), task = the fact asked
    "herbs": {"herb": str, "split": str, "drops": str, "petals": str, "days": str, "cups": str},  # their facts
}


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


# --- the dirty corpus of 05_data_curation: course documents plus planted problems with known ground truth -----
FOREIGN = (  # "a few lines in another language": hand-written, one sentence or two each
    "Le petit chat dort sur la chaise et nous mangeons du pain avec les enfants.",
    "Il fait beau aujourd'hui, alors nous allons au marché avec nos amis.",
    "Der kleine Hund spielt im Garten und die Kinder lachen über ihn.",
    "Wir fahren morgen mit dem Zug in die Stadt, weil das Wetter schön ist.",
    "El niño come una manzana roja en la cocina con su hermana.",
    "Mañana vamos a la playa porque hace mucho calor en la ciudad.",
    "La ragazza legge un libro nella biblioteca e il ragazzo dorme.",
    "Questa sera mangiamo la pasta con gli amici nella piccola casa.",
    "O menino leva o cão ao parque todos os dias depois da escola.",
    "De kat slaapt op de bank en de kinderen spelen buiten in de tuin.",
)
BOILERPLATE = ("Home | About | Contact", "Accept all cookies", "Subscribe to our newsletter!", "Read more...",
               "Page 2 of 7", "Click here", "Thanks!", "Share this post", "Log in", "Next »")
NEAR_EDITS = ("renamed", "reordered", "edited")
DIRTY_COUNTS = {"clean": 600, "exact": 50, "near": 90, "markup": 30, "mojibake": 30, "pii": 40, "contaminated": 30,
                "short": 25, "repetitive": 15, "symbols": 15, "foreign": 20}


def _sentences(text: str) -> list[str]:
    return re.findall(r"[^.]+\.", text)


def _near_duplicate(text: str, how: str, rng: random.Random) -> str:
    """A near-duplicate of a course document: a character renamed, sentences reordered, or a few words edited."""
    present = [n for n in NAMES if re.search(rf"\b{n}\b", text)]
    if how == "renamed" and present:
        old = rng.choice(present)
        return re.sub(rf"\b{old}\b", rng.choice([n for n in NAMES if n not in present]), text)
    parts = [s.strip() for s in _sentences(text)]
    if how == "reordered" and len(set(parts)) > 1:
        while " ".join(parts) == text:
            rng.shuffle(parts)
        return " ".join(parts)
    words = text.split()
    for _ in range(2):  # two small edits: drop a word, repeat one, or swap two neighbours
        i = rng.randrange(1, len(words) - 1)
        edit = rng.randrange(3)
        if edit == 0:
            del words[i]
        elif edit == 1:
            words.insert(i, words[i])
        else:
            words[i - 1], words[i] = words[i], words[i - 1]
    return " ".join(words)


def _mojibake(text: str) -> str:
    """UTF-8 text decoded as Windows-1252, as a misconfigured scraper saves it (its five undefined bytes kept as
    the control characters of the same code, as browsers do)."""
    def char(byte: int) -> str:
        try:
            return bytes([byte]).decode("cp1252")
        except UnicodeDecodeError:
            return chr(byte)

    return "".join(char(b) for b in text.encode("utf-8"))


def build_dirty(seed: int = SEED) -> tuple[list[dict], dict[str, dict]]:
    """The dirty corpus of 05_data_curation: (documents ``{"id", "text"}``, planted truth ``{id: {"kind", ...}}``).

    ``clean`` documents are distinct course documents of 25+ words. Planted problems: ``exact`` copies and ``near``
    duplicates (``of``: the clean document they copy; ``edit``: renamed / reordered / edited), documents wrapped
    in HTML ``markup`` or saved as ``mojibake`` (``intended``: the text a cleaner should recover), ``pii`` (fake
    emails and phone numbers, listed), ``contaminated`` (a test-split prompt and its answer inside; ``prompt``),
    and low-quality ``short``, ``repetitive``, ``symbols`` and ``foreign`` documents. Introduced in
    05_data_curation.ipynb.
    """
    rng = random.Random(seed + 404)
    pool = sorted({d for d in build_corpus(seed)["train"].splitlines() if len(d.split()) >= 25})
    rng.shuffle(pool)
    fresh = iter(pool[DIRTY_COUNTS["clean"]:])  # unique course documents that carry the planted edits
    docs: list[tuple[str, dict]] = [(d, {"kind": "clean"}) for d in pool[:DIRTY_COUNTS["clean"]]]
    clean_ids = list(range(len(docs)))
    for _ in range(DIRTY_COUNTS["exact"]):
        i = rng.choice(clean_ids)
        docs.append((docs[i][0], {"kind": "exact", "of": i}))
    for k in range(DIRTY_COUNTS["near"]):
        i, how = rng.choice(clean_ids), NEAR_EDITS[k % len(NEAR_EDITS)]
        near = _near_duplicate(docs[i][0], how, rng)
        docs.append((near, {"kind": "near", "of": i, "edit": how if near != docs[i][0] else "none"}))
    for _ in range(DIRTY_COUNTS["markup"]):
        text = next(fresh)
        html = (f'<html><body><div class="nav">{rng.choice(BOILERPLATE[:3])}</div>\n<article><p>{text}</p></article>'
                f'\n<footer>&copy; 2026 Example Stories &middot; {rng.choice(BOILERPLATE[1:4])}</footer></body></html>')
        docs.append((html, {"kind": "markup", "intended": text}))
    for _ in range(DIRTY_COUNTS["mojibake"]):
        text = f"{next(fresh)} “{rng.choice(ADJECTIVES).capitalize()}!” said {rng.choice(NAMES)} — at the café."
        docs.append((_mojibake(text), {"kind": "mojibake", "intended": text}))
    for _ in range(DIRTY_COUNTS["pii"]):
        name, other = (n.lower() for n in rng.sample(NAMES, 2))
        email = f"{name}.{other}{rng.randint(1, 99)}@example.com"
        phone = f"+1 555 {rng.randint(100, 999)} {rng.randint(1000, 9999)}"
        text = f"{next(fresh)} Write to {email} or call {phone} for the {rng.choice(TASK_WORDS)}."
        docs.append((text, {"kind": "pii", "emails": [email], "phones": [phone]}))
    for row in rng.sample(build_tasks(seed)["test"], DIRTY_COUNTS["contaminated"]):
        text = f"{next(fresh)} Quiz time! {row.prompt} Answer: {row.answer}."
        docs.append((text, {"kind": "contaminated", "prompt": row.prompt}))
    for _ in range(DIRTY_COUNTS["short"]):
        docs.append((rng.choice(BOILERPLATE), {"kind": "short"}))
    for _ in range(DIRTY_COUNTS["repetitive"]):
        sentence = rng.choice(_sentences(next(fresh))).strip()
        docs.append((" ".join([sentence] * rng.randint(30, 60)), {"kind": "repetitive"}))
    for _ in range(DIRTY_COUNTS["symbols"]):
        junk = "".join(rng.choice("#$%&*+=/\\|<>~^0123456789{}[]") for _ in range(rng.randint(60, 200)))
        docs.append((f"{junk} {rng.choice(TASK_WORDS)} {junk[::-1]}", {"kind": "symbols"}))
    for _ in range(DIRTY_COUNTS["foreign"]):
        docs.append((" ".join(rng.sample(FOREIGN, 2)), {"kind": "foreign"}))
    order = list(range(len(docs)))
    rng.shuffle(order)
    ids = {old: f"doc-{new:04d}" for new, old in enumerate(order)}
    rows = [{"id": ids[old], "text": docs[old][0]} for old in order]
    truth = {ids[old]: {**docs[old][1], **({"of": ids[docs[old][1]["of"]]} if "of" in docs[old][1] else {})}
             for old in order}
    return rows, dict(sorted(truth.items()))


def build_all(seed: int = SEED) -> dict[str, str]:
    """Every shipped file, as relative path → text."""
    files: dict[str, str] = {}
    for split, text in build_corpus(seed).items():
        files[f"corpus/{split}.txt"] = text
    files["corpus/chat.jsonl"] = _jsonl([{"task": "chat", "messages": m} for m in build_chats(seed)])
    dirty, planted = build_dirty(seed)
    files["curation/dirty.jsonl"] = _jsonl(dirty)
    files["curation/planted.json"] = json.dumps(planted, indent=1, ensure_ascii=False) + "\n"
    unknown = build_unknown(seed)
    reject_rng, context = random.Random(seed + 4), Context([], _known_countries(seed), LETTER_WORDS)
    rl = build_rl(seed)
    for split, tasks in build_tasks(seed).items():
        rows = {
            "sft": [{"task": t.task, "messages": _messages(t)} for t in tasks],
            "preference": [
                {
                    "task": t.task,
                    "prompt": [{"role": "user", "content": t.prompt}],
                    "chosen": [{"role": "assistant", "content": t.answer}],
                    "rejected": [{"role": "assistant", "content": _rejected(t, reject_rng, context)}],
                }
                for t in tasks + unknown[split]
            ],
            "rl": [{"task": t.task, "prompt": [{"role": "user", "content": t.prompt}], "answer": t.answer}
                   for t in rl[split]],
        }
        for kind, items in rows.items():
            files[f"{kind}/{split}.jsonl"] = _jsonl(items)
    files["sft/unseen.jsonl"] = _jsonl([{"task": t.task, "messages": _messages(t)} for t in unseen_sums(seed)])
    for name, rows in build_atlas(seed).items():
        files[f"retrieval/{name}.jsonl"] = _jsonl(rows)
    for split, rows in build_reasoning(seed).items():
        files[f"reasoning/{split}.jsonl"] = _jsonl(rows)
    domain = build_domain(seed)
    files["domain/herbs.jsonl"] = _jsonl(domain["herbs"])
    for split, text in domain["corpus"].items():
        files[f"domain/corpus_{split}.txt"] = text
    for split, rows in domain["qa"].items():
        files[f"domain/{split}.jsonl"] = _jsonl(rows)
    return files


def load_jsonl(path: str | Path, kind: str | None = None) -> list[dict]:
    """Read a JSONL file and validate each row against ``SCHEMAS[kind]`` (kind defaults to the folder name).

    Raises DataError naming the file, the line number and the missing, extra or mistyped field.
    Introduced in 00_welcome.ipynb.
    """
    path = Path(path)
    kind = kind or path.parent.name
    if kind not in SCHEMAS:
        raise DataError(f"{path}: unknown dataset kind {kind!r}; expected one of {sorted(SCHEMAS)}")
    schema = SCHEMAS[kind]
    rows = []
    for row, where in json_lines(path):
        missing = [f for f in schema if f not in row]
        extra = [f for f in row if f not in schema]
        if missing:
            raise DataError(f"{where}: missing field(s) {missing}")
        if extra:
            raise DataError(f"{where}: unexpected field(s) {extra}; a {kind} row has {list(schema)}")
        for field, typ in schema.items():
            if not isinstance(row[field], typ):
                raise DataError(f"{where}: field '{field}' must be {typ.__name__}, got {type(row[field]).__name__}")
            if typ is list:
                check_messages(row[field], where, field)
        rows.append(row)
    return rows


def load_split(kind: str, split: str, data_dir: Path = DATA_DIR) -> list[dict]:
    """Load a shipped split, e.g. ``load_split("sft", "test")``. Introduced in 00_welcome.ipynb."""
    return load_jsonl(Path(data_dir) / kind / f"{split}.jsonl", kind)


def load_atlas(data_dir: Path = DATA_DIR) -> dict[str, list[dict]]:
    """The retrieval dataset: ``{"documents", "train", "test"}`` (see ``build_atlas``). Introduced in
    02_embeddings_retrieval_rag.ipynb."""
    folder = Path(data_dir) / "retrieval"
    return {"documents": load_jsonl(folder / "documents.jsonl", "documents"),
            **{split: load_jsonl(folder / f"{split}.jsonl", "retrieval") for split in ATLAS_COUNTRIES}}


def load_corpus(split: str, data_dir: Path = DATA_DIR, domain: bool = False) -> list[str]:
    """The pretraining corpus as a list of documents (``domain``: the herbal field's corpus, ``domain/``).
    Introduced in 01_tokenizer_and_pretraining.ipynb; the domain corpus in 20_capstone_domain_adaptation.ipynb."""
    path = Path(data_dir) / "domain" / f"corpus_{split}.txt" if domain else Path(data_dir) / "corpus" / f"{split}.txt"
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def add_pairs(rows: list[dict]) -> set[tuple[int, int]]:
    """The (a, b) of every addition row of an ``sft`` split, read from the digits of its prompt.

    Introduced in 00_welcome.ipynb (measuring that the test split is held out).
    """
    return {tuple(int(ch) for ch in r["messages"][0]["content"] if ch.isdigit()) for r in rows if r["task"] == "add"}


def load_chats(data_dir: Path = DATA_DIR) -> list[list[dict]]:
    """The chat dialogues mixed into the tiny models' pretraining (see ``build_chats``).

    Introduced in 04_lora_qlora.ipynb.
    """
    return [row["messages"] for row in load_jsonl(Path(data_dir) / "corpus" / "chat.jsonl", "sft")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.data", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["build"])
    parser.add_argument("--out", type=Path, default=DATA_DIR, help="target folder (default: the shipped data/)")
    parser.add_argument("--check", action="store_true", help="compare with the files on disk instead of writing")
    args = parser.parse_args(argv)
    stale = []
    for rel, text in build_all().items():
        target = args.out / rel
        if args.check:
            if not target.exists() or target.read_text(encoding="utf-8") != text:
                stale.append(rel)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        print(f"wrote {target} ({len(text.encode()):,} bytes)")
    if stale:
        print("out of date (run `python -m helpers.data build`):", *stale, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
