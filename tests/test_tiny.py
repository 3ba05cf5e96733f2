import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

from helpers import cache, comparison, data, evaluation, recipes, tiny, training


def test_tokenizer_roundtrip_specials_and_chat_template():
    tok = AutoTokenizer.from_pretrained(tiny.tokenizer_path())
    for doc in data.load_corpus("validation")[:50]:
        assert tok.decode(tok(doc, add_special_tokens=False)["input_ids"]) == doc
    for special in tiny.SPECIAL_TOKENS:
        assert len(tok(special, add_special_tokens=False)["input_ids"]) == 1
    messages = [{"role": "user", "content": "Spell it."}, {"role": "assistant", "content": "lemon"}]
    enc = tok.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True)
    trained = [t for t, m in zip(enc["input_ids"], enc["assistant_masks"]) if m]
    assert tok.decode(trained).strip() == "lemon<|im_end|>"
    # a word after a newline is the same token as after a space (answers reuse question tokens)
    assert tok.tokenize("x\nlemon")[-1] == tok.tokenize("x lemon")[-1]


def test_generation_prompt_is_a_token_prefix_of_the_training_text():
    # Generation starts from exactly the tokens that precede the reply in training (no lone trailing "Ġ").
    tok = AutoTokenizer.from_pretrained(tiny.tokenizer_path())
    for row in data.load_split("sft", "test")[:30]:
        full = tok.apply_chat_template(row["messages"])["input_ids"]
        prompt = tok.apply_chat_template(row["messages"][:1], add_generation_prompt=True)["input_ids"]
        assert full[: len(prompt)] == prompt, row
        assert tok.decode(full[len(prompt):]).strip() == row["messages"][1]["content"] + "<|im_end|>"


def test_base_model_was_pretrained_on_the_chat_tokens():
    # The frozen (tied) rows of <|im_start|> and <|im_end|> must be trained, or LoRA cannot end a reply.
    folder = tiny.model_path("base")
    tok, model = AutoTokenizer.from_pretrained(folder), AutoModelForCausalLM.from_pretrained(folder)
    ids = [tok.apply_chat_template(m)["input_ids"] for m in data.load_chats()[:16]]
    end = tok.convert_tokens_to_ids("<|im_end|>")
    with torch.no_grad():
        for seq in ids:
            logits = model(torch.tensor([seq])).logits[0, :-1]
            at_end = [i for i, t in enumerate(seq[1:]) if t == end]
            assert logits[at_end].argmax(-1).eq(end).float().mean() >= 0.5


def test_base_model_loads_and_is_small_and_trained():
    folder = tiny.model_path("base")
    info = json.loads((folder / "build.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert model.config.model_type == "llama"
    assert model.num_parameters() == info["parameters"] < 2_000_000
    assert info["losses"][-1] < info["losses"][0] / 2
    assert recipes.resolve_model("tiny:base") == str(folder)
    assert recipes.resolve_model("org/model") == "org/model"


def test_build_is_deterministic_and_cached(tmp_path, monkeypatch):
    recipe = training.PretrainRecipe(steps=5, batch_size=4, seq_len=32)
    weights = []
    for name in ("a", "b"):
        monkeypatch.setenv("COURSE_CACHE", str(tmp_path / name))
        folder = tiny.model_path("draft", recipe=recipe, progress=False)
        weights.append(AutoModelForCausalLM.from_pretrained(folder).state_dict())
        assert tiny.model_path("draft", recipe=recipe) == folder  # second call hits the cache
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_tokenizer_versions_keep_every_id_and_add_the_mask_token():
    first, second = (AutoTokenizer.from_pretrained(tiny.tokenizer_path(version=v)) for v in (1, 2))
    assert second.get_vocab() == {**first.get_vocab(), "<|mask|>": len(first)}, "appended: no trained id moves"
    assert first.mask_token is None and second.mask_token_id == len(first)
    doc = data.load_corpus("validation")[0]
    assert first(doc)["input_ids"] == second(doc)["input_ids"]
    assert tiny.tokenizer_path(version=2).name.startswith(tiny.tokenizer_path().name)  # v1's models keep their key
    with pytest.raises(ValueError, match="no tokenizer version 9"):
        tiny.tokenizer_path(version=9)


def test_an_encoder_size_is_a_bert_pretrained_with_masked_lm(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    folder = tiny.model_path("encoder", recipe=training.PretrainRecipe(steps=30, seq_len=64, lr=3e-3), progress=False)
    tok, model = AutoTokenizer.from_pretrained(folder), AutoModelForMaskedLM.from_pretrained(folder)
    assert model.config.model_type == "bert" and tok.mask_token == "<|mask|>"
    rows = training.pack_corpus(data.load_corpus("validation"), tok, 64)[:32]
    torch.manual_seed(0)
    untrained = tiny.model_class("encoder")(tiny.model_config("encoder", tok))
    before, after = (evaluation.masked_token_accuracy(m, rows, tok) for m in (untrained, model))
    assert before < 0.01 and after > 0.05, (before, after)
    assert evaluation.masked_token_accuracy(model, rows, tok) == after  # seeded: the same positions each call
    with pytest.raises(ValueError, match="needs a mask token"):
        tiny.model_config("encoder", AutoTokenizer.from_pretrained(tiny.tokenizer_path()))
    with pytest.raises(ValueError, match="one key/value head per query head"):
        tiny.model_config(tiny.TinySize(64, 128, 2, 4, 2, architecture="bert"), tok)
    with pytest.raises(ValueError, match="unknown architecture"):
        tiny.model_config(tiny.TinySize(64, 128, 2, 4, 2, architecture="mamba"), tok)


def test_draft_is_smaller_and_shares_the_tokenizer():
    tok = AutoTokenizer.from_pretrained(tiny.tokenizer_path())
    base, draft = (tiny.model_config(n, tok) for n in ("base", "draft"))
    assert draft.vocab_size == base.vocab_size
    assert draft.hidden_size < base.hidden_size and draft.num_hidden_layers < base.num_hidden_layers


def test_perplexity_of_uniform_model_is_vocab_size():
    class Uniform(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(1))

        def forward(self, input_ids, labels):
            logits = torch.zeros(*input_ids.shape, 50) + self.p
            loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 50), labels[:, 1:].reshape(-1))
            return type("Out", (), {"loss": loss})

    rows = torch.randint(0, 50, (6, 10))
    assert abs(evaluation.perplexity(Uniform(), rows, batch_size=4) - 50) < 1e-3


def test_generation_batched_equals_unbatched_and_accuracy_counts():
    folder = tiny.model_path("base")
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    rows = data.load_split("sft", "test")[:6]
    prompts, refs = evaluation.split_messages(rows)
    assert evaluation.generate(model, tok, prompts, 6, batch_size=1) == evaluation.generate(model, tok, prompts, 6, batch_size=6)
    result = evaluation.task_accuracy(model, tok, rows, max_new_tokens=6)
    hits = sum(evaluation.exact_match(r, ref) for r, ref in zip(result["replies"], refs))
    assert result["accuracy"] == hits / len(rows)
    assert evaluation.exact_match(" Lemon. ", "lemon") and not evaluation.exact_match("lemons", "lemon")
    assert evaluation.contains_answer("it is 12", "12")


def test_answer_logprobs_and_next_token_margin_match_a_plain_forward_pass():
    folder = tiny.model_path("base")
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    rows = data.load_split("sft", "test")[:5]
    prompts, refs = evaluation.split_messages(rows)
    logps, counts = evaluation.answer_logprobs(model, tok, prompts, refs, batch_size=2)  # padded batches
    for prompt, ref, logp, count in zip(prompts, refs, logps, counts):
        head = tok.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
        ids = tok(head + ref + "<|im_end|>", add_special_tokens=False, return_tensors="pt")["input_ids"]
        n_head = len(tok(head, add_special_tokens=False)["input_ids"])
        with torch.no_grad():
            token_logps = model(ids).logits[0, :-1].log_softmax(-1).gather(-1, ids[0, 1:, None]).squeeze(-1)
        assert count == ids.shape[1] - n_head, "the answer's tokens and the end of turn, nothing after"
        assert abs(token_logps[n_head - 1:].sum().item() - logp.item()) < 1e-4
    texts = [tok.apply_chat_template(p, add_generation_prompt=True, tokenize=False) for p in prompts]
    margins = comparison.next_token_margin(model, tok, texts, "A", "B", batch_size=2)
    a, b = tok.convert_tokens_to_ids("A"), tok.convert_tokens_to_ids("B")
    with torch.no_grad():
        last = model(tok(texts[0], add_special_tokens=False, return_tensors="pt")["input_ids"]).logits[0, -1]
    assert abs(margins[0].item() - (last[b] - last[a]).item()) < 1e-4, "left padding must not move the verdict"
    with pytest.raises(ValueError, match="one token"):
        comparison.next_token_margin(model, tok, texts, "A", "no such token")


def test_cache_write_keeps_the_first_complete_copy(tmp_path):
    # Two processes building the same entry: the second finds it in place, discards its copy, and does not fail.
    target = tmp_path / "entry"

    def writer(text):
        def save(folder):
            folder.mkdir()
            (folder / "weights").write_text(text)
        return save

    cache.atomic_save(target, writer("first"))
    cache.atomic_save(target, writer("second"))
    assert (target / "weights").read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["entry"]
