"""The course's task families, each in one place: its question phrasings, how one example is drawn (the question's
fields, the answer, a near miss), the wrong answers of its kind, the distracting sentences of the ``rl`` split, and
what a well-formed answer looks like. The dataset generator (``helpers.data``) and the lessons read them from here,
so a new family (multi-step arithmetic, domain Q&A) is one entry of ``FAMILIES``.

Introduced in 03_sft.ipynb (the families the SFT data teaches); 10_grpo.ipynb uses their answer shapes.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable
from dataclasses import dataclass

# Training and validation rows use the first TRAIN_PHRASINGS phrasings of a family, the test split only the rest, so
# every test prompt is new text. Six, not two: with two, how well the SFT model carried its answers over to the
# unseen one was a draw (sums 0.66-0.95 over seeds x CPU kernel sets); with six it is not.
TRAIN_PHRASINGS = 6


def phrasings(forms: tuple[str, ...], split: str) -> tuple[str, ...]:
    """The phrasings a split may use: the first ``TRAIN_PHRASINGS`` in train and validation, the held-out rest in
    test."""
    return forms[TRAIN_PHRASINGS:] if split == "test" else forms[:TRAIN_PHRASINGS]


@dataclass(frozen=True)
class Context:
    """What the generator shares with every family's ``draw``: the digit pairs of this split, the (country,
    capital) pairs the corpus states, the words of the first-letter task, the digit chains of this split (the
    ``chain`` family's)."""

    pairs: list[tuple[int, int]]
    countries: list[tuple[str, str]]
    words: tuple[str, ...]
    chains: tuple[tuple[int, ...], ...] = ()


@dataclass(frozen=True)
class Family:
    """One task family. ``draw(rng, context) -> (fields, answer, wrong)`` fills a phrasing (``str.format``);
    ``wrong_answers(context)`` lists every wrong answer of its kind there is to choose from (the rejected replies of
    half the preference pairs); ``distractors`` are sentences naming another item of the kind (the ``rl`` split,
    first six for training, the last two held out); ``shape`` is a regex a well-formed answer matches; ``cloze``, where
    the corpus states the family's facts, the regex whose group 1 is the answer in its text."""

    name: str
    templates: tuple[str, ...]
    distractors: tuple[str, ...]
    shape: str
    draw: Callable[[random.Random, Context], tuple[dict, str, str]]
    wrong_answers: Callable[[Context], list[str]]
    cloze: str | None = None  # how the pretraining corpus states an answer (group 1): a base model's test, lesson 14
    # core: one of the families the sft / preference / rl splits rotate through, which every lesson's numbers rest
    # on; a family outside them (False) has files of its own, so adding one changes no other file
    core: bool = True
    trace: Callable[[dict], str] | None = None  # the worked steps of a drawn example (its fields), then its answer

    def well_formed(self, reply: str) -> bool:
        """True when ``reply`` (stripped) has this family's answer shape."""
        return re.fullmatch(self.shape, reply.strip()) is not None


def _draw_sum(rng: random.Random, context: Context) -> tuple[dict, str, str]:
    a, b = rng.choice(context.pairs)
    wrong = a + b + rng.choice([-1, 1]) if a + b > 0 else 1
    return {"a": a, "b": b}, str(a + b), str(wrong)


def _draw_capital(rng: random.Random, context: Context) -> tuple[dict, str, str]:
    country, capital = rng.choice(context.countries)
    other = rng.choice([c for _, c in context.countries if c != capital])
    return {"c": country}, capital, other


def _draw_letter(rng: random.Random, context: Context) -> tuple[dict, str, str]:
    word = rng.choice(context.words)
    return {"w": word}, word[0], chr((ord(word[0]) - 96) % 26 + 97)  # the next letter: a near miss


def _draw_chain(rng: random.Random, context: Context) -> tuple[dict, str, str]:
    terms = rng.choice(context.chains)
    total = sum(terms)
    fields = {"expr": " + ".join(map(str, terms)), "list": ", ".join(map(str, terms[:-1])) + f" and {terms[-1]}",
              "terms": terms}
    return fields, str(total), str(total + rng.choice([-1, 1]) if total > 0 else 1)


def _chain_trace(fields: dict) -> str:
    """``4 + 3 + 1. 4 + 3 = 7. 7 + 1 = 8. Answer: 8``: the question rewritten as one sum (its digits copied in order,
    whatever the phrasing), then one known single-digit sum per step (the corpus states every one). The rewrite
    puts the operands next to the steps that read them: without it the tiny trace student learned to copy the
    right operand only on some pretrained bases (held-out 0.47-0.995 over seeds x kernel sets at 200 steps)."""
    steps, total = [" + ".join(map(str, fields["terms"])) + "."], fields["terms"][0]
    for term in fields["terms"][1:]:
        steps.append(f"{total} + {term} = {total + term}.")
        total += term
    return " ".join(steps) + f" Answer: {total}"


STEP = re.compile(r"(\d+) \+ (\d+) = (\d+)\.")


def final_answer(reply: str) -> str | None:
    """The last number of a reply (``9`` of ``... Answer: 9`` and of ``9``): both students' answers are read alike."""
    numbers = re.findall(r"\d+", reply)
    return numbers[-1] if numbers else None


def chain_trace_valid(question: str, reply: str) -> bool:
    """True when ``reply`` adds the question's digits in their order, one true ``a + b = c.`` step each, each step
    starting from the last one's result, and ends with ``Answer:`` and the sum. What comes before the first step
    (the trace's rewrite of the question, ``4 + 3 + 1.``) is scratch work: the steps are checked against the
    question itself. Introduced in 11_reasoning.ipynb."""
    terms = [int(d) for d in re.findall(r"\d+", question)]
    steps = STEP.findall(reply)
    answer = re.search(r"Answer: (\d+)\s*$", reply.strip())
    if len(terms) < 2 or len(steps) != len(terms) - 1 or answer is None:
        return False
    total = terms[0]
    for (a, b, c), term in zip(steps, terms[1:]):
        if (int(a), int(b), int(c)) != (total, term, total + term):
            return False
        total += term
    return int(answer.group(1)) == total


def chains(lengths: tuple[int, ...] = (3, 4), most: int = 9) -> list[tuple[int, ...]]:
    """Every tuple of ``lengths`` digits whose sum is at most ``most``: each running sum stays a sum of two digits
    the pretraining corpus states, so every step of a trace is a known fact and only the composition is new."""
    return [t for n in lengths for t in itertools.product(range(10), repeat=n) if sum(t) <= most]


FAMILIES = {
    "add": Family(
        "add",
        ("What is {a} + {b}?", "Add {a} and {b}.", "What is {a} plus {b}?", "Sum {a} and {b}.",
         "How much is {a} + {b}?", "Tell me {a} + {b}.", "Compute {a} + {b}."),
        ("{n} has {d} apples.", "{n} found {d} coins.", "{n} ate {d} plums.", "{n} made {d} cakes.",
         "There are {d} cups.", "{n} saw {d} cats.", "{n} lost {d} coins.", "There were {d} birds."),
        r"\d+", _draw_sum, lambda context: [str(v) for v in range(19)], r"\d \+ \d = (\d+)\."),
    "capital": Family(
        "capital",
        ("What is the capital of {c}?", "Name the capital of {c}.", "Tell me the capital of {c}.",
         "Give the capital of {c}.", "What city is the capital of {c}?", "The capital of {c} is which city?",
         "Which city is the capital of {c}?"),
        ("The capital of {c} is {k}.", "{n} traveled to {k}.", "{n} flew to {k}.", "{n} lives in {k}.",
         "{k} is a big city.", "We met in {k}.", "{k} is the capital of {c}.", "{n} walked to {k}."),
        r"[A-Z][a-z]+", _draw_capital, lambda context: [c for _, c in context.countries],
        r"The capital of \w+ is (\w+)\."),
    "letter": Family(
        "letter",
        ("What is the first letter of {w}?", "Which letter does {w} start with?", "Tell me the first letter of {w}.",
         "Give the first letter of {w}.", "What letter does {w} begin with?", "The word {w} starts with which letter?",
         "Name the first letter of {w}."),
        ("{n} found the {w}.", "The {w} was {adj}.", "{n} saw a {w}.", "{n} wanted the {w}.", "The {w} is here.",
         "{n} gave me the {w}.", "{n} painted the {w}.", "My {w} is {adj}."),
        r"[a-z]", _draw_letter, lambda context: [chr(c) for c in range(ord("a"), ord("z") + 1)]),
    # several steps: sums of three or four digits (11_reasoning.ipynb); not in the core splits
    "chain": Family(
        "chain",
        ("What is {expr}?", "Add {list}.", "What is the sum of {list}?", "Compute {expr}.", "How much is {expr}?",
         "Tell me {expr}.", "Work out {expr}."),
        (), r"\d+", _draw_chain, lambda context: [str(v) for v in range(10)], core=False, trace=_chain_trace),
}


def core() -> dict[str, Family]:
    """The families of ``sft/``, ``preference/`` and ``rl/`` (``core``), in ``FAMILIES``' order."""
    return {name: family for name, family in FAMILIES.items() if family.core}


@dataclass(frozen=True)
class Fact:
    """A fact the retrieval dataset states about an invented country (``helpers.data.build_atlas``): the questions
    that ask it (the first ``TRAIN_PHRASINGS`` for training, the last held out for test, as a family's are) and the
    one sentence of its document, ``{c}`` the country, ``{d}`` the count. Counts, not names: the tiny reader learns
    to copy a digit from a passage in ~100 steps; copying an invented name spelled in pieces it does not learn in
    400 (measured). Introduced in 02_embeddings_retrieval_rag.ipynb."""

    name: str
    questions: tuple[str, ...]
    statement: str


def _count_fact(noun: str, verb: str, statement: str) -> Fact:
    """A count fact's seven questions: six forms every fact shares, and the held-out seventh with its own verb."""
    return Fact(noun, (f"How many {noun} does {{c}} have?", f"How many {noun} are in {{c}}?",
                       f"Count the {noun} of {{c}}.", f"Tell me how many {noun} {{c}} has.",
                       f"What number of {noun} does {{c}} have?", f"Give the number of {noun} in {{c}}.",
                       f"How many {noun} {verb} {{c}}?"), statement)


FACTS = {fact.name: fact for fact in (
    _count_fact("rivers", "flow through", "{c} has {d} rivers."),
    _count_fact("lakes", "lie in", "There are {d} lakes in {c}."),
    _count_fact("bridges", "stand in", "{c} built {d} bridges."),
    _count_fact("towers", "rise in", "In {c} stand {d} towers."),
)}
