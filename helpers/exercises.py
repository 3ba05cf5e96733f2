"""Exercise checkers: each notebook ends with exercises whose answers a learner fills in and checks here.

An answer left as ``None`` counts as "not tried yet" and never fails a headless run.
Introduced in 00_welcome.ipynb.
"""

from __future__ import annotations

import math
from collections.abc import Callable

CHECKERS: dict[str, Callable[..., tuple[bool, str]]] = {}  # fn(answer, **context) -> (ok, hint)
SOLVERS: dict[str, Callable] = {}  # fn(**context) -> the answer


def exercise(name: str, solve: Callable, hint: str, rel: float | None = None) -> None:
    """Register an exercise: ``solve(**context)`` computes its answer (what ``solution`` shows); a learner's answer
    passes when it equals that (``rel`` None) or is within ``rel`` of it. ``hint``, formatted with the context, says
    how to get there."""

    def checker(answer, **context):
        expected = solve(**context)
        ok = answer == expected if rel is None else _close(answer, expected, rel)
        return ok, hint.format(**context)

    CHECKERS[name], SOLVERS[name] = checker, solve


def check(name: str, answer, **context) -> bool | None:
    """Check a learner's answer and print ✅ or ❌ with a hint. Returns None when the answer is still None.

    Introduced in 00_welcome.ipynb.
    """
    if name not in CHECKERS:
        raise KeyError(f"no exercise {name!r}; known: {sorted(CHECKERS)}")
    if answer is None:
        print(f"{name}: not tried yet (replace None with your answer)")
        return None
    ok, hint = CHECKERS[name](answer, **context)
    print(f"{name}: {'✅ correct' if ok else '❌ not yet'}" + ("" if ok else f" — {hint} (still stuck? the "
                                                                          "commented exercises.solution line below)"))
    return ok


def _close(a, b, rel=1e-3) -> bool:
    return math.isclose(float(a), float(b), rel_tol=rel, abs_tol=1e-9)


def _attention_weights(config):
    head_dim = config.hidden_size // config.num_attention_heads
    q_o = 2 * config.hidden_size * config.num_attention_heads * head_dim
    k_v = 2 * config.hidden_size * config.num_key_value_heads * head_dim
    return config.num_hidden_layers * (q_o + k_v)


def _group_advantage(rewards, index):
    mean = sum(rewards) / len(rewards)
    std = math.sqrt(sum((r - mean) ** 2 for r in rewards) / (len(rewards) - 1))
    return (rewards[index] - mean) / (std + 1e-4)


def _top_p_kept(probs, p):
    total, kept = 0.0, 0
    for q in sorted(probs, reverse=True):
        if total >= p:
            break
        total, kept = total + q, kept + 1
    return kept


def _step_tokens(guesses, choices):
    n = 0
    while n < len(guesses) and guesses[n] == choices[n]:
        n += 1
    return n + 1


# --- 00_welcome ------------------------------------------------------------------------------
exercise("00.fast_track_ready", lambda syllabus: sum(syllabus.lessons[n].status == "ready"
                                                     for n in syllabus.paths["fast-track"]),
         "count the lessons of paths['fast-track'] whose status is 'ready'")
exercise("00.test_rows_add", lambda rows: sum(r["task"] == "add" for r in rows),
         "filter the test rows on row['task'] == 'add'")
# --- 01_tokenizer_and_pretraining -------------------------------------------------------------
exercise("01.attention_params", _attention_weights,
         "per layer: q and o are hidden×(heads·head_dim), k and v hidden×(kv_heads·head_dim); no biases")
exercise("01.ppl_from_loss", lambda loss: math.exp(loss), "perplexity is exp(mean cross-entropy in nats)", rel=1e-3)
# --- 03_sft -----------------------------------------------------------------------------------
exercise("03.masked_fraction", lambda labels: sum(1 for t in labels if t == -100) / len(labels),
         "count labels equal to -100 and divide by the length", rel=1e-2)
# --- 04_lora_qlora ----------------------------------------------------------------------------
exercise("04.lora_params", lambda d_in, d_out, r: r * (d_in + d_out), "LoRA adds A (r×d_in) and B (d_out×r)")
exercise("04.nf4_bytes", lambda n_weights, block_size=64: n_weights / 2 + 4 * n_weights / block_size,
         "4 bits per weight plus one fp32 absmax scale per block of 64", rel=0.02)
# --- 05_data_curation --------------------------------------------------------------------------
exercise("05.jaccard", lambda a, b: len(set(a) & set(b)) / len(set(a) | set(b)),
         "shared shingles over all distinct shingles", rel=1e-3)
exercise("05.lsh_candidate", lambda s, bands, rows: 1 - (1 - s ** rows) ** bands,
         "a band matches with probability s^r; the pair is a candidate unless all b bands miss", rel=1e-2)
# --- 06_distillation ---------------------------------------------------------------------------
exercise("06.t_squared", lambda T: T ** 2, "softening by T scales the soft-target gradients by 1/T²", rel=1e-3)
exercise("06.softmax_temperature",
         lambda logits, T: math.exp(logits[0] / T) / sum(math.exp(z / T) for z in logits),
         "softmax of the logits divided by T", rel=1e-2)
exercise("06.kept_share", lambda teacher, student: student / teacher,
         "the student's accuracy divided by the teacher's", rel=1e-2)
# --- 07_reward_model --------------------------------------------------------------------------
exercise("07.bt_probability", lambda margin: 1 / (1 + math.exp(-margin)),
         "Bradley-Terry: P(chosen preferred) = sigmoid(r_chosen - r_rejected)", rel=1e-3)
exercise("07.best_of_n_ceiling", lambda p, n: 1 - (1 - p) ** n,
         "a perfect judge fails only when all n samples are wrong: (1 - p)^n", rel=1e-3)
# --- 08_dpo -----------------------------------------------------------------------------------
exercise("08.implicit_reward", lambda beta, policy_logp, reference_logp: beta * (policy_logp - reference_logp),
         "r = β · (log π(y|x) − log π_ref(y|x))", rel=1e-3)
exercise("08.dpo_loss", lambda reward_chosen, reward_rejected: math.log1p(math.exp(-(reward_chosen - reward_rejected))),
         "L = −log σ(r_c − r_r): β is already inside the implicit rewards", rel=1e-3)
# --- 09_ppo_rlhf ------------------------------------------------------------------------------
exercise("09.clipped_objective",
         lambda ratio, advantage, clip: min(ratio * advantage, max(min(ratio, 1 + clip), 1 - clip) * advantage),
         "min(ρ·A, clip(ρ, 1 − ε, 1 + ε)·A): a positive advantage is capped at (1 + ε)·A", rel=1e-3)
exercise("09.last_token_advantage", lambda reward, value: reward - value,
         "at the last token there is no next value: A = δ = r − V", rel=1e-3)
# --- 10_grpo ----------------------------------------------------------------------------------
exercise("10.group_advantage", _group_advantage,
         "A = (r − mean) / (std + 1e-4), the group's mean and its std with n − 1 in the denominator", rel=1e-2)
exercise("10.useless_group", lambda group_size: 0.0,
         "all {group_size} rewards equal their mean: every advantage is 0, no gradient", rel=1e-3)
# --- 12_evaluation -----------------------------------------------------------------------------
exercise("12.ci_half_width", lambda correct, n: 1.96 * math.sqrt(correct / n * (1 - correct / n) / n),
         "1.96 × √(p(1 − p)/n) with p = correct / n", rel=2e-2)
exercise("12.win_rate", lambda wins, ties, losses: (wins + ties / 2) / (wins + ties + losses),
         "(wins + ties / 2) / all prompts", rel=1e-3)
exercise("12.flip_rate", lambda pairs, consistent: (pairs - consistent) / pairs,
         "a flip is a pair whose preferred reply changes when A and B swap: the pairs that were not consistent",
         rel=1e-3)
# --- 13_decoding_kv_cache ---------------------------------------------------------------------
exercise("13.kv_cache_bytes", lambda layers, kv_heads, head_dim, tokens, bytes_per_value:
         layers * 2 * kv_heads * head_dim * tokens * bytes_per_value,
         "layers × 2 (key and value) × kv_heads × head_dim × tokens × bytes per value", rel=1e-3)
exercise("13.top_p_kept", _top_p_kept,
         "add the largest probabilities until the sum reaches p; the token that reaches it stays")
# --- 14_quantization ---------------------------------------------------------------------------
exercise("14.bits_per_weight", lambda code_bits, block, scale_bits: code_bits + scale_bits / block,
         "the code's bits, plus the block's scale shared by its weights", rel=1e-3)
# --- 15_speculative_decoding ------------------------------------------------------------------
exercise("15.expected_tokens", lambda acceptance, k: (1 - acceptance ** (k + 1)) / (1 - acceptance),
         "1 + α + α² + … + α^k: the i-th guess counts only if all before it did", rel=1e-2)
exercise("15.step_tokens", _step_tokens,
         "the agreeing prefix of the guesses, plus the target's own token at the first disagreement")
# --- 16_serving --------------------------------------------------------------------------------
exercise("16.kv_blocks", lambda prompt_tokens, new_tokens, block_size:
         math.ceil((prompt_tokens + new_tokens) / block_size),
         "every token's keys and values live in a block; a partly filled last block still counts")
exercise("16.littles_law", lambda in_flight, latency_s: in_flight / latency_s,
         "requests in flight = throughput × time each spends in the system (Little's law)", rel=1e-2)
# --- 17_distributed_training -------------------------------------------------------------------
exercise("17.zero2_gb", lambda parameters, gpus: (2 * parameters + 14 * parameters / gpus) / 1e9,
         "ZeRO-2 keeps the bf16 weights whole (2 bytes each) and shards gradients and Adam's state (2 + 12 bytes)",
         rel=1e-2)
exercise("17.global_batch", lambda gpus, per_gpu: gpus * per_gpu,
         "every GPU takes its own rows: the global batch is their sum")
# --- 18_pruning ----------------------------------------------------------------------------------
exercise("18.dense_bytes", lambda rows, columns, bytes_per_weight: rows * columns * bytes_per_weight,
         "stored dense, a zero takes the bytes of any other weight")
exercise("18.neuron_weights", lambda hidden: 3 * hidden,
         "one row of gate_proj and of up_proj, one column of down_proj: hidden size each")
# --- 02_embeddings_retrieval_rag -----------------------------------------------------------------
exercise("02.negatives", lambda batch_size: batch_size - 1,
         "every other document of the batch is a negative: {batch_size} pairs, one of them the question's own")
exercise("02.pipeline_accuracy", lambda recall, when_right, when_wrong: recall * when_right + (1 - recall) * when_wrong,
         "the questions whose document was found (a share recall) answered at one rate, the rest at the other",
         rel=1e-3)
exercise("11.vote_tokens", lambda k, tokens: k * tokens, "k replies of {tokens:.1f} tokens each", rel=1e-3)
# --- 19_capstone_post_training ------------------------------------------------------------------
exercise("19.stages_rerun", lambda stages, changed: stages - changed + 1,
         "stage {changed} and every stage after it that reads it, directly or through another: here all of them")
exercise("19.win_rate", lambda wins, losses, ties: (wins + ties / 2) / (wins + losses + ties),
         "wins plus half the ties, over all prompts", rel=1e-3)
# --- 20_capstone_domain_adaptation ----------------------------------------------------------
exercise("20.ppl_drop", lambda before, after: 1 - after / before, "1 - after / before", rel=1e-3)
exercise("20.int8_ratio", lambda rows, columns: 4 * rows * columns / (rows * columns + 4 * rows),
         "4 bytes a weight, against 1 byte a weight plus 4 bytes a row: 4 * rows * columns / (rows * columns + "
         "4 * rows)", rel=1e-3)


def solution(name: str, **context):
    """Show the worked solution of exercise ``name`` for the same arguments ``check`` takes (without the answer):
    the reasoning (the checker's hint) and the value the checker computes; returns it. Introduced in
    00_welcome.ipynb."""
    if name not in SOLVERS:
        raise KeyError(f"no solution for {name!r}; known: {sorted(SOLVERS)}")
    answer = SOLVERS[name](**context)
    _, why = CHECKERS[name](answer, **context)
    shown = ", ".join(f"{k}={v!r:.60}" for k, v in context.items())
    print(f"{name} ({shown}):\n  how: {why}\n  answer: {answer!r}")
    return answer


# --- run-again exercises ---------------------------------------------------------------------------
# "Set X and run the notebook again": the check reads the rerun's own results. With the lesson's default parameters
# it says "not tried yet" (a headless run never fails on it); after the rerun it checks the outcome the exercise
# predicts, one that follows from the code, not from one machine's numbers.
RERUNS: dict[str, tuple[Callable, Callable, str]] = {}  # name -> (tried(**ctx), verify(**ctx) -> (ok, msg), how)


def rerun_exercise(name: str, tried: Callable, verify: Callable, how: str) -> None:
    """Register a run-again exercise: ``tried(**context)`` says whether the parameter was changed, ``verify`` checks
    the rerun's outcome; ``how`` says what to change."""
    RERUNS[name] = (tried, verify, how)


def check_rerun(name: str, **context) -> bool | None:
    """After the learner changed a parameter and ran the notebook again: print ✅ or ❌ with what the outcome shows.
    None (and "not tried yet") while the parameter has its default. Introduced in 06_distillation.ipynb."""
    if name not in RERUNS:
        raise KeyError(f"no run-again exercise {name!r}; known: {sorted(RERUNS)}")
    tried, verify, how = RERUNS[name]
    if not tried(**context):
        print(f"{name}: not tried yet ({how})")
        return None
    ok, message = verify(**context)
    print(f"{name}: {'✅' if ok else '❌ not as expected'} — {message}")
    return ok


def _alpha_one(alpha, results):
    distilled, hard = results["distilled"]["accuracy"], results["hard labels"]["accuracy"]
    if distilled == hard:
        return True, (f"both students {hard:.1%}: with ALPHA = 1 the distillation term weighs nothing, so the "
                      "'distilled' student trains on the hard-label loss, batches and start, and ends identical. "
                      "What beat the hard labels before was the teacher's probabilities")
    return False, (f"distilled {distilled:.1%}, hard labels {hard:.1%}: with ALPHA = 1 both train on the same loss, "
                   "batches and start and should end identical. Is the distillation term weighted by 1 - ALPHA?")


def _keep_half(keep, shares, sweep, pruned, baseline):
    if 1 - keep not in shares:
        return False, f"NEURON_SHARES {shares} has no {1 - keep:g} point to compare with: put it back"
    point = sweep[shares.index(1 - keep)]  # removing 50 % of the neurons in the sweep = keeping 50 % here
    ratio = pruned["perplexity"] / baseline["perplexity"]
    if pruned == point:
        return True, (f"keeping half the neurons is the sweep's 50 % point: accuracy {pruned['accuracy']:.1%} "
                      f"(dense {baseline['accuracy']:.1%}), perplexity x{ratio:.2f}. Little is lost, so the "
                      "recovery has little to win back; the lesson keeps fewer neurons so that it has something to show")
    return False, (f"the pruned model ({pruned}) should be the sweep's 50 % point ({point}): both keep the half of the "
                   "neurons with the largest importance")


def _n_boot(n_boot, intervals, recompute):
    again = recompute(2000)  # the lesson's default, from the same rows and seed
    pairs = [(name, task, intervals[name][task], again[name][task]) for name in intervals for task in intervals[name]]
    moved = max(pairs, key=lambda p: max(abs(p[2][1] - p[3][1]), abs(p[2][2] - p[3][2])))
    shift = max(abs(moved[2][1] - moved[3][1]), abs(moved[2][2] - moved[3][2]))
    same_means = all(a[0] == b[0] for _, _, a, b in pairs)
    narrow = all(b[2] - b[1] == 0 or max(abs(a[1] - b[1]), abs(a[2] - b[2])) < b[2] - b[1] for _, _, a, b in pairs)
    if same_means and narrow:
        return True, (f"every mean is unchanged (the same rows: resampling never moves the estimate) and the "
                      f"intervals' ends moved by at most {shift:.3f} ({moved[0]}, {moved[1]}: {moved[3][1]:.3f}-"
                      f"{moved[3][2]:.3f} with 2000 resamples, {moved[2][1]:.3f}-{moved[2][2]:.3f} with {n_boot}): a "
                      "percentile read from fewer resamples is noisier, about as 1/sqrt(resamples), but the "
                      "interval's width comes from the data")
    return False, ("the means should not move with the number of resamples, and the ends only by a fraction of the "
                   f"interval's width; the largest move was {shift:.3f} ({moved[0]}, {moved[1]})")


def _beta_half(beta, runs):
    sft, dpo, known = runs["SFT"], runs["DPO"], ("add", "capital", "letter")
    drop = sft["hallucination"] - dpo["hallucination"]
    moved = sum(dpo["per_task"][t] - sft["per_task"][t] for t in known) / len(known)
    seen = (f"hallucination {sft['hallucination']:.0%} → {dpo['hallucination']:.0%}, the known tasks "
            f"{moved:+.1%} on average")
    if drop >= 0.3 and moved >= -0.10:  # measured over seeds 0 1 x default avx2: drops 0.92-1.0, tasks -0.04 to -0.01
        return True, (f"yes to both: {seen}. β scales the implicit reward β·log(π/π_ref): with β = 0.5 the loss is "
                      "satisfied by a fifth of the log-ratio margin β = 0.1 needs, so the policy moves less from the "
                      "reference for the same preference. On these pairs that is still enough to learn the decline, "
                      "and the tasks stay: compare the numbers with the default β's run")
    return False, (f"{seen}: with β = 0.5 DPO should still cut hallucination by 30 points or more and keep the known "
                   "tasks within 10 points on average (it did on every seed and CPU kernel set we tried, by 4 points or "
                   "less). Is BETA the only change?")


def _add_sums(train_tasks, sampled_before, sampled_after, heldout_before, heldout_after, clean_before, clean_after):
    key = "pass@1 per task"
    if "add" not in sampled_before.get(key, {}):
        return False, "the held-out samples hold no sums: is \"add\" in TRAIN_TASKS?"
    s0, s1 = sampled_before[key]["add"], sampled_after[key]["add"]
    greedy = (f"greedy answers, which GRPO does not optimise: with a distractor {heldout_before['add']:.0%} → "
              f"{heldout_after['add']:.0%}, bare questions (never in the training prompts) {clean_before['add']:.0%} → "
              f"{clean_after['add']:.0%}")
    fell = clean_after["add"] < clean_before["add"]
    # over seeds 0 1 x default avx2: sampled sums +0.05 to +0.10 (capitals and letters +0.13 to +0.24); greedy sums
    # with a distractor -0.10 to +0.03; bare sums fell on every cell, by 0.14 to 0.44
    if s1 > s0:
        return True, (f"sampled sums with a distractor are right more often: {s0:.0%} → {s1:.0%} of samples at the "
                      f"training temperature (GRPO raises the probability of the answers it rewards, on prompts like "
                      f"those it trains on). Now the {greedy}." + (" Training on one kind of prompt moved the answers to "
                      "another: bare sums fell on every seed and CPU we tried, which is why the lesson keeps sums out "
                      "and watches them" if fell else ""))
    return False, (f"sampled sums with a distractor {s0:.0%} → {s1:.0%}: training on them should make them right more "
                   f"often, as it does for the other families. The {greedy}")


def _one_rank(ranks, world, fsdp_share, loss_gap):
    if world == 1 and abs(fsdp_share - 1) < 1e-9 and loss_gap < 1e-4:
        return True, (f"what changes: one process, rank 0 of world 1. DDP has nobody to average gradients with, and "
                      f"FSDP shards over one rank, so that rank holds the whole model ({fsdp_share:.0%} of DDP's "
                      f"parameter bytes). What does not: the losses. The global batch is the same rows in one shard, "
                      f"so one process, DDP and FSDP take the same steps (largest loss gap {loss_gap:.1e})")
    return False, (f"with RANKS = 1 the runs should have world 1 (got {world}), FSDP's one rank should hold all of the "
                   f"model (got {fsdp_share:.0%}) and the losses should match one process (gap {loss_gap:.1e})")


rerun_exercise("12.n_boot", lambda n_boot, **_: n_boot != 2000, _n_boot,
               "set N_BOOT = 200 in the parameters cell and run the notebook again")
rerun_exercise("06.alpha_one", lambda alpha, results: alpha == 1.0, _alpha_one,
               "set ALPHA = 1.0 in the parameters cell and run the notebook again")
rerun_exercise("08.beta_half", lambda beta, **_: beta == 0.5, _beta_half,
               "set BETA = 0.5 in the parameters cell and run the notebook again")
rerun_exercise("10.add_sums", lambda train_tasks, **_: "add" in train_tasks, _add_sums,
               'add "add" to TRAIN_TASKS in the parameters cell and run the notebook again')
rerun_exercise("17.one_rank", lambda ranks, **_: ranks == 1, _one_rank,
               "set RANKS = 1 in the parameters cell and run the notebook again")
rerun_exercise("18.keep_half", lambda keep, **_: keep == 0.5, _keep_half,
               "set KEEP = 0.5 in the parameters cell and run the notebook again")


# --- coding exercises ------------------------------------------------------------------------------
# A learner implements the piece a lesson is about in a stub; ``check_code`` runs it on random inputs against the
# library (or the lesson's reference) and says where it differs. A stub still returning None is "not tried yet".
CODE_CHECKERS: dict[str, Callable] = {}


def code_exercise(name: str):
    """Register a coding-exercise checker: ``fn(candidate) -> (ok, message)``; it may raise NotTried."""

    def register(fn):
        CODE_CHECKERS[name] = fn
        return fn

    return register


class NotTried(Exception):
    """The stub still returns None."""


def _called(fn, *args, **kwargs):
    out = fn(*args, **kwargs)
    if out is None:
        raise NotTried
    return out


def check_code(name: str, candidate: Callable) -> bool | None:
    """Run a learner's implementation of exercise ``name`` against the library on random inputs; print ✅ or ❌
    with where it differs. None while the stub returns None. Introduced in 01_tokenizer_and_pretraining.ipynb."""
    if name not in CODE_CHECKERS:
        raise KeyError(f"no coding exercise {name!r}; known: {sorted(CODE_CHECKERS)}")
    try:
        ok, message = CODE_CHECKERS[name](candidate)
    except NotTried:
        print(f"{name}: not tried yet (write the function's body)")
        return None
    except Exception as err:  # noqa: BLE001 - a learner's bug is reported, not raised
        ok, message = False, f"it raised {type(err).__name__}: {err}"
    print(f"{name}: {'✅ matches the library' if ok else '❌ not yet'}" + ("" if ok else f" — {message}"))
    return ok


def _compare(mine, theirs, what: str, atol: float = 1e-5) -> tuple[bool, str]:
    import torch

    mine = torch.as_tensor(mine, dtype=torch.float64)
    theirs = torch.as_tensor(theirs, dtype=torch.float64)
    if mine.shape != theirs.shape:
        return False, f"{what}: shape {tuple(mine.shape)}, expected {tuple(theirs.shape)}"
    diff = (mine - theirs).abs().max().item()
    return diff <= atol, f"{what}: max difference {diff:.3g} (tolerance {atol:g})"


@code_exercise("01.next_token_loss")
def _next_token_loss(candidate):
    import torch

    g = torch.Generator().manual_seed(1)
    logits, ids = torch.randn(3, 7, 11, generator=g), torch.randint(0, 11, (3, 7), generator=g)
    expected = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 11), ids[:, 1:].reshape(-1))
    return _compare(_called(candidate, logits, ids), expected, "loss of logits (3, 7, 11) on ids (3, 7)")


@code_exercise("04.lora_forward")
def _lora_forward(candidate):
    import torch
    from peft import LoraConfig, get_peft_model

    g = torch.Generator().manual_seed(3)
    base = torch.nn.Sequential(torch.nn.Linear(12, 10, bias=False))
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["0"], lora_dropout=0.0))
    layer = model.base_model.model[0]
    with torch.no_grad():
        layer.lora_B["default"].weight.normal_(generator=g)  # PEFT starts B at 0: move it so the adapter counts
    x = torch.randn(5, 12, generator=g)
    W, A, B = layer.base_layer.weight.detach(), layer.lora_A["default"].weight.detach(), layer.lora_B["default"].weight.detach()
    mine = _called(candidate, x, W, A, B, 8, 4)
    return _compare(mine, model(x).detach(), "PEFT's LoRA layer output (r 4, alpha 8)")


@code_exercise("08.dpo_loss")
def _dpo_loss_fn(candidate):
    import torch

    g = torch.Generator().manual_seed(7)
    pc, pr, rc, rr = (torch.randn(6, generator=g) * 3 for _ in range(4))
    expected = -torch.nn.functional.logsigmoid(0.1 * ((pc - rc) - (pr - rr))).mean()
    return _compare(_called(candidate, pc, pr, rc, rr, 0.1), expected, "mean DPO loss (beta 0.1) of 6 pairs")


@code_exercise("09.gae")
def _gae_fn(candidate):
    import torch

    g = torch.Generator().manual_seed(8)
    rewards, values = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    gamma, lam = 0.9, 0.8
    expected = torch.zeros_like(rewards)
    for b in range(4):
        for t in range(6):
            expected[b, t] = sum((gamma * lam) ** k * (rewards[b, t + k] + gamma * (values[b, t + k + 1] if t + k + 1 < 6
                                                                                   else 0.0) - values[b, t + k])
                                 for k in range(6 - t))
    return _compare(_called(candidate, rewards, values, gamma, lam), expected, "advantages (gamma 0.9, lambda 0.8)")


@code_exercise("13.top_p")
def _top_p_fn(candidate):
    import torch
    from transformers.generation.logits_process import TopPLogitsWarper

    g = torch.Generator().manual_seed(11)
    for p in (0.5, 0.9):
        logits = torch.randn(50, generator=g) * 2
        theirs = TopPLogitsWarper(p)(torch.zeros(1, 1, dtype=torch.long), logits[None].clone())[0].isfinite()
        mine = torch.as_tensor(_called(candidate, logits.clone(), p)).isfinite()
        if not torch.equal(mine, theirs):
            return False, f"p = {p}: you keep {int(mine.sum())} tokens, transformers keeps {int(theirs.sum())}"
    return True, ""


@code_exercise("15.speculative_sample")
def _speculative_fn(candidate):
    import torch

    g = torch.Generator().manual_seed(13)
    p, q = torch.rand(6, generator=g).softmax(-1) ** 2, torch.rand(6, generator=g).softmax(-1)
    p, q = p / p.sum(), q / q.sum()
    draws = torch.as_tensor(_called(candidate, p, q, 100_000))
    share = torch.bincount(draws, minlength=6).double() / len(draws)
    return _compare(share, p, "share of each token over 100,000 draws against the target's p", atol=0.01)


@code_exercise("03.assistant_labels")
def _assistant_labels(candidate):
    import torch

    g = torch.Generator().manual_seed(2)
    ids = torch.randint(5, 100, (3, 12), generator=g)
    mask = torch.zeros(3, 12, dtype=torch.long)
    mask[:, 7:10] = 1  # the assistant's reply
    mask[1, 4:6] = 1  # a second reply in one conversation
    expected = ids.masked_fill(mask == 0, -100)
    mine = torch.as_tensor(_called(candidate, ids.clone(), mask))
    if not torch.equal(mine, expected):
        return False, "labels must equal the ids on the assistant's tokens and -100 everywhere else"
    return True, ""


@code_exercise("05.minhash_jaccard")
def _minhash_jaccard(candidate):
    import random

    rng = random.Random(4)
    pool = [f"shingle{i}" for i in range(400)]
    for shared in (40, 120, 200):
        a = set(rng.sample(pool, 200))
        b = set(rng.sample(sorted(a), shared)) | set(rng.sample([s for s in pool if s not in a], 200 - shared))
        true = len(a & b) / len(a | b)
        # 1024 functions: Python's hash((seed, s)) spreads ~1.4x a perfect hash's sqrt(J(1-J)/k) (measured over
        # 400 PYTHONHASHSEEDs), so 0.1 is > 4.5 of its standard deviations and a right answer never fails
        estimate = float(_called(candidate, a, b, 1024))
        if abs(estimate - true) > 0.1:
            return False, f"true Jaccard {true:.2f}, your estimate with 1024 hash functions {estimate:.2f}"
        one = float(_called(candidate, a, b, 1))
        if one not in (0.0, 1.0):
            return False, f"with k=1 one position is compared, so the estimate is 0 or 1; yours is {one:.2f}"
    return True, ""


@code_exercise("06.kd_loss")
def _kd_loss(candidate):
    import torch

    from helpers.training import kd_loss

    g = torch.Generator().manual_seed(5)
    student, teacher, T = torch.randn(8, 20, generator=g), torch.randn(8, 20, generator=g) * 2, 2.0
    expected = kd_loss(student, teacher, T)
    return _compare(_called(candidate, student, teacher, T), expected, "T^2 x KL(teacher || student), batch mean")


@code_exercise("07.bt_loss")
def _bt_loss(candidate):
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(6)
    chosen, rejected = torch.randn(10, generator=g) * 3, torch.randn(10, generator=g) * 3
    return _compare(_called(candidate, chosen, rejected), -F.logsigmoid(chosen - rejected).mean(),
                    "mean Bradley-Terry loss of 10 pairs")


@code_exercise("10.group_advantages")
def _group_advantages(candidate):
    import torch

    g = torch.Generator().manual_seed(9)
    rewards = torch.randint(0, 3, (24,), generator=g).float() / 2  # 6 groups of 4, some without signal
    groups = rewards.view(-1, 4)
    expected = ((groups - groups.mean(1, keepdim=True)) / (groups.std(1, keepdim=True) + 1e-4)).view(-1)
    return _compare(_called(candidate, rewards, 4), expected, "advantages of 6 groups of 4 (TRL's formula)", 1e-4)


@code_exercise("12.bootstrap_interval")
def _bootstrap_interval(candidate):
    import math

    correct = [1] * 56 + [0] * 24
    low, high = (float(x) for x in _called(candidate, correct, 2000, 0))
    p, half = 0.7, 1.96 * math.sqrt(0.7 * 0.3 / 80)
    ok = abs(low - (p - half)) < 0.03 and abs(high - (p + half)) < 0.03
    return ok, f"your 95 % interval ({low:.3f}, {high:.3f}); resampling the rows should give about " \
               f"({p - half:.3f}, {p + half:.3f})"


@code_exercise("14.absmax_int8")
def _absmax_int8(candidate):
    import torch

    g = torch.Generator().manual_seed(12)
    W = torch.randn(16, 64, generator=g)
    W[3, 5] = 9.0  # an outlier: it sets its row's scale, not the others'
    scale = W.abs().amax(1, keepdim=True) / 127
    expected = (W / scale).round().clamp(-127, 127) * scale
    return _compare(_called(candidate, W.clone()), expected, "per-row absmax int8, dequantized", 1e-5)


@code_exercise("16.throughput")
def _throughput(candidate):
    requests = [(0.0, 1.0, 20), (0.1, 1.5, 30), (0.5, 2.0, 10), (1.9, 2.5, 40)]  # (start s, end s, tokens)
    got = tuple(float(x) for x in _called(candidate, requests))
    expected = (4 / 2.5, 100 / 2.5, (1.0 + 1.4 + 1.5 + 0.6) / 4)
    ok = all(abs(a - b) < 1e-6 for a, b in zip(got, expected)) and len(got) == 3
    return ok, f"(requests/s, tokens/s, mean latency s) = {got}; the wall time runs from the first start to the " \
               "last end"


@code_exercise("17.all_reduce_mean")
def _all_reduce_mean(candidate):
    import torch

    g = torch.Generator().manual_seed(15)
    grads = [{"w": torch.randn(3, 4, generator=g), "b": torch.randn(4, generator=g)} for _ in range(4)]
    mine = _called(candidate, [{k: v.clone() for k, v in r.items()} for r in grads])
    for k in ("w", "b"):
        ok, message = _compare(mine[k], torch.stack([r[k] for r in grads]).mean(0), f"averaged gradient {k!r}")
        if not ok:
            return ok, message
    return True, ""


@code_exercise("18.magnitude_mask")
def _magnitude_mask(candidate):
    import torch
    from torch.nn.utils import prune

    g = torch.Generator().manual_seed(16)
    layer = torch.nn.Linear(10, 8)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(8, 10, generator=g))
    mine = torch.as_tensor(_called(candidate, layer.weight.detach().clone(), 0.3)).bool()
    prune.l1_unstructured(layer, name="weight", amount=0.3)
    theirs = layer.weight_mask.bool()
    if not torch.equal(mine, theirs):
        return False, f"you keep {int(mine.sum())} weights, torch's l1_unstructured keeps {int(theirs.sum())}; " \
                      f"{int((mine != theirs).sum())} positions differ"
    return True, ""


KINDS = {"answer": CHECKERS, "run again": RERUNS, "code": CODE_CHECKERS}  # check, check_rerun, check_code


def of_lesson(number: str) -> dict[str, str]:
    """Every exercise of lesson ``number`` ("08"), whatever its kind: ``{name: kind}`` with kind "answer"
    (``check``, ``solution``), "run again" (``check_rerun``) or "code" (``check_code``). Introduced in
    00_welcome.ipynb."""
    found = {name: kind for kind, registry in KINDS.items() for name in registry if name.split(".")[0] == number}
    if not found:
        raise KeyError(f"lesson {number!r} has no exercises; lessons with exercises: "
                       f"{sorted({n.split('.')[0] for registry in KINDS.values() for n in registry})}")
    return dict(sorted(found.items()))


@code_exercise("11.majority_vote")
def _majority_vote(candidate):
    import random
    from collections import Counter

    rng = random.Random(18)
    _called(candidate, ["7", "7", "5"])  # a stub's None is "not tried"; after that, None is a wrong vote
    for _ in range(50):
        answers = [rng.choice(["3", "5", "7", "8", None]) for _ in range(rng.randint(1, 9))] + [rng.choice("0123456789")]
        rng.shuffle(answers)
        expected = Counter(a for a in answers if a is not None).most_common(1)[0][0]  # ties: the first seen
        mine = candidate(list(answers))
        if mine != expected:
            return False, f"for {answers} you return {mine!r}, the vote is {expected!r}"
    return True, ""
