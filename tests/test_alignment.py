import torch
from transformers import AutoTokenizer, LlamaForCausalLM, LlamaForSequenceClassification

from helpers import alignment, data, tiny


def test_hallucination_rate_counts_unknown_rows_not_declined():
    rows = [{"task": "unknown"}, {"task": "unknown"}, {"task": "capital"}, {"task": "unknown"}]
    replies = ["i don't know", "Noka", "Noka", "I don't know."]
    assert alignment.hallucination_rate(replies, rows) == 1 / 3
    assert alignment.declines(" I DON'T know. ") and not alignment.declines("I know.")


def test_as_sft_rows_keeps_the_chosen_reply():
    pair = data.load_split("preference", "test")[0]
    row = alignment.as_sft_rows([pair])[0]
    assert row["messages"] == pair["prompt"] + pair["chosen"] and row["task"] == pair["task"]


def test_reward_scores_do_not_depend_on_padding():
    tok = AutoTokenizer.from_pretrained(tiny.tokenizer_path())
    config = tiny.model_config("draft", tok)
    config.num_labels, config.pad_token_id = 1, tok.pad_token_id
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(config)
    pairs = data.load_split("preference", "test")[:6]
    convs = [p["prompt"] + p["chosen"] for p in pairs] + [p["prompt"] + p["rejected"] for p in pairs]
    batched = alignment.reward_scores(model, tok, convs, batch_size=12)
    alone = torch.cat([alignment.reward_scores(model, tok, [c]) for c in convs])
    assert batched.shape == (12,) and torch.allclose(batched, alone, atol=1e-5)
    result = alignment.pairwise_accuracy(model, tok, pairs)
    assert result["accuracy"] == sum(batched[:6] > batched[6:]).item() / 6


def test_reply_logps_sum_the_reply_tokens_after_the_prompt():
    tok = AutoTokenizer.from_pretrained(tiny.tokenizer_path())
    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny.model_config("draft", tok)).eval()
    pairs = data.load_split("preference", "test")[::50]
    prompts, replies = [p["prompt"] for p in pairs], [p["rejected"] for p in pairs]
    batched = alignment.reply_logps(model, tok, prompts, replies, batch_size=len(pairs))
    for i, (prompt, reply) in enumerate(zip(prompts, replies)):
        # by hand: the whole conversation tokenized at once, reply tokens = those after the prompt's tokens
        head = tok(tok.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False))["input_ids"]
        ids = torch.tensor([tok(tok.apply_chat_template(prompt + reply, tokenize=False))["input_ids"]])
        assert ids[0, :len(head)].tolist() == head
        with torch.no_grad():
            token_logps = model(ids).logits[0, :-1].log_softmax(-1).gather(-1, ids[0, 1:, None]).squeeze(-1)
        expected = token_logps[len(head) - 1:].sum()  # position t predicts token t + 1
        assert torch.allclose(batched[i], expected, atol=1e-4), (i, batched[i], expected)
    assert (batched < 0).all()


def test_pair_accuracy_counts_per_task_and_margin():
    pairs = [{"task": "add"}, {"task": "add"}, {"task": "unknown"}, {"task": "unknown"}]
    result = alignment.pair_accuracy(torch.tensor([1.0, 0.0, 3.0, 2.0]), torch.tensor([0.0, 1.0, 1.0, 2.0]), pairs)
    assert result["accuracy"] == 2.5 / 4 and result["per_task"] == {"add": 0.5, "unknown": 0.75}  # a tie is half
    assert abs(result["margin"] - 0.5) < 1e-6
