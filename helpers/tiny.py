"""Tiny models the course builds itself: a byte-level BPE tokenizer, LLaMA-architecture causal LMs and a BERT
encoder.

Everything is deterministic and cached on disk under ``cache_dir()`` keyed by a hash of
(config, data, seed, steps), so a test session or a learner builds each model once.
``model_path("base")`` returns a folder that ``AutoModelForCausalLM.from_pretrained`` loads (``"encoder"``:
``AutoModelForMaskedLM``): the same code path that loads a Hub id in the ``t4`` profile.

Introduced in 01_tokenizer_and_pretraining.ipynb.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from helpers.cache import atomic_save, cache_dir, entry_key
from helpers.data import load_chats, load_corpus
from helpers.paths import DATA_DIR
from helpers.training import PretrainRecipe, lr_at, masked_batches, pack_corpus, pretrain

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]
# Special tokens added after training, per tokenizer version: version N is version N - 1 with these appended, their
# ids after the trained vocabulary, so no id a model of an earlier version was trained on changes, and each version
# is its own cache entry: a new special token rebuilds only the models that use the new version.
TOKENIZER_VERSIONS = {
    1: {},  # the trained BPE: what every causal model (LlamaForCausalLM) is built on
    2: {"mask_token": "<|mask|>"},  # masked-LM encoders: the token DataCollatorForLanguageModeling puts in
}

# ChatML with {% generation %} markers so TRL can compute the loss on assistant turns only.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}{% generation %}{{- message['content'] + '<|im_end|>' }}{% endgeneration %}{{- '\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


# What each architecture is built as (transformers class names): its config, the model its pretraining objective
# trains, and the tokenizer version it needs. A new architecture (another encoder, a mixture of experts) is one entry
# here and one branch in ``model_config``.
ARCHITECTURES = {
    "llama": {"config": "LlamaConfig", "model": "LlamaForCausalLM", "objective": "causal", "tokenizer": 1},
    "bert": {"config": "BertConfig", "model": "BertForMaskedLM", "objective": "masked", "tokenizer": 2},
}


@dataclass(frozen=True)
class TinySize:
    """A named size: its architecture (``ARCHITECTURES``) and shape; the shape fields map one-to-one onto the
    architecture's config (``model_config``)."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    max_position_embeddings: int = 256
    architecture: str = "llama"

    def shape(self) -> dict:
        """The config fields: every field but ``architecture``."""
        fields = asdict(self)
        fields.pop("architecture")
        return fields


SIZES = {
    "base": TinySize(128, 384, 4, 4, 2),  # the course's default model and teacher (~0.9M parameters)
    "draft": TinySize(64, 192, 2, 2, 1),  # a smaller student / draft model sharing the tokenizer
    "small": TinySize(512, 1536, 8, 8, 4, 512),  # for the t4 profile's pretraining lesson (~28M)
    # the inference lessons' target (~8M): deep enough that a decode step costs more than Python's overhead, one KV
    # head for four query heads (GQA: a 4x smaller KV cache than multi-head attention), 512 positions; every matrix
    # a multiple of 256 wide, as llama.cpp's k-quants need (lesson 14; else they fall back to 5-bit types). Measured
    # against 512x6 (13.8M) and 256x12 (11.6M): this one gives prompt lookup (lesson 15) the clearest speed-up.
    "large": TinySize(256, 1024, 8, 4, 1, 512),
    # a bidirectional encoder pretrained with masked-LM on the same corpus (multi-head: BERT has no GQA)
    "encoder": TinySize(128, 384, 4, 4, 4, 256, architecture="bert"),
}


# base: 1,000 steps, so that it knows the corpus's facts (sums, capitals) well enough for LoRA on frozen embeddings
# to learn the tasks in 300 steps (lesson 04). Measured: a 300-step base needed 1,000 LoRA steps, a 600-step one
# gave 45 % after 300, this one 55-65 % (seeds 0, 1; on the corpus with declining dialogues, LoRA lr 3e-3).
DEFAULT_RECIPES = {"base": PretrainRecipe(steps=1000), "draft": PretrainRecipe(steps=200),
                   "small": PretrainRecipe(steps=2000), "large": PretrainRecipe(steps=200, lr=2e-3),
                   "encoder": PretrainRecipe(steps=600, lr=1e-3)}
VOCAB_SIZE = 1024


def _digest(*parts: object) -> str:
    """A model's cache key: the parts plus the source of the build functions, so a code change rebuilds."""
    return entry_key((model_config, pack_corpus, lr_at, pretrain, masked_batches), parts=parts)


def _corpus_digest(data_dir: Path, name: str = "train.txt") -> str:
    return entry_key(files=(Path(data_dir) / "corpus" / name,))


def train_tokenizer(texts: list[str], vocab_size: int = VOCAB_SIZE):
    """Train a byte-level BPE on ``texts`` and wrap it as a transformers fast tokenizer with the chat template.

    Introduced in 01_tokenizer_and_pretraining.ipynb.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    # A word after a newline gets the same token as after a space ("Ġpebble"), so an answer can copy
    # words from the question token by token (decoding shows that space; replies are stripped).
    # Only before a word: a prompt ending in "assistant\n" must not end in a lone "Ġ" token, or generation
    # would start from a token sequence training never showed (training sees "\n", "Ġ17").
    bpe.normalizer = normalizers.Replace(Regex(r"\n(?=\S)"), "\n ")
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        unk_token=None,
        chat_template=CHAT_TEMPLATE,
        model_max_length=512,
    )


def tokenizer_path(data_dir: Path = DATA_DIR, vocab_size: int = VOCAB_SIZE, version: int = 1) -> Path:
    """Build (once) and return the folder of the course tokenizer, ``version`` of ``TOKENIZER_VERSIONS`` (2: with a
    mask token). Introduced in 01_tokenizer_and_pretraining.ipynb."""
    if version not in TOKENIZER_VERSIONS:
        raise ValueError(f"no tokenizer version {version}; versions are {sorted(TOKENIZER_VERSIONS)}")
    if version > 1:
        previous = tokenizer_path(data_dir, vocab_size, version - 1)
        folder = previous.with_name(f"{previous.name}-v{version}")
        if not (folder / "tokenizer.json").exists():
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(previous)
            tok.add_special_tokens(TOKENIZER_VERSIONS[version])
            atomic_save(folder, tok.save_pretrained)
        return folder
    key = entry_key((train_tokenizer,), parts=(vocab_size, SPECIAL_TOKENS, CHAT_TEMPLATE, _corpus_digest(data_dir)))
    folder = cache_dir() / f"tokenizer-{key}"
    if not (folder / "tokenizer.json").exists():
        tok = train_tokenizer(load_corpus("train", data_dir), vocab_size)
        atomic_save(folder, tok.save_pretrained)
    return folder


def model_config(size: str | TinySize, tokenizer):
    """The transformers config of a named size (or a ``TinySize``) on ``tokenizer``: a ``LlamaConfig`` for a causal
    LM, a ``BertConfig`` for an encoder (its tokenizer must have a mask token: version 2). Introduced in
    01_tokenizer_and_pretraining.ipynb."""
    import transformers

    spec = SIZES[size] if isinstance(size, str) else size
    if spec.architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {spec.architecture!r}; known: {sorted(ARCHITECTURES)}")
    config_class = getattr(transformers, ARCHITECTURES[spec.architecture]["config"])
    fields = spec.shape()
    if spec.architecture == "bert":
        if fields.pop("num_key_value_heads") != spec.num_attention_heads:
            raise ValueError("a BERT encoder has one key/value head per query head: num_key_value_heads must equal "
                             "num_attention_heads")
        if tokenizer.mask_token_id is None:
            raise ValueError("a masked-LM encoder needs a mask token: use tokenizer_path(version=2)")
        return config_class(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, type_vocab_size=1,
                            **fields)
    return config_class(
        vocab_size=len(tokenizer),
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **fields,
    )


def model_class(size: str | TinySize):
    """The transformers model class a size is pretrained as (``ARCHITECTURES``): ``LlamaForCausalLM``,
    ``BertForMaskedLM``. Introduced in 01_tokenizer_and_pretraining.ipynb."""
    import transformers

    spec = SIZES[size] if isinstance(size, str) else size
    return getattr(transformers, ARCHITECTURES[spec.architecture]["model"])


def model_path(name: str = "base", recipe: PretrainRecipe | None = None, data_dir: Path = DATA_DIR,
               progress: bool = True) -> Path:
    """Return the folder of the pretrained tiny model ``name``, building it on first use.

    The folder holds the model and its tokenizer (``save_pretrained``) and ``build.json`` with the
    recipe, losses and build time. A causal LM is pretrained on next tokens, an encoder on masked tokens
    (``masked_batches``). Introduced in 01_tokenizer_and_pretraining.ipynb.
    """
    from transformers import AutoTokenizer

    recipe = recipe or DEFAULT_RECIPES[name]
    spec = SIZES[name]
    architecture = ARCHITECTURES[spec.architecture]
    tok_dir = tokenizer_path(data_dir, version=architecture["tokenizer"])
    key = _digest(asdict(spec), asdict(recipe), tok_dir.name, _corpus_digest(data_dir), _corpus_digest(data_dir, "chat.jsonl"))
    folder = cache_dir() / f"tiny-{name}-{key}"
    if (folder / "build.json").exists():
        return folder
    start = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(tok_dir)
    torch.manual_seed(recipe.seed)
    model = model_class(name)(model_config(name, tok))
    # The stories plus generic ChatML dialogues, as in a real base model's pretraining mix (see data.build_chats).
    chats = [tok.apply_chat_template(m, tokenize=False) for m in load_chats(data_dir)]
    rows = pack_corpus(load_corpus("train", data_dir) + chats, tok, recipe.seq_len)
    collate = masked_batches(tok) if architecture["objective"] == "masked" else None
    losses = pretrain(model, rows, recipe, progress=progress, collate=collate)
    info = {"name": name, "size": asdict(spec), "recipe": asdict(recipe), "losses": losses,
            "parameters": model.num_parameters(), "build_seconds": round(time.perf_counter() - start, 1)}

    def save(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "build.json").write_text(json.dumps(info, indent=1))

    atomic_save(folder, save)
    return folder
