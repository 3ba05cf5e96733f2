"""Pipeline stages built from the lessons' recipes, for ``helpers.pipeline``: each writes its artifact under its own
folder and reads the previous stage's from disk. The capstones chain them (issue 25); each is a lesson's technique,
not a copy of its code: SFT with a LoRA adapter is lesson 04's (``recipes.sft_args``), DPO lesson 08's
(``recipes.dpo_args``), merging lesson 04's and 08's ``merge_and_unload``, the GGUF export lesson 14's converter, the
score lesson 03's exact match.

    pipe = Pipeline(run_folder)
    pipe.run("sft", stages.sft, base_model="tiny:base", steps=300, lr=3e-3)
    pipe.run("merge", stages.merge, needs=("sft",))
    pipe.run("dpo", stages.dpo, needs=("merge",), steps=100, lr=2e-3)
    pipe.run("merge_dpo", stages.merge, needs=("dpo",), stage="dpo")
    pipe.run("evaluate", stages.evaluate, needs=("merge", "merge_dpo"), rows=250)

Every stage that makes a model saves it (with its tokenizer) in ``<stage folder>/model``; ``model_dir(inputs)``
finds the one a stage reads.

Introduced for the capstones (issue 25); tested in tests/test_pipeline.py.
"""

from __future__ import annotations

import json
from pathlib import Path

MODEL = "model"  # the subfolder a model-making stage saves into
EMBEDDER, INDEX, SENTENCES = "embedder", "index.faiss", "sentences.json"  # what a ``retriever`` stage saves


def model_dir(inputs: dict[str, Path], name: str | None = None) -> Path:
    """The model folder of input stage ``name`` (the only input with a model when None)."""
    found = {n: folder / MODEL for n, folder in inputs.items() if (folder / MODEL / "config.json").exists()}
    if name is not None:
        if name not in found:
            raise KeyError(f"stage {name!r} has no model among the inputs; inputs with one: {sorted(found)}")
        return found[name]
    if len(found) != 1:
        raise ValueError(f"expected exactly one input stage with a model, found {sorted(found)}: name the one to read")
    return next(iter(found.values()))


def _source(inputs: dict[str, Path], base_model: str) -> str:
    """What a training stage starts from: the input stages' model folder, or ``base_model`` when none has one."""
    has_model = any((folder / MODEL / "config.json").exists() for folder in inputs.values())
    return str(model_dir(inputs)) if has_model else base_model


def _train_rows(inputs: dict, kind: str) -> list[dict]:
    """The training rows of ``kind`` ("sft" or "preference"): a ``curate`` stage's among the inputs, else the
    shipped training split."""
    from helpers import data

    curated = [folder / f"{kind}.jsonl" for folder in inputs.values() if (folder / f"{kind}.jsonl").exists()]
    if len(curated) > 1:
        raise ValueError(f"more than one input stage holds {kind}.jsonl: {curated}")
    return data.load_jsonl(curated[0], kind) if curated else data.load_split(kind, "train")


def eval_rows(limit: int | None = None) -> list[dict]:
    """The held-out prompts every stage scores (SFT format): the preference test set's prompts with their chosen
    replies, ``limit`` of them (as many of each task; all when None). The known families (sums, capitals, first
    letters) measure task accuracy, the unknown countries the hallucination rate."""
    from helpers import alignment, data

    return _per_task(alignment.as_sft_rows(data.load_split("preference", "test")), limit)


def _measure(model, tok, rows: list[dict]) -> dict:
    """Exact match on the known families (overall and per task), the hallucination rate on the unknown one, and the
    replies; per-prompt hits (unknown: declined) in ``hits``."""
    from helpers.evaluation import exact_match, generate, split_messages

    prompts, refs = split_messages(rows)
    replies = generate(model, tok, prompts)
    return {**_scores(replies, rows), "hits": [exact_match(r, ref) for r, ref in zip(replies, refs)],
            "replies": replies}


def _scores(replies: list[str], rows: list[dict]) -> dict:
    """Exact match of ``replies`` on the known families: ``accuracy`` (their mean) and ``per_task``; and the
    ``hallucination`` rate when ``rows`` hold the unknown family."""
    from helpers import alignment
    from helpers.evaluation import score_replies

    per_task = score_replies(replies, rows)["per_task"]
    known = {t: a for t, a in per_task.items() if t != "unknown"}
    scores = {"accuracy": sum(known.values()) / len(known), "per_task": known}
    if "unknown" in per_task:
        scores["hallucination"] = alignment.hallucination_rate(replies, rows)
    return scores


def _per_task(rows: list[dict], limit: int | None) -> list[dict]:
    """The first rows of each task, ``limit`` in all and as many of each (every row when None)."""
    if limit is None:
        return rows
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    return [r for t in tasks for r in [x for x in rows if x["task"] == t][:max(1, limit // len(tasks))]]


def _lora(r: int):
    """Lesson 04's adapter: rank ``r`` on every linear layer, alpha 2r, no dropout."""
    from peft import LoraConfig

    return LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0, task_type="CAUSAL_LM", target_modules="all-linear")


def _save_adapter(out: Path, model, tok, base_model: str) -> None:
    """A trained adapter, its tokenizer and the base it was trained on, in ``out/adapter`` (what ``merge`` reads)."""
    model.save_pretrained(out / "adapter")
    tok.save_pretrained(out / "adapter")
    (out / "adapter" / "base.json").write_text(json.dumps({"base_model": base_model}))


def _losses(trainer) -> list[float]:
    """The training losses a trainer logged, in order."""
    return [e["loss"] for e in trainer.state.log_history if "loss" in e]


def _train_sft(out: Path, model, tok, rows: list[dict], source: str, cfg, prec, steps: int, lr: float, seed: int,
               lora_r: int):
    """Lesson 03's SFT config with lesson 04's adapter on ``rows``; the adapter saved in ``out/adapter``. Returns
    (the trained model, its losses)."""
    from datasets import Dataset
    from trl import SFTTrainer

    from helpers import environment, recipes

    train = Dataset.from_list([{"messages": r["messages"]} for r in rows])
    args = recipes.sft_args(str(out / "trainer"), cfg, steps, lr, prec, seed, disable_tqdm=True)
    environment.set_seed(seed)
    trainer = SFTTrainer(model=model, args=args, train_dataset=train, processing_class=tok, peft_config=_lora(lora_r))
    trainer.train()
    _save_adapter(out, trainer.model, tok, source)
    return trainer.model, _losses(trainer)


def sft(out: Path, inputs: dict, base_model: str, steps: int, lr: float, lora_r: int = 16, seed: int = 0,
        profile: str = "tiny", eval_limit: int = 64, load_in_8bit: bool = False) -> dict:
    """LoRA SFT of ``base_model`` (any id ``recipes.load_model`` knows, or an input stage's model) on the SFT
    training rows (a ``curate`` input's, else the shipped ones): lesson 04's adapter on every linear layer, lesson
    03's config. Saves the adapter (and the tokenizer) in ``out/adapter``; returns held-out accuracy and
    hallucination rate before and after on ``eval_limit`` of ``eval_rows`` and the base's memory footprint.
    ``load_in_8bit``: the base is held in 8 bits (bitsandbytes LLM.int8, lesson 14's int8) while the adapter trains
    in full precision, as lesson 04's QLoRA does in 4 bits; ``merge`` merges the adapter into the full-precision
    base."""
    from peft import prepare_model_for_kbit_training
    from transformers import BitsAndBytesConfig

    from helpers import environment, precision, recipes
    from helpers.profiles import get_profile

    source = _source(inputs, base_model)
    device = environment.pick_device(verbose=False)
    cfg, prec = get_profile(profile), precision.choose(device)
    quantized = {"quantization_config": BitsAndBytesConfig(load_in_8bit=True)} if load_in_8bit else {}
    model, tok = recipes.load_model(source, dtype=prec.load_dtype, **quantized)
    if load_in_8bit:  # bitsandbytes placed it; norms and head kept in full precision for training
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    else:
        model.to(device)  # scored before training on the device the trainer uses
    footprint = model.get_memory_footprint()
    test = eval_rows(eval_limit)
    before = _measure(model, tok, test)
    rows = _train_rows(inputs, "sft")
    trained, losses = _train_sft(out, model, tok, rows, source, cfg, prec, steps, lr, seed, lora_r)
    after = _measure(trained, tok, test)
    return {"base_model": source, "train_rows": len(rows), "accuracy_before": before["accuracy"],
            "accuracy_after": after["accuracy"], "hallucination_before": before["hallucination"],
            "hallucination_after": after["hallucination"], "loss_first": losses[0], "loss_last": losses[-1],
            "steps": steps, "base_8bit": load_in_8bit, "base_footprint_mb": footprint / 1e6}


def _packed(split: str, domain: bool, tok, seq_len: int):
    """The domain corpus's (or the general corpus's) ``split`` as packed rows of ``seq_len`` tokens."""
    from helpers import data, training

    return training.pack_corpus(data.load_corpus(split, domain=domain), tok, seq_len)


def _held_out_text(tok, seq_len: int, limit: int | None) -> dict:
    """``limit`` packed rows of held-out domain and general text: what DAPT and 8 bits are scored on."""
    return {"domain": _packed("validation", True, tok, seq_len)[:limit],
            "general": _packed("validation", False, tok, seq_len)[:limit]}


def dapt(out: Path, inputs: dict, base_model: str, steps: int, lr: float, lora_r: int = 16, seed: int = 0,
         profile: str = "tiny", replay: float = 0.0, eval_limit: int | None = 64) -> dict:
    """Domain-adaptive pretraining (DAPT): lesson 01's next-token objective on the domain corpus
    (``data/domain``), through lesson 04's LoRA adapter on ``base_model`` (or the input stage's model), with
    ``replay`` of each batch drawn from the general corpus (against forgetting). Saves the adapter in
    ``out/adapter`` (``merge(stage="dapt")`` merges it); returns the perplexity of held-out domain text and of
    held-out general text before and after (``eval_limit`` packed rows of each), and the loss curve's ends.
    Introduced in 20_capstone_domain_adaptation.ipynb."""
    import torch
    from peft import get_peft_model

    from helpers import environment, precision, recipes, training
    from helpers.evaluation import perplexity
    from helpers.profiles import get_profile

    source = _source(inputs, base_model)
    device = environment.pick_device(verbose=False)
    cfg, prec = get_profile(profile), precision.choose(device)
    model, tok = recipes.load_model(source, dtype=prec.load_dtype)
    model.to(device).eval()
    held_out = _held_out_text(tok, cfg.seq_len, eval_limit)

    def measure(m) -> dict:
        with torch.no_grad():
            return {name: perplexity(m, r.to(device)) for name, r in held_out.items()}

    before = measure(model)
    train = _packed("train", True, tok, cfg.seq_len)
    if replay:  # as many general rows as make `replay` of the mix, drawn once
        general = _packed("train", False, tok, cfg.seq_len)
        n = min(len(general), round(len(train) * replay / (1 - replay)))
        pick = torch.randperm(len(general), generator=torch.Generator().manual_seed(seed))[:n]
        train = torch.cat([train, general[pick]])
    environment.set_seed(seed)
    peft_model = get_peft_model(model, _lora(lora_r))
    recipe = training.PretrainRecipe(steps=steps, batch_size=cfg.batch_size, seq_len=cfg.seq_len, lr=lr,
                                     warmup=min(20, steps // 10), seed=seed)
    losses = training.pretrain(peft_model, train.to(device), recipe, progress=False)
    _save_adapter(out, peft_model, tok, source)
    after = measure(peft_model)
    return {"base_model": source, "train_rows": len(train), "replay": replay, "loss_first": losses[0],
            "loss_last": losses[-1], "domain_ppl_before": before["domain"], "domain_ppl_after": after["domain"],
            "general_ppl_before": before["general"], "general_ppl_after": after["general"],
            "domain_ppl_drop": 1 - after["domain"] / before["domain"]}


def int8(out: Path, inputs: dict, profile: str = "tiny", eval_limit: int | None = 64, questions: bool = False,
         top_k: int = 3, search: str = "bm25") -> dict:
    """The input stage's model in 8 bits (bitsandbytes LLM.int8, lesson 14), saved in ``out/model`` (the int8
    codes and scales are what ``save_pretrained`` writes, so the folder is the smaller model); returns the bytes of
    the decoder's linear layers and of every stored tensor in 32 and in 8 bits, and the perplexity of held-out
    domain and general text in both (``eval_limit`` packed rows); with ``questions``, also both models' accuracy
    on the held-out domain questions, closed-book and with ``top_k`` retrieved sentences (``domain_scores``;
    ``search`` as in ``domain_sft``).
    Introduced in 20_capstone_domain_adaptation.ipynb."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from helpers import data, environment, quantization, recipes
    from helpers.evaluation import perplexity
    from helpers.profiles import get_profile

    source = model_dir(inputs)
    device = environment.pick_device(verbose=False)
    cfg = get_profile(profile)
    tok = recipes.load_tokenizer(str(source))
    models = {"fp32": AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32).to(device).eval(),
              "int8": AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32, device_map=device,
                                                           quantization_config=BitsAndBytesConfig(load_in_8bit=True))}
    held_out = {name: rows.to(device) for name, rows in _held_out_text(tok, cfg.seq_len, eval_limit).items()}
    result = {}
    for name, model in models.items():
        with torch.no_grad():
            result[name] = {"linear_mb": quantization.stored_bytes(model, quantization.in_linear_layers) / 1e6,
                            "stored_mb": quantization.stored_bytes(model) / 1e6,
                            **{f"{k}_ppl": perplexity(model, rows) for k, rows in held_out.items()}}
        if questions:
            scored = domain_scores(model, tok, data.load_split("domain", "test"), top_k, _retriever(inputs, search))
            result[name].update(closed_book=scored["closed_book"]["accuracy"], rag=scored["rag"]["accuracy"])
    models["int8"].save_pretrained(out / MODEL)
    tok.save_pretrained(out / MODEL)
    result["linear_ratio"] = result["fp32"]["linear_mb"] / result["int8"]["linear_mb"]
    result["domain_ppl_ratio"] = result["int8"]["domain_ppl"] / result["fp32"]["domain_ppl"]
    return result


def _dense_input(inputs: dict[str, Path]) -> Path | None:
    """The input stage that holds a dense retriever (a ``retriever`` stage's ``index.faiss``), or None."""
    found = [folder for folder in inputs.values() if (folder / INDEX).exists()]
    if len(found) > 1:
        raise ValueError(f"more than one input stage holds a retriever: {found}")
    return found[0] if found else None


def _retriever(inputs: dict[str, Path], search: str) -> Path | None:
    """What ``domain_search`` searches with: None (BM25) for ``search="bm25"``; for "dense" the input stage that
    holds a dense retriever (``_dense_input``)."""
    if search not in ("bm25", "dense"):
        raise ValueError(f"search must be 'bm25' or 'dense', got {search!r}")
    if search == "bm25":
        return None
    found = _dense_input(inputs)
    if found is None:
        raise ValueError("search='dense' needs a retriever stage among the inputs (needs=(..., 'retriever'))")
    return found


def domain_search(queries: list[str], k: int = 3, retriever: Path | None = None,
                  exclude_split: str | None = None) -> tuple[list[list[int]], list[str]]:
    """The ids of the ``k`` domain-corpus sentences (``data.domain_sentences(exclude_split)``) ranked first for
    each query, and the sentences: by BM25 (lesson 02's lexical baseline) when ``retriever`` is None, else by the
    dense retriever of a ``retriever`` stage folder (its embedder; its saved FAISS index over every sentence, or an
    index built here when ``exclude_split`` leaves some out). Introduced in 20_capstone_domain_adaptation.ipynb."""
    from helpers import data, environment, retrieval

    sentences = data.domain_sentences(exclude_split)
    if retriever is None:
        return retrieval.bm25_search(sentences, queries, k).tolist(), sentences
    import faiss
    from sentence_transformers import SentenceTransformer

    embedder = SentenceTransformer(str(retriever / EMBEDDER), device=environment.pick_device(verbose=False))
    if exclude_split is None:
        index, sentences = faiss.read_index(str(retriever / INDEX)), json.loads((retriever / SENTENCES).read_text())
    else:
        index = retrieval.flat_index(retrieval.encode(embedder, sentences))
    _, top = index.search(retrieval.encode(embedder, queries).numpy(), k)
    return top.tolist(), sentences


def _asked_herbs(questions: list[str]) -> list[str]:
    """The herb each domain question names."""
    import re

    from helpers import data

    names = [h["herb"] for h in data.load_jsonl(data.DATA_DIR / "domain" / "herbs.jsonl", "herbs")]
    return [next(n for n in names if re.search(rf"\b{n}\b", q)) for q in questions]


def _domain_recall(rows: list[dict], top: list[list[int]], sentences: list[str], k: int) -> dict:
    """recall@1 and recall@k of ranked sentence ids: the share of questions (``rows``, SFT format) with a sentence
    stating the asked fact (its herb and relation, ``data.domain_fact``) first / in the top k."""
    from helpers import data

    facts = [data.domain_fact(s) for s in sentences]
    herbs = _asked_herbs([r["messages"][0]["content"] for r in rows])
    hits = [[bool(facts[i]) and facts[i][:2] == (herb, row["task"]) for i in ids] for herb, row, ids in
            zip(herbs, rows, top)]
    return {"recall@1": sum(h[0] for h in hits) / len(rows), f"recall@{k}": sum(any(h[:k]) for h in hits) / len(rows)}


def retriever(out: Path, inputs: dict, encoder_model: str, steps: int, lr: float, seed: int = 0, top_k: int = 3,
              batch_size: int = 32, scale: float = 20.0) -> dict:
    """Lesson 02's dense retriever for the domain: its masked-LM encoder (``retrieval.embedder``) tuned with
    in-batch negatives (``MultipleNegativesRankingLoss``) on (training question, a corpus sentence stating its
    fact) pairs, test herbs never seen; saved in ``out/embedder``, with a FAISS index of every corpus sentence
    (``out/index.faiss``, ``out/sentences.json``). Returns the held-out questions' recall@1 and recall@``top_k``
    for the untuned encoder, the tuned one and BM25. Introduced in 20_capstone_domain_adaptation.ipynb."""
    import faiss
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments, losses
    from sentence_transformers.training_args import BatchSamplers

    from helpers import data, environment, precision, retrieval

    device = environment.pick_device(verbose=False)
    prec = precision.choose(device)
    train, test = data.load_split("domain", "train"), data.load_split("domain", "test")
    known = data.domain_sentences(exclude_split="test")
    facts = [data.domain_fact(s) for s in known]
    pairs = [{"anchor": row["messages"][0]["content"], "positive": sentence}
             for row, herb in zip(train, _asked_herbs([r["messages"][0]["content"] for r in train]))
             for sentence, fact in zip(known, facts) if fact and fact[:2] == (herb, row["task"])]
    queries = [r["messages"][0]["content"] for r in test]
    sentences = data.domain_sentences()

    def dense_index(model) -> tuple:  # (a FAISS index of every sentence, the held-out questions' recall in it)
        index = retrieval.flat_index(retrieval.encode(model, sentences))
        top = index.search(retrieval.encode(model, queries).numpy(), top_k)[1].tolist()
        return index, _domain_recall(test, top, sentences, top_k)

    embedder = retrieval.embedder(encoder_model, device, seed=seed).eval()
    result = {"pairs": len(pairs), "recall": {"untuned": dense_index(embedder)[1]}}
    args = SentenceTransformerTrainingArguments(
        output_dir=str(out / "checkpoints"), max_steps=steps, per_device_train_batch_size=batch_size,
        learning_rate=lr, warmup_steps=0.1, batch_sampler=BatchSamplers.NO_DUPLICATES, seed=seed,
        logging_steps=max(1, steps // 20), save_strategy="no", report_to="none", disable_tqdm=True,
        **prec.trainer_args)
    trainer = SentenceTransformerTrainer(model=embedder.train(), args=args, train_dataset=Dataset.from_list(pairs),
                                         loss=losses.MultipleNegativesRankingLoss(embedder, scale=scale))
    trainer.train()
    embedder.eval()
    losses_logged = _losses(trainer)
    index, result["recall"]["tuned"] = dense_index(embedder)
    result["recall"]["bm25"] = _domain_recall(test, retrieval.bm25_search(sentences, queries, top_k).tolist(),
                                              sentences, top_k)
    embedder.save(str(out / EMBEDDER))
    faiss.write_index(index, str(out / INDEX))
    (out / SENTENCES).write_text(json.dumps(sentences))
    return {**result, "loss_first": losses_logged[0], "loss_last": losses_logged[-1], "sentences": len(sentences)}


def domain_reader_rows(n: int, seed: int = 0, k: int = 3, retriever: Path | None = None) -> list[dict]:
    """``n`` SFT rows that teach a model to answer a domain question from the ``k`` sentences retrieval puts before
    it (``retrieval.rag_prompt``): each a training herb's question after the sentences the pipeline's retriever
    (``domain_search``: BM25, or a ``retriever`` stage's) ranks first for it in the corpus (test herbs' sentences
    left out), in its order, **every value in them drawn afresh**, the answer too (lesson 02's reader trick: no
    value can be memorised, so reading is the only way to a low loss). The reader trains on what the retriever
    returns: the asked herb's other facts, the asked fact of other herbs, in the order it ranks them. Questions
    whose sentences miss the asked fact are not used. Introduced in 20_capstone_domain_adaptation.ipynb."""
    import random
    import re

    from helpers import data

    rng = random.Random(seed)
    questions = data.load_split("domain", "train")
    asked_all = [q["messages"][0]["content"] for q in questions]
    top, sentences = domain_search(asked_all, k, retriever, exclude_split="test")
    usable = []
    for question, asked, herb, ids in zip(questions, asked_all, _asked_herbs(asked_all), top):
        facts = [data.domain_fact(sentences[i]) for i in ids]
        stating = [j for j, f in enumerate(facts) if f and f[:2] == (herb, question["task"])]
        if stating:
            usable.append((asked, question["task"], [sentences[i] for i in ids], facts, stating))
    rows = []
    while len(rows) < n:
        asked, relation, passages, facts, stating = rng.choice(usable)
        answer = str(rng.randint(1, 9))
        lines = []
        for j, (sentence, fact) in enumerate(zip(passages, facts)):
            value = answer if j in stating else str(rng.randint(1, 9))
            lines.append(sentence if fact is None else re.sub(r"\b\d\b", value, sentence))
        rows.append({"task": relation, "messages": [{"role": "user", "content": "\n".join([*lines, asked])},
                                                    {"role": "assistant", "content": answer}]})
    return rows


def domain_passages(questions: list[str], k: int = 3, retriever: Path | None = None) -> tuple[list[list[str]], list[str]]:
    """The ``k`` sentences of the domain's training corpus ranked first for each question (``domain_search``:
    BM25, or a ``retriever`` stage's dense retriever), and the sentences searched. Introduced in
    20_capstone_domain_adaptation.ipynb."""
    top, sentences = domain_search(questions, k, retriever)
    return [[sentences[i] for i in row] for row in top], sentences


def domain_scores(model, tok, rows: list[dict], k: int = 3, retriever: Path | None = None,
                  modes: tuple[str, ...] = ("closed_book", "rag")) -> dict:
    """Exact match on domain questions (``rows``, SFT format) asked closed-book and with the ``k`` retrieved
    sentences before the question (``retrieval.rag_prompt``; ``retriever`` as in ``domain_search``), the ``modes``
    asked for; and the retrieval's recall@k: the share of questions whose sentences include one stating the asked
    fact (``_domain_recall``, as the ``retriever`` stage measures it). Introduced in
    20_capstone_domain_adaptation.ipynb."""
    from helpers import retrieval
    from helpers.evaluation import exact_match, generate, score_replies

    questions = [r["messages"][0]["content"] for r in rows]
    answers = [r["messages"][-1]["content"] for r in rows]
    top, sentences = domain_search(questions, k, retriever)
    prompts = {"closed_book": [r["messages"][:-1] for r in rows],
               "rag": [retrieval.rag_prompt([sentences[i] for i in ids], q) for ids, q in zip(top, questions)]}
    if unknown := set(modes) - set(prompts):
        raise ValueError(f"modes {sorted(unknown)}: a domain question is asked {' or '.join(prompts)}")
    replies = {mode: generate(model, tok, prompts[mode]) for mode in modes}
    return {**{mode: score_replies(r, rows) for mode, r in replies.items()},
            "retrieval_recall": _domain_recall(rows, top, sentences, k)[f"recall@{k}"],
            "hits": {mode: [exact_match(x, a) for x, a in zip(r, answers)] for mode, r in replies.items()}}


def paired_difference(a: Path, b: Path, seed: int = 0) -> dict:
    """Held-out domain accuracy of ``domain_sft`` stage folder ``a`` minus folder ``b``'s, closed-book and with
    retrieval, question by question: the difference, its paired bootstrap interval (lesson 12) and the questions
    each model gets right and the other wrong. Introduced in 20_capstone_domain_adaptation.ipynb."""
    from helpers import comparison

    hits = [json.loads((folder / "held_out.json").read_text()) for folder in (a, b)]
    result = {}
    for mode in ("closed_book", "rag"):
        ours, theirs = ([float(h) for h in side[mode]] for side in hits)
        difference, low, high = comparison.paired_difference_ci(theirs, ours, seed=seed)
        result[mode] = {"difference": difference, "interval": [low, high],
                        "wins": sum(x > y for x, y in zip(ours, theirs)),
                        "losses": sum(x < y for x, y in zip(ours, theirs))}
    return result


def domain_sft(out: Path, inputs: dict, base_model: str, steps: int, lr: float, lora_r: int = 16, seed: int = 0,
               profile: str = "tiny", reader_rows: int = 600, top_k: int = 3, search: str = "bm25") -> dict:
    """LoRA SFT (lesson 03's config, lesson 04's adapter) of the input stage's model (or ``base_model``) on the
    domain's training questions, closed-book, and on ``reader_rows`` questions asked after the ``top_k`` sentences
    retrieval ranks first for them (``domain_reader_rows``: fresh values, so the model learns to read). ``search``:
    "bm25" or "dense" (a ``retriever`` stage among the inputs). Saves the adapter in ``out/adapter``; returns
    held-out accuracy (the test herbs' questions) closed-book and with retrieval from the corpus (``domain_scores``;
    with a ``retriever`` input, ``rag_by_search`` holds it with both searches), and closed-book accuracy on the
    training questions. Introduced in 20_capstone_domain_adaptation.ipynb."""
    from helpers import data, environment, precision, recipes
    from helpers.evaluation import task_accuracy
    from helpers.profiles import get_profile

    source = _source(inputs, base_model)
    device = environment.pick_device(verbose=False)
    cfg, prec = get_profile(profile), precision.choose(device)
    model, tok = recipes.load_model(source, dtype=prec.load_dtype)
    model.to(device)
    train, test = data.load_split("domain", "train"), data.load_split("domain", "test")
    searcher = _retriever(inputs, search)
    rows = train + domain_reader_rows(reader_rows, seed, top_k, searcher)
    trained, losses = _train_sft(out, model, tok, rows, source, cfg, prec, steps, lr, seed, lora_r)
    trained.eval()
    held_out = domain_scores(trained, tok, test, top_k, searcher)
    (out / "held_out.json").write_text(json.dumps(held_out["hits"]))  # question by question, for paired_difference
    by_search = {search: held_out["rag"]["accuracy"]}
    if _dense_input(inputs) is not None:
        other = "dense" if search == "bm25" else "bm25"
        by_search[other] = domain_scores(trained, tok, test, top_k, _retriever(inputs, other), ("rag",))["rag"]["accuracy"]
    return {"base_model": source, "train_rows": len(rows), "loss_first": losses[0], "loss_last": losses[-1],
            "train_accuracy": task_accuracy(trained, tok, train)["accuracy"],
            "closed_book": held_out["closed_book"]["accuracy"], "rag": held_out["rag"]["accuracy"],
            "per_task": {"closed_book": held_out["closed_book"]["per_task"], "rag": held_out["rag"]["per_task"]},
            "retrieval_recall": held_out["retrieval_recall"], "rag_by_search": by_search}


def merge(out: Path, inputs: dict, stage: str = "sft", probe_rows: int = 8, probe: str = "sft") -> dict:
    """Merge stage ``stage``'s LoRA adapter into its base (``merge_and_unload``) and save a standalone model in
    ``out/model``; returns the largest logit difference between the reloaded model and the adapter on a few test
    prompts of the ``probe`` set ("sft", or "domain": the herbs' questions), and its bound in this precision
    (lesson 04's check)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from helpers import data, environment, precision, recipes

    adapter = inputs[stage] / "adapter"
    base = json.loads((adapter / "base.json").read_text())["base_model"]
    device = environment.pick_device(verbose=False)
    prec = precision.choose(device)
    model, tok = recipes.load_model(base, dtype=prec.load_dtype)[0].to(device), recipes.load_tokenizer(str(adapter))
    peft_model = PeftModel.from_pretrained(model, adapter).eval()
    texts = [tok.apply_chat_template(r["messages"][:1], tokenize=False, add_generation_prompt=True)
             for r in data.load_split(probe, "test")[:probe_rows]]
    tok.padding_side = "left"
    probe = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    with torch.no_grad():
        adapter_logits = peft_model(**probe).logits.float()
    peft_model.merge_and_unload().save_pretrained(out / MODEL)
    tok.save_pretrained(out / MODEL)
    reloaded = AutoModelForCausalLM.from_pretrained(out / MODEL, dtype=prec.load_dtype).to(device).eval()
    with torch.no_grad():
        diff = (reloaded(**probe).logits.float() - adapter_logits).abs().max().item()
    return {"max_logit_diff": diff, "logit_tolerance": prec.logits_rtol * adapter_logits.abs().max().item()}


def dpo(out: Path, inputs: dict, steps: int, lr: float, beta: float = 0.1, nll_weight: float = 1.0, lora_r: int = 16,
        seed: int = 0, profile: str = "tiny", eval_limit: int | None = None) -> dict:
    """Lesson 08's DPO (``recipes.dpo_args``: DPO plus ``nll_weight`` times the chosen reply's NLL) with a LoRA
    adapter on the input stage's model, on the preference pairs (a ``curate`` input's, else the shipped ones).
    Saves the adapter (and the tokenizer) in ``out/adapter``, which ``merge(stage="dpo")`` merges; returns, on
    ``eval_limit`` of ``eval_rows``, the hallucination rate (unknown countries not declined) and the accuracy on
    the other tasks, before and after."""
    from datasets import Dataset
    from trl import DPOTrainer

    from helpers import environment, precision, recipes
    from helpers.profiles import get_profile

    source = str(model_dir(inputs))
    device = environment.pick_device(verbose=False)
    cfg, prec = get_profile(profile), precision.choose(device)
    model, tok = recipes.load_model(source, dtype=prec.load_dtype)
    model.to(device)
    test = eval_rows(eval_limit)
    before = _measure(model, tok, test)
    pairs = Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")}
                               for r in _train_rows(inputs, "preference")]).shuffle(seed=seed)
    args = recipes.dpo_args(str(out / "trainer"), cfg, steps, lr, beta, prec, seed, nll_weight=nll_weight,
                            disable_tqdm=True)
    environment.set_seed(seed)
    trainer = DPOTrainer(model=model, args=args, train_dataset=pairs, processing_class=tok, peft_config=_lora(lora_r))
    trainer.train()
    _save_adapter(out, trainer.model, tok, source)
    after = _measure(trainer.model, tok, test)
    losses = _losses(trainer)
    return {"base_model": source, "train_pairs": len(pairs), "hallucination_before": before["hallucination"],
            "hallucination_after": after["hallucination"], "accuracy_before": before["accuracy"],
            "accuracy_after": after["accuracy"], "per_task_after": after["per_task"], "loss_first": losses[0],
            "loss_last": losses[-1], "steps": steps}


def curate(out: Path, inputs: dict, seed: int = 0, per_kind: int = 30) -> dict:
    """Lesson 05's curation on the chat sets: ``curation.raw_chat_sets`` (the shipped SFT and preference training
    sets with problems planted in them) through ``curation.curate_chats`` (normalise, drop empty replies, ties,
    exact duplicates and rows that quote a held-out prompt). Writes ``out/sft.jsonl`` and ``out/preference.jsonl``
    (what the SFT and DPO stages read), ``out/removed.json`` (every removed row's id, step and why) and a data card
    ``out/README.md``; returns the counts per step and the scores against what was planted."""
    from collections import Counter

    from helpers import curation, data

    sets, planted = curation.raw_chat_sets(seed, per_kind)
    held_out = [r["messages"][0]["content"] for r in data.load_split("sft", "test")]
    held_out += [r["prompt"][0]["content"] for r in data.load_split("preference", "test")]
    metrics, card, removed_all = {}, [], {}
    for kind, rows in sets.items():
        kept, removed = curation.curate_chats(rows, held_out)
        (out / f"{kind}.jsonl").write_text("".join(json.dumps({k: v for k, v in r.items() if k != "id"}) + "\n"
                                                   for r in kept))
        steps = [(step, len(ids), dict(Counter("same SHA-256 as a kept row" if step == "duplicate" else why
                                               for why in ids.values())))  # a duplicate's why: the row it repeats
                 for step, ids in removed.items()]
        card.append(curation.data_card(f"{kind} training set with planted problems (curation.raw_chat_sets)",
                                       steps, len(kept), out / f"{kind}.card.md", unit="rows"))
        removed_all[kind] = removed
        metrics[kind] = {"raw": len(rows), "kept": len(kept), "removed": {step: len(ids) for step, ids in removed.items()},
                         **curation.chat_scores(kept, removed, planted)}
    (out / "README.md").write_text("\n".join(card))
    (out / "removed.json").write_text(json.dumps(removed_all, indent=1))
    return metrics


def evaluate(out: Path, inputs: dict, base_model: str | None = None, limit: int | None = 64,
             harness: bool = True, seed: int = 0) -> dict:
    """Base (``base_model``, when given) and every input stage's model on the same held-out prompts (``limit`` of
    ``eval_rows``): exact match and keyword hits through the course's ``evaluate`` modules, accuracy per task, the
    hallucination rate, per-prompt A/B win rates of each model against the one before it (with a bootstrap
    interval on the difference), and with ``harness`` lm-evaluation-harness on two local tasks made of the same
    prompts (lesson 12's: generation with exact match, and a choice between the right and the rejected reply by
    log-likelihood). Replies go to ``out/replies.json``."""
    from helpers import comparison, environment, recipes
    from helpers.evaluation import load_metric

    device = environment.pick_device(verbose=False)
    rows = eval_rows(limit)
    refs = [r["messages"][-1]["content"] for r in rows]
    sources = ([("base", base_model)] if base_model else []) + [
        (n, str(f / MODEL)) for n, f in inputs.items() if (f / MODEL / "config.json").exists()]
    if not sources:
        raise ValueError(f"no base model and no input stage with a model to evaluate: {sorted(inputs)}")
    exact, keywords = load_metric("course_exact_match"), load_metric("course_keyword_hits")
    tasks = _harness_tasks(out / "lm_eval_tasks", limit, seed) if harness else None
    results, replies, hits = {}, {}, {}
    for name, source in sources:
        model, tok = recipes.load_model(source)
        model.to(device).eval()
        measured = _measure(model, tok, rows)
        hits[name], replies[name] = measured["hits"], measured["replies"]
        results[name] = {"exact_match": exact.compute(predictions=replies[name], references=refs)["exact_match"],
                         "keyword_hits": keywords.compute(predictions=replies[name],
                                                          references=[[r] for r in refs])["keyword_hit_rate"],
                         **{k: measured[k] for k in ("accuracy", "per_task", "hallucination")}}
        if tasks:
            results[name]["harness"] = _harness(model, tok, tasks, device, seed, hits[name])
    names = [n for n, _ in sources]
    wins = {f"{b} vs {a}": {**comparison.win_rate(hits[a], hits[b]),
                            "difference_ci": list(comparison.paired_difference_ci(hits[a], hits[b], seed=seed))}
            for a, b in zip(names, names[1:])}
    (out / "replies.json").write_text(json.dumps({"prompts": [r["messages"][0]["content"] for r in rows],
                                                  "references": refs, **replies}, indent=1))
    return {"rows": len(rows), "models": results, "win_rates": wins}


def _harness_tasks(task_dir: Path, limit: int | None, seed: int):
    """Lesson 12's local lm-eval tasks over the ``eval_rows`` prompts: ``course_generate`` (generate until
    ``<|im_end|>``, exact match ignoring case and a final full stop) and ``course_choice`` (the chosen reply against
    the rejected one, by log-likelihood). Returns (task manager, task names)."""
    import random

    import yaml
    from lm_eval.tasks import TaskManager

    from helpers import data

    task_dir.mkdir(parents=True, exist_ok=True)
    pairs = _per_task(data.load_split("preference", "test"), limit)
    rng = random.Random(seed)
    docs = {"course_generate": [], "course_choice": []}
    for pair in pairs:
        question, answer, wrong = (pair[k][-1]["content"] for k in ("prompt", "chosen", "rejected"))
        docs["course_generate"].append({"question": question, "answer": answer})
        choices = rng.sample([answer, wrong], 2)
        docs["course_choice"].append({"question": question, "choices": choices, "label": choices.index(answer)})
    specs = {
        "course_generate": {
            "output_type": "generate_until", "doc_to_target": "{{answer}}",
            "generation_kwargs": {"until": ["<|im_end|>"], "max_gen_toks": 16, "do_sample": False},
            "filter_list": [{"name": "strip", "filter": [{"function": "regex", "regex_pattern": r"(?s)^\s*(.*?)\s*$"},
                                                         {"function": "take_first"}]}],
            "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True,
                             "ignore_case": True, "regexes_to_ignore": [r"\.+$"]}]},
        "course_choice": {"output_type": "multiple_choice", "doc_to_choice": "{{choices}}", "doc_to_target": "{{label}}",
                          "target_delimiter": "",
                          "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}]}}
    for task, spec in specs.items():
        (task_dir / f"{task}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs[task]))
        task_yaml = {"task": task, "dataset_path": "json", "test_split": "test", "doc_to_text": "{{question}}",
                     "dataset_kwargs": {"data_files": {"test": str(task_dir / f"{task}.jsonl")}}, **spec}
        (task_dir / f"{task}.yaml").write_text(yaml.safe_dump(task_yaml, sort_keys=False))
    return TaskManager(include_path=str(task_dir), include_defaults=False), list(specs)


def _harness(model, tok, tasks, device: str, seed: int, hits: list[bool]) -> dict:
    """lm-eval on the local tasks, with the chat template; its exact match, choice accuracy, and on how many
    prompts its exact-match verdict equals ours (``hits``)."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    manager, names = tasks
    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=32, device=device)
    result = lm_eval.simple_evaluate(model=lm, tasks=names, task_manager=manager, apply_chat_template=True,
                                     log_samples=True, verbosity="ERROR", random_seed=seed, numpy_random_seed=seed,
                                     torch_random_seed=seed, fewshot_random_seed=seed)
    generated = sorted(result["samples"]["course_generate"], key=lambda s: s["doc_id"])
    return {"exact_match": result["results"]["course_generate"]["exact_match,strip"],
            "choice_accuracy": result["results"]["course_choice"]["acc,none"],
            "same_verdicts": sum(bool(s["exact_match"]) == h for s, h in zip(generated, hits, strict=True))}


def gguf(out: Path, inputs: dict, outtypes: tuple[str, ...] = ("q8_0",)) -> dict:
    """The input stage's model as GGUF files in ``out``, one per type: the converter's own (f32, f16, bf16, q8_0;
    lesson 14's ``to_gguf``) or any llama.cpp quantization type (``Q4_K_M``, ``Q4_0``, ...: converted to f32, then
    quantized by llama.cpp's ``llama_model_quantize``, as lesson 14 does). Each file's size against the model's
    safetensors."""
    from helpers import quantization

    source = model_dir(inputs)
    weights = sum(f.stat().st_size for f in source.glob("*.safetensors"))
    files, f32 = {}, out / "model-f32.gguf"
    for kind in outtypes:
        path, quantized = out / f"model-{kind.lower()}.gguf", {}
        if kind.lower() in quantization.CONVERTER_TYPES:
            quantization.to_gguf(source, path, kind.lower())
        else:
            if not f32.exists():
                quantization.to_gguf(source, f32, "f32")
            quantized = quantization.quantize_gguf(f32, path, kind)
        files[kind] = {**quantized, "file": path.name, "mb": path.stat().st_size / 1e6,
                       "size_ratio": weights / path.stat().st_size}
    if "f32" not in [k.lower() for k in outtypes]:
        f32.unlink(missing_ok=True)  # only the step to a llama.cpp type
    return files


def serve(out: Path, inputs: dict, api_key: str, limit: int | None = 64, engines: tuple[str, ...] = ("transformers",),
          startup_timeout: float = 600, vllm_version: str = "0.33.0", questions: str = "course",
          rag_k: int = 0, search: str = "bm25") -> dict:
    """Serve the input stages' model through lesson 16's OpenAI-compatible servers, one after the other, each
    with ``api_key``: ``transformers`` (``helpers.server`` on the model folder), ``llama.cpp:<file>`` (llama.cpp's
    server on a GGUF file of a ``gguf`` input) or ``vllm`` (GPU only). Each answers the ``eval_rows`` prompts
    through the ``openai`` client (greedy, 8 in flight); returns its accuracy and hallucination rate (scored as in
    process), the status of a request without the key and of one with a wrong key, and whether any server process
    or port is left once it stopped. Servers' logs in ``out``. ``questions="domain"``: the domain's held-out
    questions instead, each asked closed-book and, with ``rag_k``, after the ``rag_k`` sentences retrieved from
    the domain corpus (``domain_passages``, ``search`` as in ``domain_sft``: the client retrieves, the server only
    generates)."""
    import concurrent.futures
    import sys

    import torch
    from openai import OpenAI

    from helpers import environment, precision, serving

    device = environment.pick_device(verbose=False)
    prec = precision.choose(device)
    folder = model_dir(inputs)
    if questions == "domain":
        from helpers import data, retrieval

        rows = data.load_split("domain", "test")[:limit]
        if rag_k:
            asked = [r["messages"][0]["content"] for r in rows]
            rows += [{"task": r["task"], "messages": [*retrieval.rag_prompt(p, q), r["messages"][-1]], "rag": True}
                     for r, p, q in zip(rows, domain_passages(asked, rag_k, _retriever(inputs, search))[0], asked)]
    else:
        rows = eval_rows(limit)
    results = {}
    for engine in engines:
        port = serving.free_port()
        if engine == "transformers":
            command = [sys.executable, "-m", "helpers.server", str(folder), "--served-model-name", "course",
                       "--device", device, "--dtype", str(prec.compute_dtype).removeprefix("torch.")]
            health = "/health"
        elif engine.startswith("llama.cpp:"):
            gguf_file = next(f / engine.split(":", 1)[1] for f in inputs.values() if (f / engine.split(":", 1)[1]).exists())
            command = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf_file), "--model_alias", "course",
                       "--n_ctx", "512", "--n_threads", str(torch.get_num_threads()), "--api_key", api_key]
            health = "/docs"  # its API page: it has no /health
        elif engine == "vllm":
            command = [serving.install_vllm(vllm_version), "serve", str(folder), "--served-model-name", "course",
                       "--max-model-len", "512", "--gpu-memory-utilization", "0.3", "--enforce-eager"]
            health = "/health"
        else:
            raise ValueError(f"unknown engine {engine!r}: transformers, llama.cpp:<gguf file> or vllm")
        command += ([] if engine.startswith("llama.cpp") else ["--api-key", api_key])
        command += ["--host", "127.0.0.1", "--port", str(port)]
        server = serving.launch(command, port, log=out / f"{engine.replace(':', '-')}.log", health_path=health)
        try:
            startup = server.wait_healthy(startup_timeout)
            client = OpenAI(base_url=f"{server.url}/v1", api_key=api_key)

            # llama.cpp stops at the GGUF's end-of-sequence token unless told the template's end of turn;
            # helpers.server stops at the model's and refuses a `stop` it would ignore
            stop = {"stop": ["<|im_end|>"]} if engine.startswith("llama.cpp") else {}

            def ask(row, client=client, stop=stop):
                reply = client.chat.completions.create(model="course", messages=row["messages"][:-1], max_tokens=16,
                                                       temperature=0, **stop)
                return reply.choices[0].message.content or ""

            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                replies = list(pool.map(ask, rows))
            chat = {"model": "course", "messages": rows[0]["messages"][:-1], "max_tokens": 4}
            url = f"{server.url}/v1/chat/completions"
            no_key, wrong_key = serving.post(url, chat)[0], serving.post(url, chat, api_key="not-the-key")[0]
        finally:
            server.stop()
        results[engine] = {"startup_s": startup, "no_key_status": no_key, "wrong_key_status": wrong_key,
                           "left_running": server.alive() or serving.listening(port)}
        for name, part in (("", [i for i, r in enumerate(rows) if not r.get("rag")]),
                           ("rag_", [i for i, r in enumerate(rows) if r.get("rag")])):
            if part:
                scored = _scores([replies[i] for i in part], [rows[i] for i in part])
                results[engine][f"{name}accuracy"] = scored["accuracy"]
                if "hallucination" in scored:
                    results[engine]["hallucination"] = scored["hallucination"]
        (out / f"{engine.replace(':', '-')}.replies.json").write_text(json.dumps(replies, indent=1))
    return results
