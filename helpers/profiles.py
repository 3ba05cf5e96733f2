"""The profile table: one place that maps ``tiny`` (CPU, offline) and ``t4`` (Colab/Kaggle) to models and budgets.

Hub ids live here and in the notebooks' parameters cells, nowhere else. ``tiny:NAME`` ids are the course's
own models (``helpers.tiny``); every other id is loaded from the Hub by the same ``from_pretrained`` code.

Introduced in 00_welcome.ipynb.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace

STEP_CAP_VARIABLE = "COURSE_STEP_CAP"  # set by `python -m course run --stand-ins`: every step count capped
# A model id "RECIPE:ID" is a course recipe (helpers.recipes) applied to ID, trained once and cached: "sft:" lesson
# 03's SFT (full weights), "sft-lora:" the same with a merged LoRA adapter (for a model whose full fine-tuning does not
# fit a T4), "rm:" lesson 07's reward model, "dpo:" lesson 08's DPO. ID may itself be a recipe id ("rm:sft:X").
RECIPES = ("sft", "sft-lora", "rm", "dpo")


def split_recipe(model_id: str) -> tuple[str | None, str]:
    """``("sft", "Qwen/Qwen2.5-0.5B")`` for ``"sft:Qwen/Qwen2.5-0.5B"``; ``(None, model_id)`` for any other id."""
    recipe, _, rest = model_id.partition(":")
    return (recipe, rest) if recipe in RECIPES and rest else (None, model_id)


def downloaded_id(model_id: str) -> str:
    """The Hub (or tiny) model at the bottom of a recipe id: ``"rm:sft:X"`` → ``"X"``."""
    recipe, rest = split_recipe(model_id)
    return model_id if recipe is None else downloaded_id(rest)


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    base_model: str  # the model SFT and LoRA start from
    sft_model: str  # the course-tuned model the alignment lessons (07-10, 12, 18) and RAG (02) start from: lesson 03's recipe
    qlora_model: str  # the model QLoRA loads in 4 bits
    pretrain_size: str  # helpers.tiny.SIZES entry pretrained from scratch in lesson 01
    pretrain_steps: int
    seq_len: int  # tokens per pretraining row / max SFT length
    batch_size: int
    sft_steps: int
    sft_lr: float
    lora_steps: int
    lora_lr: float
    lora_r: int
    eval_rows: int  # held-out rows scored before/after training
    rm_steps: int  # reward-model training steps (lesson 07)
    rm_lr: float
    best_of_n: int  # samples per prompt for best-of-n (lesson 07)
    rl_temperature: float  # sampling temperature of best-of-n, PPO rollouts and GRPO groups (lessons 07, 09, 10)
    dpo_steps: int  # preference-tuning steps of DPO and of its variant (lesson 08)
    dpo_lr: float  # LoRA learning rate for DPO and its variant
    dpo_beta: float  # DPO's β: how far the policy may move from the reference
    ppo_steps: int  # PPO updates, each on a fresh batch of rollouts (lesson 09)
    ppo_lr: float  # the policy's learning rate in PPO (full fine-tuning)
    kl_coef: float  # weight of the per-token KL penalty against the reference in PPO's reward
    grpo_steps: int  # GRPOTrainer steps, each on a fresh batch of sampled groups (lesson 10)
    grpo_lr: float  # the policy's learning rate in GRPO (full fine-tuning)
    teacher_model: str  # the teacher of lesson 06 (knowledge distillation)
    student_model: str  # lesson 06's student: smaller, the teacher's tokenizer, pretrained only
    distill_steps: int  # steps of every student in lesson 06
    distill_lr: float  # the students' learning rate (full fine-tuning); the on-policy phase uses a tenth
    distill_batch_size: int
    on_policy_steps: int  # the last steps of lesson 06's third student, on-policy with TRL's GKDTrainer
    inference_model: str  # the model the inference lessons (13-16) decode, quantize and serve
    draft_model: str  # a small model with the inference model's tokenizer, speculative decoding's draft (lesson 15)
    encoder_model: str  # a masked-LM encoder turned into a sentence embedder (lesson 02)
    contrastive_steps: int  # in-batch-negative (InfoNCE) training steps of the embedder (lesson 02)
    contrastive_lr: float
    reader_steps: int  # steps teaching the SFT model to answer from a retrieved passage (lesson 02's RAG)
    reader_lr: float
    reasoning_model: str  # the model both students of lesson 11 start from (answer-only and trace SFT), then GRPO
    cot_steps: int  # SFT steps of each lesson-18 student: the same budget for both
    cot_lr: float
    reasoning_rl_steps: int  # GRPO steps from the trace student (lesson 11)
    reasoning_rl_lr: float
    reasoning_temperature: float  # sampling temperature of lesson 11's self-consistency and GRPO groups
    reasoning_rl_accumulation: int  # lesson 11's GRPO batch taken in this many forward-backward passes (GPU memory)
    dapt_steps: int  # LoRA continued pretraining on the domain corpus (lesson 20)
    dapt_lr: float
    domain_steps: int  # LoRA SFT on the domain's questions and reader rows (lesson 20)
    domain_lr: float

    def with_overrides(self, **overrides) -> Profile:
        """A copy with the non-None overrides applied (the notebooks' parameters)."""
        unknown = set(overrides) - set(asdict(self))
        if unknown:
            raise ValueError(f"unknown profile field(s) {sorted(unknown)}; fields are {sorted(asdict(self))}")
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def capped(self, steps: int) -> Profile:
        """A copy whose every ``*_steps`` count is at most ``steps``, that scores at most ``4 * steps`` rows and
        pretrains the tiny ``base`` size: the t4 branch run on CPU with stand-ins (``python -m course run --profile
        t4 --stand-ins``), where only whether each cell runs is checked."""
        fields = asdict(self)
        capped = {k: min(v, steps) for k, v in fields.items() if k.endswith("_steps")}
        return replace(self, **capped, eval_rows=min(self.eval_rows, 4 * steps), pretrain_size="base")


PROFILES = {
    "tiny": Profile(
        name="tiny",
        description="CPU, offline: the course's own 0.9M-parameter LLaMA and shipped data",
        base_model="tiny:base",
        sft_model="tiny:sft",
        qlora_model="tiny:base",
        pretrain_size="base",
        pretrain_steps=300,
        seq_len=128,
        batch_size=16,
        # held-out 96.7-99.2 % over seeds 0-2 x kernel sets default/avx2 (python -m course matrix --only 03). It was
        # 70-95 % with two training phrasings and 300 steps: how well the answers carried over to the unseen phrasing
        # was a draw (sums of training pairs 66-95 %). Six phrasings and 500 steps steady it. Sums of pairs no row
        # answers stay a draw (20-95 %, sft/unseen.jsonl: not in the test split). Did not steady it: lr
        # 1e-3/5e-3, batch 32, NEFTune, sums x3/x5, weight averaging, answers written "a + b = c", pairs up to 19 + 19
        sft_steps=500,
        sft_lr=3e-3,
        lora_steps=300,  # 55-65 % held-out (seeds 0, 1); at 6e-3 it stalls (9 %)
        lora_lr=3e-3,
        lora_r=16,
        eval_rows=250,
        rm_steps=300,  # held-out pairwise accuracy 90 % (seeds 0, 1); 400 steps did not do better
        rm_lr=5e-4,  # at 1e-3: 87-93 %, and best-of-n gained 4-9 points where it gains 7-11 here
        best_of_n=8,
        # at 1.5 the SFT model's samples are ~0.9 right (little for best-of-n, PPO or GRPO to gain); at 2.0 ~0.6
        rl_temperature=2.0,
        dpo_steps=100,  # hallucination 100 -> 10 / 3 % (seeds 0, 1), task accuracy unchanged; ~22 s
        dpo_lr=2e-3,
        dpo_beta=0.1,
        ppo_steps=40,  # rollouts at T = 2.0: free KL 2.4-6x the penalised run's (seeds 0 1 x default avx2); ~20 s a run
        ppo_lr=6e-4,
        kl_coef=1.0,
        grpo_steps=150,  # T = 2.0: held-out pass@1 +0.15-0.26, pass@8 -0.01-+0.14 (seeds 0 1 x default avx2); ~40 s
        grpo_lr=5e-4,  # at 1e-3 no better and more damage to sums; at 2e-3 the policy collapses
        teacher_model="tiny:sft",
        student_model="tiny:draft",  # 0.15M, a sixth of the teacher
        distill_steps=400,
        distill_lr=5e-3,  # 1e-2: distilled students 38-63 % (seeds 0, 1); 3e-3 needs more steps
        distill_batch_size=32,  # 16: distilled students 64-80 % after 400 steps
        on_policy_steps=50,
        inference_model="tiny:large",  # ~8M: large enough that a decode step costs more than Python's overhead
        draft_model="tiny:draft",  # 0.15M, 52x smaller
        encoder_model="tiny:encoder",  # BERT, 0.82M, masked-LM pretrained on the corpus (helpers.tiny)
        contrastive_steps=150,  # batch 32; held-out recall@1 0 -> ~0.5 (lr 3e-3: ~0.44)
        contrastive_lr=1e-3,
        reader_steps=120,  # right passage 100 %, a wrong one ~chance (400 steps did not teach names: helpers.tasks.Fact)
        reader_lr=3e-3,
        reasoning_model="tiny:base",  # pretrained only: it has read every single-digit sum, never a question of three
        # held out, seeds 0-2 x kernel sets (default, avx2, avx512): answer-only 35-76 %, trace 72-99 % (valid 68-99 %);
        # at 200 steps, or without the trace's rewrite of the question, the trace student was a draw (34-99 %)
        cot_steps=300,
        cot_lr=3e-3,
        reasoning_rl_steps=50,  # 16 prompts x 4 samples a step; ~30 s
        reasoning_rl_lr=2e-4,  # 1e-4 for 100 steps of 8 prompts: as good, slower; 3e-4 for 100 steps collapsed a model
        # the trace student's samples at 1.3 were right ~84 % of the time (300 steps): GRPO then gained +0.04 pass@1, at
        # the claim's bound; at 1.5 (seeds 0-2 x default, avx2, avx512) they are right 30-64 % and GRPO gains +7-17 points
        reasoning_temperature=1.5,
        reasoning_rl_accumulation=1,
        dapt_steps=100,  # domain perplexity -~100 % (an invented field), general +3 % with a quarter replay
        dapt_lr=3e-3,
        domain_steps=400,  # held-out with retrieval after DAPT: 0.94-1.00 at 400 steps (seeds x kernel sets), 0.62-1.00 at 300
        domain_lr=3e-3,
    ),
    "t4": Profile(
        name="t4",
        description="Colab/Kaggle T4 (15 GB): real Hub models",
        base_model="Qwen/Qwen2.5-0.5B",
        # lesson 03's recipe on the base model, trained once per runtime and cached (helpers.recipes): Qwen's own
        # instruct model has never seen the course's invented countries or its one-word answers (near 0 exact match)
        sft_model="sft:Qwen/Qwen2.5-0.5B",
        qlora_model="Qwen/Qwen2.5-1.5B",
        pretrain_size="small",
        pretrain_steps=1500,
        seq_len=256,
        batch_size=8,
        sft_steps=300,
        sft_lr=2e-5,
        lora_steps=300,
        lora_lr=2e-4,
        lora_r=16,
        eval_rows=250,
        rm_steps=200,
        rm_lr=1e-5,
        best_of_n=8,
        rl_temperature=1.0,  # a 150k-token vocabulary sampled at 2.0 with top_k=0 is mostly noise
        dpo_steps=200,
        dpo_lr=5e-5,
        dpo_beta=0.1,
        ppo_steps=100,
        ppo_lr=1e-6,
        kl_coef=0.2,
        grpo_steps=200,
        grpo_lr=1e-6,
        # the same recipe with a LoRA adapter, merged: full fine-tuning of 1.5B parameters with AdamW needs ~25 GB
        teacher_model="sft-lora:Qwen/Qwen2.5-1.5B-Instruct",
        student_model="Qwen/Qwen2.5-0.5B",
        distill_steps=300,
        distill_lr=2e-5,
        distill_batch_size=8,
        on_policy_steps=50,
        inference_model="Qwen/Qwen2.5-1.5B-Instruct",
        draft_model="Qwen/Qwen2.5-0.5B-Instruct",
        encoder_model="google-bert/bert-base-uncased",  # masked-LM pretrained only, not yet a sentence embedder
        contrastive_steps=300,
        contrastive_lr=3e-5,
        reader_steps=100,
        reader_lr=2e-5,
        reasoning_model="Qwen/Qwen2.5-0.5B-Instruct",  # an instruct model: it already writes steps when asked
        cot_steps=150,
        cot_lr=2e-5,
        reasoning_rl_steps=100,
        reasoning_rl_lr=1e-6,
        reasoning_temperature=0.8,  # a 150k-token vocabulary sampled without top-k: above ~1 mostly noise
        reasoning_rl_accumulation=4,  # 64 completions' activations and logits at once: ~15 GB (course/budget.py)
        dapt_steps=200,
        dapt_lr=2e-4,
        domain_steps=300,
        domain_lr=2e-4,
    ),
}


# The architecture of every Hub model the t4 profile names, from its config.json: `python -m course gpu-check`
# builds random-weight stand-ins of exactly these shapes (helpers.standins), so a maintainer can measure time and
# memory on any CUDA machine without downloading. A test checks that every Hub id above has an entry here.
HUB_SHAPES = {
    "Qwen/Qwen2.5-0.5B": dict(model_type="qwen2", hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                              num_attention_heads=14, num_key_value_heads=2, vocab_size=151936,
                              max_position_embeddings=32768, rope_theta=1_000_000.0, rms_norm_eps=1e-6,
                              tie_word_embeddings=True),
    "Qwen/Qwen2.5-1.5B": dict(model_type="qwen2", hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                              num_attention_heads=12, num_key_value_heads=2, vocab_size=151936,
                              max_position_embeddings=131072, rope_theta=1_000_000.0, rms_norm_eps=1e-6,
                              tie_word_embeddings=True),
}
# encoders (BERT class): lesson 02's masked-LM model; MiniLM, a sentence encoder of the same class, for comparison
HUB_SHAPES["google-bert/bert-base-uncased"] = dict(
    model_type="bert", hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
    vocab_size=30522, max_position_embeddings=512, type_vocab_size=2)
HUB_SHAPES["sentence-transformers/all-MiniLM-L6-v2"] = dict(
    model_type="bert", hidden_size=384, intermediate_size=1536, num_hidden_layers=6, num_attention_heads=12,
    vocab_size=30522, max_position_embeddings=512, type_vocab_size=2)
HUB_SHAPES["Qwen/Qwen2.5-0.5B-Instruct"] = dict(HUB_SHAPES["Qwen/Qwen2.5-0.5B"])  # same config.json architecture
HUB_SHAPES["Qwen/Qwen2.5-1.5B-Instruct"] = dict(HUB_SHAPES["Qwen/Qwen2.5-1.5B"])


def hub_ids(profile: str = "t4") -> list[str]:
    """The Hub model ids a profile loads (its ``*_model`` fields that are not ``tiny:`` models; a recipe id's model).

    Introduced in 00_welcome.ipynb."""
    fields = asdict(PROFILES[profile])
    ids = {downloaded_id(v) for k, v in fields.items() if k.endswith("_model")}
    return sorted(i for i in ids if not i.startswith("tiny:"))


def resolve_profile(profile: str) -> str:
    """``auto`` → ``t4`` when CUDA is present, else ``tiny``; other names are checked. Introduced in 00_welcome.ipynb."""
    if profile == "auto":
        import torch

        return "t4" if torch.cuda.is_available() else "tiny"
    if profile not in PROFILES:
        raise ValueError(f"unknown PROFILE {profile!r}; choose 'auto' or one of {sorted(PROFILES)}")
    return profile


def get_profile(name: str, **overrides) -> Profile:
    """The resolved profile with a notebook's non-None overrides; every step count capped when
    ``$COURSE_STEP_CAP`` is set (``Profile.capped``). Introduced in 00_welcome.ipynb."""
    profile = PROFILES[resolve_profile(name)].with_overrides(**overrides)
    cap = os.environ.get(STEP_CAP_VARIABLE)
    return profile.capped(int(cap)) if cap else profile
