"""What each lesson claims, written once as checks on the metrics it records.

``tests/test_notebooks.py`` asserts every check of every lesson it ran; ``python -m course matrix`` evaluates the
same checks on every cell of a seeds × kernel-sets matrix and tabulates each one's threshold and the min / max of
its value over the cells. A claim is a value compared with a bound (``>=``, ``<=``, ``<``, ``>``, ``==``); a
relative claim ("beats the baseline of the same run by 20 points") is written as a difference or a ratio, so its
bound is a constant the table can show.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field

OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}


@dataclass
class Check:
    """One claim on one run: ``value op bound``, with the sentence it stands for."""

    lesson: str
    name: str
    value: object
    op: str
    bound: object
    why: str = ""

    @property
    def ok(self) -> bool:
        try:
            return bool(OPS[self.op](self.value, self.bound))
        except TypeError:
            return False

    def __str__(self) -> str:
        return (f"{self.lesson} {self.name}: {shown(self.value)} {self.op} {shown(self.bound)} "
                f"{'ok' if self.ok else 'FAILED'}{' — ' + self.why if self.why else ''}")


def shown(value) -> str:
    """A value as the claims tables show it: floats to 4 significant digits, strings quoted."""
    if isinstance(value, float) and not math.isnan(value):
        return f"{value:.4g}"
    return repr(value) if isinstance(value, str) else str(value)


@dataclass
class Claims:
    """The checks of one lesson's run, added by the lesson's claim function."""

    lesson: str
    checks: list[Check] = field(default_factory=list)

    def add(self, name: str, value, op: str, bound, why: str = "") -> None:
        self.checks.append(Check(self.lesson, name, value, op, bound, why))

    def ge(self, name, value, bound, why=""):
        self.add(name, value, ">=", bound, why)

    def le(self, name, value, bound, why=""):
        self.add(name, value, "<=", bound, why)

    def gt(self, name, value, bound, why=""):
        self.add(name, value, ">", bound, why)

    def lt(self, name, value, bound, why=""):
        self.add(name, value, "<", bound, why)

    def eq(self, name, value, bound, why=""):
        self.add(name, value, "==", bound, why)

    def true(self, name, value, why=""):
        self.add(name, bool(value), "==", True, why)


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def lesson_00(m, c: Claims, syllabus=None):
    from course import syllabus as course_syllabus

    syl = syllabus or course_syllabus.load()
    c.eq("ready lessons counted", m["ready_lessons"], sum(x.status == "ready" for x in syl.lessons.values()))
    c.eq("test/train prompt overlap", m["test_train_prompt_overlap"], 0)
    c.eq("unseen sums answered by a split", m["unseen_add_pair_overlap"], 0)
    c.true("bad file error names the line", m["bad_file_error_names_line"] is True)
    c.true("environment ok", m["env_ok"] is True)


def lesson_01(m, c: Claims):
    c.eq("precision", m["precision"], "fp32")
    c.true("tokenizer round trip", m["tokenizer_roundtrip"] is True)
    c.gt("bytes per token", m["bytes_per_token"], 2.5)
    c.lt("RMSNorm by hand vs library", m["rmsnorm_max_diff"], 1e-5)
    c.gt("untrained ppl / vocab", m["val_ppl_before"] / m["vocab_size"], 0.5, "an untrained model is near uniform")
    c.le("trained ppl / untrained ppl", m["val_ppl_after"] / m["val_ppl_before"], 0.5,
         "validation perplexity must at least halve")
    c.lt("trained ppl / vocab", m["val_ppl_after"] / m["vocab_size"], 0.05, "a trained model beats uniform by far")
    c.eq("resumed loss difference", m["resume_max_loss_diff"], 0.0, "resuming must reproduce the losses")


def lesson_02(m, c: Claims):
    mask, index, rag, by = m["masking"], m["index"], m["rag"], m["answer_accuracy_by_retrieval"]
    untuned, tuned = m["retrieval_untuned"], m["retrieval_tuned"]
    c.eq("precision", m["precision"], "fp32")
    # ~1,200 chosen tokens in the batch: a share's standard deviation is ~0.01
    c.true("15 % of tokens chosen", 0.12 <= mask["chosen"] <= 0.18)
    c.true("80 % of them masked", 0.74 <= mask["mask token"] <= 0.86)
    c.true("10 % random, 10 % unchanged", 0.05 <= mask["random token"] <= 0.15 and 0.05 <= mask["unchanged"] <= 0.16)
    c.eq("causal LM: no output depends on a later token", m["future_dependence"]["causal"], 0.0)
    c.ge("encoder: share of later tokens an output depends on", m["future_dependence"]["bidirectional"], 0.99)
    c.ge("masked-token accuracy pretrained / untrained",
         m["mlm_accuracy_after"] / max(m["mlm_accuracy_before"], 1e-3), 3)
    c.lt("|InfoNCE by hand - MultipleNegativesRankingLoss|", abs(m["infonce_ours"] - m["infonce_library"]), 1e-5)
    c.ge("recall@1: tuned - pretrained encoder", tuned["recall@1"] - untuned["recall@1"], 0.2)
    c.ge("MRR@10: tuned - pretrained encoder", tuned["mrr@10"] - untuned["mrr@10"], 0.2)
    c.ge("BM25 recall@1 (exact names: lexical search is strong)", m["retrieval_bm25"]["recall@1"], 0.6)
    c.eq("FAISS exact index: brute force's top-1", index["exact = brute force top-1"], 1.0)
    every_cell = max((k for k in index if k.startswith("nprobe")), key=lambda k: int(k.split()[1]))
    c.eq("IVF, every cell probed: exact search's top-1", index[every_cell]["same top-1 as exact"], 1.0)
    c.le("IVF, one cell probed: share of vectors scanned", index["nprobe 1"]["scanned"], 0.2)
    c.true("more cells probed, more top-1 agreement with exact search",
           index["nprobe 4"]["same top-1 as exact"] >= index["nprobe 1"]["same top-1 as exact"])
    c.le("SFT model given the right passage (it cannot read yet)", m["sft_right_passage"], 0.3)
    c.ge("reader given the right passage", rag["right passage"], 0.9)
    c.le("reader without retrieval (a guess: ~1 in 9)", rag["no retrieval"], 0.25)
    c.ge("RAG accuracy: dense top-1 - no retrieval", rag["dense top-1"] - rag["no retrieval"], 0.2)
    c.ge("answer accuracy: right - wrong document retrieved",
         by["right document retrieved"] - by["wrong document retrieved"], 0.5)


def lesson_03(m, c: Claims):
    c.eq("precision", m["precision"], "fp32")
    c.eq("steps", m["steps"], 500)
    c.ge("accuracy after - before", m["accuracy_after"] - m["accuracy_before"], 0.30)
    c.lt("last / first train loss", m["train_loss_last"] / m["train_loss_first"], 0.5)
    c.ge("best task after", max(m["per_task_after"].values()), 0.5)


def lesson_04(m, c: Claims):
    for name in ("full", "lora", "qlora"):
        c.ge(f"{name} accuracy - before", m[f"{name}_accuracy"] - m["accuracy_before"], 0.30)
    # on facts the base learned in pretraining (capitals) LoRA is as good as full FT; first letters need the
    # embeddings, which LoRA keeps frozen. Sums: tiny:base completes "a + b =" for few pairs, both learn them from the
    # training rows (LoRA less well), so no claim
    c.ge("LoRA - full, capitals", m["lora_per_task"]["capital"] - m["full_per_task"]["capital"], -0.05)
    c.ge("full - LoRA, first letters", m["full_per_task"]["letter"] - m["lora_per_task"]["letter"], 0.30)
    c.lt("LoRA trainable share", m["lora_trainable_share"], 0.25)
    c.ge("fp32 / 4-bit footprint", m["footprint_ratio"], 4.0, "the 4-bit model must be at least 4x smaller")
    c.ge("quantized layers ratio", m["quantized_layers_ratio"], 6.0, "4-bit codes plus block scales: well over 4x")
    c.lt("quantized layers ratio (upper)", m["quantized_layers_ratio"], 8.0, "and under 8x")
    c.eq("precision", m["precision"], "fp32")
    c.eq("steps (full, LoRA)", (m["full_steps"], m["lora_steps"]), (500, 300))
    c.lt("merged logit diff / tolerance", m["merged_max_logit_diff"] / m["merged_logit_tolerance"], 1.0)
    c.lt("merged logit tolerance", m["merged_logit_tolerance"], 1e-3)
    c.eq("merged reloaded - LoRA accuracy", m["merged_reloaded_accuracy"] - m["lora_accuracy"], 0)


def lesson_05(m, c: Claims):
    c.eq("documents", m["documents"], 945)
    c.eq("reloaded - kept", m["reloaded"] - m["kept"], 0)
    c.eq("repaired", m["repaired"], {"markup": 1.0, "mojibake": 1.0})
    c.eq("clean untouched", m["clean_untouched"], 1.0)
    by_kind = m["quality_removed_by_kind"]
    for kind, planted in {"short": 25, "repetitive": 15, "symbols": 15, "foreign": 20}.items():
        c.eq(f"{kind} documents removed", by_kind.get(kind), planted, f"every {kind} document must go")
    c.le("clean documents removed (share)", by_kind.get("clean", 0) / m["clean_total"], 0.01)
    c.eq("exact dedup precision, recall", (m["exact_scores"]["precision"], m["exact_scores"]["recall"]), (1.0, 1.0))
    c.ge("near-dup precision", m["near_scores"]["precision"], 0.9)
    c.ge("near-dup recall", m["near_scores"]["recall"], 0.9)
    c.lt("|Jaccard by hand - MinHash|", abs(m["jaccard_by_hand"] - m["jaccard_minhash"]), 0.1)
    c.ge("Jaccard by hand", m["jaccard_by_hand"], 0.5)
    c.gt("threshold - closest non-duplicate", m["threshold"] - m["closest_nonduplicate"], 0)
    c.gt("farthest duplicate - threshold", m["farthest_duplicate"] - m["threshold"], 0)
    c.eq("contaminated left", m["kinds_left"]["contaminated"], 0)
    c.eq("contaminated removed", m["contaminated_removed"], 30)
    c.eq("PII left", m["pii_left"], 0)
    c.eq("PII planted", m["pii_planted"], 80)
    c.eq("scrubbed wrongly", m["scrubbed_wrongly"], 0)


def lesson_06(m, c: Claims):
    r = m["results"]
    c.eq("precision", m["precision"], "fp32")
    c.eq("steps", m["steps"], 400)
    c.le("student / teacher size", m["size_ratio"], 0.4)
    c.lt("KD loss by hand vs torch, TRL", max(abs(m["loss_by_hand"] - m["loss_torch"]),
                                            abs(m["loss_by_hand"] - m["loss_trl"])), 1e-6)
    c.gt("top-k mass", m["top_k_mass"], 0)
    c.lt("top-k mass (upper)", m["top_k_mass"], 1)
    c.lt("student accuracy before", m["before_accuracy"], 0.1, "the student starts unable to answer")
    # over seeds 0 1 x default avx2 the hard-label student reached 0.64-0.87 (a lottery), the distilled one 0.88-0.95:
    # distillation wins on every cell, by 0.04-0.31, and keeps 0.91-0.97 of the teacher
    c.ge("distilled - hard labels", r["distilled"]["accuracy"] - r["hard labels"]["accuracy"], 0.02,
         "soft targets at every position beat the answers alone on the same budget")
    c.ge("distilled: share of teacher kept", r["distilled"]["kept"], 0.85)
    c.ge("on-policy: share of teacher kept", r["on-policy"]["kept"], 0.85)
    c.le("distilled / teacher parameters", r["distilled"]["parameters"] / r["teacher"]["parameters"], 0.4)
    students = _mean(r[name]["tokens_per_s"] for name in ("hard labels", "distilled", "on-policy"))
    c.ge("students / teacher tokens/s", students / r["teacher"]["tokens_per_s"], 1.2, "a smaller model decodes faster")
    c.gt("on-policy seconds", m["seconds"]["on-policy"], 0)
    c.eq("reloaded - best accuracy", m["reloaded_accuracy"] - r[m["best"]]["accuracy"], 0)


def lesson_07(m, c: Claims):
    c.eq("precision", m["precision"], "fp32")
    c.eq("steps", m["rm_steps"], 300)
    c.lt("|BT loss by hand - trainer|", abs(m["hand_loss"] - m["trainer_loss"]), 1e-5)
    c.lt("BT loss by hand", m["hand_loss"], 0.6, "checked on the trained model, not at log 2")
    c.eq("pairwise accuracy before", m["pairwise_before"], 0.5, "a zero score head ties every pair: chance")
    c.ge("pairwise accuracy after", m["pairwise_after"], 0.8, "0.85-0.90 over seeds 0 1 x default avx2; sums drag it")
    c.ge("pairwise after - before", m["pairwise_after"] - m["pairwise_before"], 0.25)
    c.ge("pairwise accuracy, unknown", m["pairwise_per_task_after"]["unknown"], 0.9,
         "declining must beat an invented capital")
    c.ge("on-policy pairs", m["on_policy_pairs"], 100)
    # best-of-n follows its judge: where the reward model ranks pairs well it must beat one sample (at T = 2.0, over
    # seeds 0 1 x default avx2, by 0.27-0.36; at 1.5 the six-phrasing SFT model's samples left it -0.01 to +0.10)
    judged = ("capital", "letter")
    c.ge("pairwise accuracy, capital and letter", min(m["pairwise_per_task_after"][t] for t in judged), 0.9)
    one = _mean(m["sample_accuracy"][t] for t in judged)
    c.ge(f"best-of-{m['best_of_n']} - one sample", _mean(m["best_of_n_accuracy"][t] for t in judged) - one, 0.15)
    c.ge("SFT hallucination (n=1)", m["hallucination_rate"]["n=1"], 0.9, "the SFT model never declines")


def lesson_08(m, c: Claims):
    c.eq("precision", m["precision"], "fp32")
    c.eq("steps, NLL weight", (m["dpo_steps"], m["nll_weight"]), (100, 1.0))
    c.lt("|DPO+NLL by hand - trainer|", abs(m["hand_loss"] - m["trainer_loss"]), 1e-5)
    c.ge("SFT hallucination", m["sft_hallucination"], 0.9, "the SFT model never declines")
    c.ge("DPO preference accuracy", m["dpo_preference_accuracy"], 0.80)
    c.ge("DPO - SFT preference accuracy", m["dpo_preference_accuracy"] - m["sft_preference_accuracy"], 0.1)
    c.ge("SFT - DPO hallucination", m["sft_hallucination"] - m["dpo_hallucination"], 0.30,
         "the target behaviour must move by 30 points")
    known = ("add", "capital", "letter")
    c.ge("DPO - SFT, known tasks", _mean(m["dpo_per_task"][t] for t in known)
         - _mean(m["sft_per_task"][t] for t in known), -0.05, "DPO must keep the tasks")
    # ORPO's hallucination after the same budget was 0.0-1.0 over seeds 0 1 x default avx2 (a draw), and where it
    # does not learn to decline its preference accuracy stays at SFT's (-0.01); what held on every cell: it costs the
    # known tasks more than DPO (by 0.08-0.40)
    c.ge("DPO - ORPO, known tasks", _mean(m["dpo_per_task"][t] for t in known)
         - _mean(m["orpo_per_task"][t] for t in known), 0.05, "without a reference ORPO costs the tasks more")
    c.true("ORPO measured on every task", set(m["orpo_per_task"]) == set(m["dpo_per_task"]) and m["orpo_seconds"] > 0)
    c.lt("merged logit diff / tolerance", m["merged_max_logit_diff"] / m["merged_logit_tolerance"], 1.0)
    c.lt("merged logit tolerance", m["merged_logit_tolerance"], 1e-3)
    c.true("merged = adapter (tasks, hallucination)", m["merged_per_task"] == m["dpo_per_task"]
           and m["merged_hallucination"] == m["dpo_hallucination"])


def lesson_09(m, c: Claims):
    c.eq("precision", m["precision"], "fp32")
    c.eq("steps, KL coefficient", (m["ppo_steps"], m["kl_coef"]), (40, 1.0))
    c.lt("PPO pieces by hand", max(m["gae_max_diff"], m["clip_loss_diff"], m["kl_sum_diff"]), 1e-4,
         "float32 sums in another order: up to 1e-5 over seeds 0 1 x default avx2")
    ppo, free, last = m["ppo_evals"], m["free_evals"], str(m["ppo_steps"])
    c.true("both runs start from the SFT policy", ppo["0"] == free["0"] and ppo["0"]["kl"] == 0.0)
    c.ge("PPO reward gain", ppo[last]["reward"] - ppo["0"]["reward"], 0.25,
         "with the KL penalty the held-out reward must rise")
    c.gt("penalised KL", ppo[last]["kl"], 0)
    # rollouts at temperature 2.0, over seeds 0 1 x default avx2: reward gain 0.81-1.51, penalised KL 0.26-0.51, free KL
    # 2.4-6.2x it, free - SFT accuracy -0.28 to -0.09, greedy replies changed free - penalised 5-11, RLOO gain 0.33-1.0
    c.lt("penalised KL (upper)", ppo[last]["kl"], 1.0)
    c.ge("free KL / penalised KL", free[last]["kl"] / ppo[last]["kl"], 2, "no penalty: several times the KL")
    trained = ("capital", "letter")
    sft, kept, hacked = (_mean(m[f"{k}_per_task"][t] for t in trained) for k in ("sft", "ppo", "free"))
    c.ge("PPO - SFT accuracy", kept - sft, -0.05, "the penalised run keeps its answers")
    c.le("free - SFT accuracy", hacked - sft, -0.05, "the free run loses them")
    c.ge("greedy replies changed: free - penalised", m["greedy_changed"]["β = 0"] - m["greedy_changed"]["β = 1.0"], 4)
    c.ge("RLOO reward gain", m["rloo_eval"]["reward"] - ppo["0"]["reward"], 0.25, "RLOO ran and learned")
    c.gt("RLOO seconds", m["rloo_seconds"], 0)


def lesson_10(m, c: Claims):
    c.eq("precision", m["precision"], "fp32")
    c.eq("steps", m["grpo_steps"], 150)
    c.eq("trained tasks", m["train_tasks"], ["capital", "letter"])
    c.lt("group advantage by hand vs TRL", m["advantage_diff"], 1e-5)
    c.ge("groups with signal in the checked batch", m["signal_groups"], 1)
    target, before, after = m["target_task"], m["heldout_before"], m["heldout_after"]
    c.ge("clean - distracted accuracy before", m["clean_before"][target] - before[target], 0.3,
         "the premise: a distractor makes the SFT model weak")
    # matrix (seeds 0 1 x default avx2, T = 2.0): held-out reward +0.27 to +0.45, pass@1 +0.15 to +0.26, pass@8 -0.01 to
    # +0.14 (pass@1 gains 0.12-0.20 more), training reward +0.17 to +0.24; greedy accuracy on the trained families
    # -0.04 to +0.08 (on the same questions in the training phrasings +0.03 to +0.10): GRPO sharpens the sampled
    # distribution, the mode moves little
    s0, s1 = m["sampled_before"], m["sampled_after"]
    c.ge("held-out reward gain", m["reward_after"] - m["reward_before"], 0.15)
    c.ge("held-out pass@1 gain", s1["pass@1"] - s0["pass@1"], 0.08)
    c.ge("pass@1 gain - pass@8 gain", (s1["pass@1"] - s0["pass@1"]) - (s1["pass@8"] - s0["pass@8"]), 0.05,
         "sharpening: probability moves onto answers the model could already sample")
    c.ge("training reward gain", m["train_reward_last"] - m["train_reward_first"], 0.1)
    trained = m["train_tasks"]
    c.ge("greedy held-out, trained families: after - before", _mean(after[t] - before[t] for t in trained), -0.1)
    c.le("wrong-kind share after", m["mistakes_after"][target]["wrong_kind"], 0.1)
    for task in m["train_tasks"]:
        c.ge(f"bare {task} questions: after - before", m["clean_after"][task] - m["clean_before"][task], -0.15,
             "at most a small loss (-0.11 on one matrix cell)")


def lesson_11(m, c: Claims):
    answer, trace, sc, rl = m["students"]["answer-only"], m["students"]["trace"], m["self_consistency"]["trace"], m["rl"]
    most = max(sc, key=int)
    c.eq("precision", m["precision"], "fp32")
    # 0.22-0.60 over seeds 0-2 x default, avx2, avx512 (300 steps): the answer-only student is the larger draw (0.35-0.76)
    c.ge("held-out accuracy: trace - answer-only student (same SFT budget)", trace["accuracy"] - answer["accuracy"], 0.2)
    c.ge("tokens per answer: trace / answer-only", trace["tokens"] / answer["tokens"], 5)
    c.ge("trace student: share of valid traces", trace["valid traces"], 0.6)
    c.ge("answer right given a valid trace", m["right_given_validity"]["valid trace"], 0.95)
    c.ge(f"self-consistency: vote of {most} - one sample", sc[most] - sc["1"], 0.08)
    c.true("self-consistency: a vote of 4 >= one sample", sc["4"] >= sc["1"])
    c.ge("GRPO: held-out sampled pass@1 after - before", rl["sampled pass@1"]["after"] - rl["sampled pass@1"]["before"],
         0.04)
    c.ge("GRPO: held-out greedy accuracy after - before (kept)",
         rl["greedy accuracy"]["after"] - rl["greedy accuracy"]["before"], -0.05)
    c.ge("GRPO: trace length after / before (still traces)", m["rl_tokens"]["after"] / m["rl_tokens"]["before"], 0.7)


def lesson_12(m, c: Claims):
    n = m["test_questions"]
    c.eq("precision", m["precision"], "fp32")
    c.eq("test questions", n, 300)
    c.lt("distinct / test questions", m["distinct_questions"] / n, 1)
    c.gt("SFT - base, lower bound", m["differences"]["SFT-base:all"][1], 0.3)
    c.ge("SFT vs base win rate", m["win_rates"]["SFT vs base"]["win_rate"], 0.7)
    c.gt("aligned - SFT on unknown, lower bound", m["differences"]["aligned-SFT:unknown"][1], 0.5)
    for task in ("add", "capital", "letter"):
        low, high = m["differences"][f"aligned-SFT:{task}"][1:3]
        c.true(f"aligned - SFT on {task}: interval holds 0", low <= 0 <= high)
    row, clustered = m["row_intervals"]["SFT"]["all"], m["intervals"]["SFT"]["all"]
    c.gt("clustered / row interval width (all)", (clustered[2] - clustered[1]) / (row[2] - row[1]), 1.3)
    for name in ("base", "SFT", "aligned"):
        c.eq(f"lm-eval - course exact match ({name})", m["harness"][name]["generate EM"] - m["exact_match"][name], 0)
        c.eq(f"lm-eval same verdicts ({name})", m["harness_same_rows"][name], n)
        c.ge(f"yes/no accuracy ({name})", m["harness"][name]["yes/no acc"], 0.4, "no model was taught yes/no")
        c.le(f"yes/no accuracy ({name}, upper)", m["harness"][name]["yes/no acc"], 0.6)
    c.ge("base: choice accuracy - generated EM", m["harness"]["base"]["choice acc"]
         - m["harness"]["base"]["generate EM"], 0.3, "likelihood sees more")
    c.ge("judge pairs", m["judge_pairs"], 100)
    # the generative judge (a base model never taught to judge) follows the position on some machines (flip rate
    # ~1) and keeps most verdicts on others (~0.1, matrix default kernels): how biased it is is a draw, so the claim
    # is what survives the swap, against the reward model that has no position to be biased by
    # over seeds 0 1 x default avx2 the judge was right in both orders on 0.0 (avx2) to 0.79 (default) of the pairs,
    # the reward model on 0.75-0.91: neither beats the other on every cell, so no claim compares them
    c.ge("reward-model judge agreement", m["rm_judge_agreement"], 0.7)
    c.ge("SFT: template - plain EM", m["exact_match"]["SFT"] - m["plain_exact_match"]["SFT"], 0.1,
         "0.14-0.24 over seeds 0 1 x default avx2")
    c.ge("SFT: template - lm-eval default EM", m["exact_match"]["SFT"] - m["harness_no_template_exact_match"], 0.3)
    c.lt("SFT answer perplexity (worst task)", max(m["perplexity"]["SFT"][t] for t in ("add", "capital", "letter")), 3)
    c.gt("SFT / base corpus perplexity", m["perplexity"]["SFT"]["corpus"] / m["perplexity"]["base"]["corpus"], 10)
    c.eq("test prompts in train", m["test_prompts_in_train"], 0)
    c.eq("planted leak recall, false alarms", (m["planted_leak_recall"], m["planted_leak_false_alarms"]), (1.0, 0))
    c.eq("answers in pretraining", m["answers_in_pretraining"], {"add": 1.0, "capital": 1.0, "unknown": 0.0})
    c.eq("log items", m["log_items"], n)
    c.ge("diff: fixed", m["diff_counts"]["fixed"], 30)
    # DPO breaks 0 known answers on some draws of the SFT model and ~15 on others (matrix, default kernels)
    c.ge("diff: fixed - broken", m["diff_counts"]["fixed"] - m["diff_counts"]["broken"], 30)


def lesson_13(m, c: Claims):
    c.true("model, size, tokens", m["model"] == "tiny:large" and m["parameters"] > 5e6 and m["new_tokens"] == 256)
    c.true("filters match transformers", m["filters_match_transformers"])
    c.true("cache loop = generate", m["loop_matches_generate"])
    c.ge("cache speed-up", m["cache_speedup"], 3, "cached decoding >= 3x uncached at 256 tokens")
    c.le("|cache bytes measured / formula - 1|", abs(m["cache_bytes_measured"] / m["cache_bytes_formula"] - 1), 0.10)
    c.gt("cache tokens", m["cache_tokens"], 256)
    c.lt("|GQA saving - heads ratio|", abs(m["gqa_cache_saving"] - m["attention_heads"] / m["kv_heads"]), 0.01)
    rep = m["repetition"]
    c.ge("greedy repeated 3-grams", rep["greedy"], 0.15)
    c.ge("greedy - with repetition penalty", rep["greedy"] - rep["greedy + repetition penalty 1.3"], 0.1)
    c.ge("eager / SDPA seconds (longest)", m["kernel_seconds"]["eager"][-1] / m["kernel_seconds"]["sdpa"][-1], 1.1)
    c.lt("max |tiled attention - SDPA|", m["tiled_max_diff"], 1e-4, "tiling and the online softmax are exact")
    grow = (m["fa_lens"][-1] / m["fa_lens"][0])
    work = {name: v[-1] / v[0] for name, v in m["attention_working_bytes"].items()}
    c.ge("eager working memory growth / length growth^2", work["eager"] / grow**2, 0.75, "the n x n scores")
    c.le("tiled working memory growth / length growth", work["tiled (by hand)"] / grow, 1.5, "grows with n")
    c.le("SDPA working memory growth / length growth", work["SDPA"] / grow, 1.5, "grows with n")


def lesson_14(m, c: Claims):
    c.eq("model", m["model"], "tiny:large")
    c.ge("int8 codes identical", m["int8_codes_identical"], 0.999)
    c.lt("NF4 by hand vs library", max(m["nf4_table_max_diff"], m["nf4_hand_vs_library"]), 1e-6)
    err = m["relative_error"]
    c.lt("NF4 / evenly spaced error", err["NF4, per block of 64"] / err["4-bit evenly spaced, per row"], 0.8)
    c.ge("ternary / 8-bit perplexity", m["rounded_ppl"]["2"] / m["rounded_ppl"]["8"], 1.1)
    c.lt("GGUF conversion logit diff", m["gguf_conversion_logit_diff"], 0.05)
    r = m["results"]
    fp32 = r["fp32"]
    for name, bits in [("bnb int8", 8), ("quanto int8", 8), ("gguf q8_0", 8), ("bnb nf4", 4), ("bnb fp4", 4),
                       ("gguf q4_k_m", 4)]:
        c.ge(f"{name}: layers smaller", fp32["linear MB"] / r[name]["linear MB"], 3.5 if bits == 8 else 6.0)
        c.lt(f"{name}: model / fp32 MB", r[name]["model MB"] / fp32["model MB"], 1)
        c.le(f"{name}: perplexity rise", r[name]["perplexity"] / fp32["perplexity"] - 1, 0.02 if bits == 8 else 0.10)
        c.le(f"{name}: |next-token accuracy change|",
             abs(r[name]["next-token accuracy"] - fp32["next-token accuracy"]), 0.02)
    c.lt("|GGUF f32 / fp32 perplexity - 1|", abs(r["gguf f32"]["perplexity"] / fp32["perplexity"] - 1), 1e-3)
    c.ge("q4_K_M / f32 tokens/s", r["gguf q4_k_m"]["tokens/s"] / r["gguf f32"]["tokens/s"], 1.5,
         "timed in turns; 1.4x once in CI when timed one after the other")
    c.eq("GGUF fallback tensors", m["gguf_fallback_tensors"], 0)


def lesson_15(m, c: Claims):
    c.true("target and draft", m["target"] == "tiny:large" and m["draft"] == "tiny:draft")
    c.ge("size ratio", m["size_ratio"], 10)
    c.true("rule matches library", m["rule_matches_library"])
    c.true("identical to greedy", m["identical_to_greedy"])
    # 1.43-1.45 in the suite beside another lesson (1 thread), 1.56-1.66 alone (2 threads), on a 2-core AMD EPYC
    c.ge("best speed-up", m["best_speedup"], 1.3, f"best method: {m.get('best_method')}")
    results = m["results"]
    c.true("acceptance read from the candidate generators", all(0 < r["acceptance"] <= 1 for r in results.values()))
    lookup = max(r["acceptance"] for key, r in results.items() if key.startswith("prompt lookup / repetitive"))
    story = max(r["acceptance"] for key, r in results.items() if key.startswith("prompt lookup / story"))
    c.gt("lookup acceptance: repetitive - story", lookup - story, 0, "lookup needs repetition")
    fit = m["sampling_fit"]  # chi-square p-values of 200,000 draws against the target's distribution
    c.ge("speculative sampling fits p (p-value)", fit["speculative sampling"]["p_value"], 1e-3,
         "exact: a correct sampler falls below 1e-3 once in a thousand seeds")
    c.lt("resample-from-p bug fits p (p-value)", fit["resample from p (bug)"]["p_value"], 1e-6, "biased")
    c.lt("greedy rule fits p (p-value)", fit["greedy rule"]["p_value"], 1e-6, "biased")
    c.lt("|acceptance - overlap|", abs(m["sampling_acceptance"] - m["sampling_overlap"]), 0.01,
         "a draft token is accepted with probability sum(min(p, q))")


def lesson_16(m, c: Claims):
    c.true("engine and model", m["engine"] == "transformers" and m["model"] == "tiny:large"
           and m["served_models"] == ["tiny:large"])
    c.eq("served = local", m["served_equals_local"], 1.0)
    c.true("streamed text the same", m["streamed_same"])
    c.ge("streamed chunks", m["streamed_chunks"], 10)
    c.lt("first chunk / stream time", m["first_chunk_s"] / m["stream_total_s"], 0.5)
    c.eq("auth status", m["auth_status"], {"no key": 401, "wrong key": 401, "right key": 200})
    c.true("client: wrong key 401, no completion", m["client_wrong_key_status"] == 401
           and m["no_completion_without_key"])
    bad = m["bad_request_status"]
    c.true("nine bad requests at once, each 4xx", len(bad) == 9 and all(400 <= s < 500 for s in bad.values()))
    c.eq("oversized prompt and body", (bad["prompt over context"], bad["4 MB body"]), (400, 413))
    c.true("serves after bad requests", m["served_after_bad"])
    c.eq("/health after bad requests", m["health_after_bad"], 200)
    c.ge("8 in flight / 1 requests/s", m["concurrency_gain"], 2)
    c.lt("one at a time gain", m["one_at_a_time_gain"], 1.5, "the gain comes from batching, not from overlap")
    tokens = {k: r["tokens"] for k, r in m["batched"].items()}
    c.true("same work at every level", len(set(tokens.values())) == 1 and min(tokens.values()) > 16 * 16)
    c.true("llama.cpp's server: same API, key checked", m["llama_cpp_models"] == ["tiny:large"]
           and m["llama_cpp_completion_tokens"] > 0 and m["llama_cpp_wrong_key_status"] == 401)
    c.eq("llama.cpp load test: every request answered", m["llama_cpp_single"]["requests"],
         m["transformers_single"]["requests"])
    c.true("no server left", not m["left_running"] and not m["port_open"])


def lesson_17(m, c: Claims):
    c.true("two gloo ranks", m["backend"] == "gloo" and m["world"] == 2 and m["ranks"] == [0, 1])
    c.eq("accelerate ranks", m["accelerate_ranks"], [0, 1])
    c.eq("shared first-batch rows", m["shared_first_batch_rows"], 0)
    c.true("same weights (DDP, FSDP, accelerate)", m["ddp_same_weights"] and m["fsdp_same_weights"]
           and m["accelerate_same_weights"])
    c.lt("DDP / FSDP loss gap", max(m["ddp_loss_gap"], m["fsdp_loss_gap"]), 1e-4)
    ddp, fsdp = m["ddp_param_bytes"], m["fsdp_param_bytes"]
    c.eq("FSDP shards add up", sum(fsdp) - ddp[0], 0)
    c.lt("|FSDP rank share - 0.5| (parameters)", max(abs(b / ddp[0] - 0.5) for b in fsdp), 0.01)
    c.lt("|FSDP rank share - 0.5| (optimizer)",
         max(abs(b / m["ddp_optimizer_bytes"][0] - 0.5) for b in m["fsdp_optimizer_bytes"]), 0.01)
    c.eq("ZeRO GB on 8 GPUs", m["zero_gb_8_gpus"], {"DDP": 16.0, "ZeRO-1": 5.5, "ZeRO-2": 3.75, "ZeRO-3 / FSDP": 2.0})


def lesson_18(m, c: Claims):
    base, sizes = m["baseline"], m["sizes"]
    dense, sparse, small = sizes["dense"], sizes["unstructured 50 %"], sizes[f"structured, {m['keep']:.0%} of neurons"]
    c.eq("precision", m["precision"], "fp32")
    c.eq("zero share at 50 %", m["zero_share_50"], 0.5)
    c.true("unstructured: same parameters and bytes", sparse["parameters"] == dense["parameters"]
           and sparse["bytes"] == dense["bytes"])
    c.lt("unstructured / dense forward tokens/s", sparse["forward_tokens_per_s"] / dense["forward_tokens_per_s"], 1.15)
    c.le("structured / dense parameters", small["parameters"] / dense["parameters"], 0.7)
    c.le("structured / dense bytes", small["bytes"] / dense["bytes"], 0.7)
    c.ge("structured / dense forward tokens/s", small["forward_tokens_per_s"] / dense["forward_tokens_per_s"], 1.2)
    c.true("more pruning, higher perplexity", all(runs[-1]["perplexity"] > runs[0]["perplexity"]
                                                 for runs in m["sweep"].values()))
    # claimed on the answers' perplexity, not accuracy: over seeds 0 1 x default avx2, pruned - random accuracy
    # was 0.05-0.57 and dense - pruned 0.08-0.31 (the sums family is a lottery at this size); perplexity ratios were
    # 1.32-6.8 and 1.30-2.4, the loss share recovered 0.59-0.99
    c.ge("random / importance-pruned perplexity", m["random_neurons"]["perplexity"] / m["pruned"]["perplexity"], 1.2)
    c.ge("pruned / dense perplexity", m["pruned"]["perplexity"] / base["perplexity"], 1.2,
         "KEEP must cost quality for the recovery to mean anything")
    c.ge("recovered share of the added answer loss", m["recovered_loss_share"], 0.5)
    c.lt("recovered / pruned perplexity", m["recovered"]["perplexity"] / m["pruned"]["perplexity"], 1)


def lesson_19(m, c: Claims):
    models, sft, dpo, served = m["evaluation"]["models"], m["sft"], m["dpo"], m["serve"]
    base, tuned, aligned = models["base"], models["merge_sft"], models["merge_dpo"]
    c.eq("precision", m["precision"], "fp32")
    for kind, cur in m["curate"].items():
        for problem, share in cur["caught"].items():
            c.eq(f"curate {kind}: planted {problem} rows removed", share, 1.0)
        c.eq(f"curate {kind}: escaped prompts repaired", cur["repaired"], 1.0)
        c.true(f"curate {kind}: rows nothing was planted in are removed only as duplicates",
               set(cur["unplanted_removed"]) <= {"duplicate"})
    c.true("SFT trained on the 8-bit base", sft["base_8bit"])
    c.lt("SFT loss last / first", sft["loss_last"] / sft["loss_first"], 0.3)
    c.ge("SFT - base: held-out task accuracy", tuned["accuracy"] - base["accuracy"], 0.4, "SFT beats base")
    c.ge("SFT vs base: per-prompt win rate", m["evaluation"]["win_rates"]["merge_sft vs base"]["win_rate"], 0.6)
    c.le("DPO - SFT: hallucination rate", aligned["hallucination"] - tuned["hallucination"], -0.5)
    c.ge("DPO - SFT: held-out task accuracy (kept)", aligned["accuracy"] - tuned["accuracy"], -0.05)
    c.gt("DPO vs SFT: lower bound of the exact-match difference",
         m["evaluation"]["win_rates"]["merge_dpo vs merge_sft"]["difference_ci"][1], 0)
    for stage in ("merge_sft", "merge_dpo"):
        c.lt(f"{stage}: largest logit difference / tolerance", m[stage]["max_logit_diff"] / m[stage]["logit_tolerance"], 1)
    c.eq("evaluate: in-process accuracy of the merged DPO model = the DPO stage's", aligned["accuracy"], dpo["accuracy_after"])
    for name, scores in models.items():
        c.eq(f"lm-eval and the course agree on every prompt ({name})", scores["harness"]["same_verdicts"],
             m["evaluation"]["rows"])
    c.ge("DPO: lm-eval choice of the chosen reply (log-likelihood, 2 choices)", aligned["harness"]["choice_accuracy"],
         0.9, "DPO trains exactly this preference")
    c.ge("GGUF q8_0: fp32 / GGUF size", m["gguf"]["q8_0"]["size_ratio"], 3)
    c.gt("GGUF Q4_K_M smaller than q8_0", m["gguf"]["q8_0"]["mb"] / m["gguf"]["Q4_K_M"]["mb"], 1.2)
    for engine, s in served.items():
        exact = engine in ("transformers", "vllm")
        c.ge(f"{engine}: served - in-process task accuracy", m["served_minus_in_process"][engine], 0 if exact else -0.1)
        c.le(f"{engine}: served - in-process task accuracy (upper)", m["served_minus_in_process"][engine], 0 if exact else 0.1)
        c.eq(f"{engine}: status without the key", s["no_key_status"], 401)
        c.eq(f"{engine}: status with a wrong key", s["wrong_key_status"], 401)
        c.true(f"{engine}: nothing left running", not s["left_running"])
    c.eq("resume: stages skipped", m["resume_skipped"], m["resume_stages"])
    c.true("resume: results identical", m["resume_identical"])


def lesson_20(m, c: Claims):
    dapt, domain, only, int8, served = m["dapt"], m["domain_sft"], m["sft_only"], m["int8"], m["serve"]
    c.eq("precision", m["precision"], "fp32")
    c.ge("DAPT: domain perplexity drop", dapt["domain_ppl_drop"], 0.25, "practitioners' 30-40 %; ~100 % on a new field")
    c.lt("DAPT: loss last / first", dapt["loss_last"] / dapt["loss_first"], 0.5)
    c.le("DAPT with replay: general perplexity after / before", dapt["general_ppl_after"] / dapt["general_ppl_before"],
         1.25, "replay keeps the general text")
    c.lt("merge_dapt: largest logit difference / tolerance", m["merge_dapt"]["max_logit_diff"] /
         m["merge_dapt"]["logit_tolerance"], 1)
    c.lt("merged vs stacked adapters: largest logit difference", m["merge_domain"]["max_logit_diff"], 1e-4)
    c.ge("8 bits: linear layers fp32 / int8", int8["linear_ratio"], 3.5)
    c.le("8 bits: |domain perplexity int8 / fp32 - 1|", abs(int8["domain_ppl_ratio"] - 1), 0.03)
    c.le("8 bits: |held-out accuracy with retrieval int8 - fp32|", abs(int8["int8"]["rag"] - int8["fp32"]["rag"]), 0.1)
    c.eq("the merged model's held-out accuracy = the stacked model's (retrieval)", int8["fp32"]["rag"], domain["rag"])
    tuned, untuned, bm25 = (m["retriever"]["recall"][name] for name in ("tuned", "untuned", "bm25"))
    c.le("dense retriever, untuned: recall@k", untuned["recall@3"], 0.3, "masked-LM pretraining is no retrieval")
    c.ge("dense retriever, tuned: recall@k (herbs never in a pair)", tuned["recall@3"], 0.85)
    c.ge("BM25: recall@k (exact names)", bm25["recall@3"], 0.95)
    c.ge("retrieval: top-k sentences state the asked fact", domain["retrieval_recall"], 0.85)
    c.ge("DAPT + SFT: held-out accuracy with dense retrieval - closed-book",
         domain["rag_by_search"]["dense"] - domain["closed_book"], 0.3)
    c.ge("DAPT + SFT: held-out accuracy with retrieval", domain["rag"], 0.6)
    for name, run in (("DAPT + SFT", domain), ("SFT only", only)):
        c.ge(f"{name}: held-out accuracy with retrieval - closed-book", run["rag"] - run["closed_book"], 0.4)
        c.le(f"{name}: closed-book held-out accuracy (near guessing, 1/9)", run["closed_book"], 0.35)
    for mode, diff in m["served_minus_in_process"].items():
        c.le(f"serve: |served - in-process accuracy| ({mode})", abs(diff), 0.05)
    c.eq("serve: status without the key", served["no_key_status"], 401)
    c.eq("serve: status with a wrong key", served["wrong_key_status"], 401)
    c.true("serve: nothing left running", not served["left_running"])
    c.eq("resume: stages skipped", m["resume_skipped"], m["resume_stages"])
    c.true("resume: results identical", m["resume_identical"])


# Metrics whose spread over a seeds × kernel-sets matrix is itself a claim (``python -m course matrix``): the
# largest max - min allowed. Lesson 03's held-out accuracy is the quality every later lesson's SFT model starts from.
SPREADS = {("03", "accuracy_after"): 0.06}

CLAIMS: dict[str, Callable] = {name.split("_")[1]: fn for name, fn in dict(globals()).items()
                               if name.startswith("lesson_") and callable(fn)}


def evaluate(number: str, metrics: dict) -> list[Check]:
    """Every check of lesson ``number`` on its recorded ``metrics``. A metric the claims read but the run did not
    record becomes one failed check naming it (a lesson that crashed half-way fails, it is not skipped)."""
    claims = Claims(number)
    try:
        CLAIMS[number](metrics, claims)
    except (KeyError, IndexError, TypeError, ZeroDivisionError) as err:
        claims.add(f"metrics readable ({type(err).__name__}: {err})", False, "==", True,
                   "the run did not record what the claims read")
    return claims.checks


def failures(number: str, metrics: dict) -> list[Check]:
    """The checks of lesson ``number`` that its ``metrics`` fail."""
    return [check for check in evaluate(number, metrics) if not check.ok]
