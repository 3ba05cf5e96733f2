import torch
from transformers import AutoTokenizer, LlamaForSequenceClassification

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
    config = tiny.llama_config("draft", tok)
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
