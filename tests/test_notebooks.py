"""Execute every ready notebook headless (tiny profile, via the course runner) and assert what each lesson measured."""

import json
import os

import pytest

from course import report, runner, syllabus

# Notebooks at once, one torch thread each. Measured on 2 cores, warm cache: 2 at once 313 s, one at a time 390 s,
# with identical metrics (the closing note of issue 6).
JOBS = int(os.environ.get("COURSE_TEST_JOBS", "2"))


@pytest.fixture(scope="session")
def run(tmp_path_factory):
    syl = syllabus.load()
    run_dir = runner.run_path(syl, "complete", "tiny", out_root=tmp_path_factory.mktemp("runs"), jobs=JOBS)
    report.write_report(run_dir)
    summary = json.loads((run_dir / "run.json").read_text())
    return {r["number"]: r for r in summary["lessons"]}, run_dir


def lesson(run, number):
    records, run_dir = run
    record = records[number]
    assert record["status"] == "ok", f"{record['stem']} failed: {record['error']}\n{(run_dir / 'report.md').read_text()}"
    return record["metrics"]


def test_every_ready_lesson_ran_and_planned_were_skipped(run):
    records, run_dir = run
    syl = syllabus.load()
    for number, record in records.items():
        expected = "ok" if syl.lessons[number].status == "ready" else "planned"
        assert record["status"] == expected, record
    assert (run_dir / "report.md").exists()


def test_every_lesson_fits_in_a_small_machine(run):
    # The runner's probe cell recorded each kernel's peak memory; the tiny profile must run on any laptop.
    records, _ = run
    for record in records.values():
        if record["status"] == "ok":
            assert 0.1 < record["resources"]["host_gib"] < 4.0, record["stem"]


def test_00_welcome(run):
    m = lesson(run, "00")
    syl = syllabus.load()
    assert m["ready_lessons"] == sum(x.status == "ready" for x in syl.lessons.values())
    assert m["test_train_prompt_overlap"] == 0 and m["test_train_add_pair_overlap"] == 0
    assert m["bad_file_error_names_line"] is True and m["env_ok"] is True


def test_01_pretraining(run):
    m = lesson(run, "01")
    assert m["precision"] == "fp32"
    assert m["tokenizer_roundtrip"] is True and m["bytes_per_token"] > 2.5
    assert m["rmsnorm_max_diff"] < 1e-5
    assert m["val_ppl_before"] > 0.5 * m["vocab_size"], "an untrained model is near uniform"
    assert m["val_ppl_after"] <= 0.5 * m["val_ppl_before"], "validation perplexity must at least halve"
    assert m["val_ppl_after"] < 0.05 * m["vocab_size"], "a trained model beats uniform by far"
    assert m["resume_max_loss_diff"] == 0.0, "resuming from the checkpoint must reproduce the losses"


def test_02_sft(run):
    m = lesson(run, "02")
    assert m["precision"] == "fp32" and m["steps"] == 300
    assert m["accuracy_after"] - m["accuracy_before"] >= 0.30, m
    assert m["train_loss_last"] < m["train_loss_first"] / 2
    assert max(m["per_task_after"].values()) >= 0.5


def test_03_lora_qlora(run):
    m = lesson(run, "03")
    assert m["full_accuracy"] - m["accuracy_before"] >= 0.30, m
    assert m["lora_accuracy"] - m["accuracy_before"] >= 0.30, m
    assert m["qlora_accuracy"] - m["accuracy_before"] >= 0.30, m
    # the lesson's claim: on facts the base learned in pretraining (sums, capitals) LoRA is as good as full FT;
    # first letters need the embeddings, which LoRA keeps frozen
    known = ("add", "capital")
    lora_known = sum(m["lora_per_task"][t] for t in known) / 2
    assert lora_known >= sum(m["full_per_task"][t] for t in known) / 2 - 0.10, m
    assert m["full_per_task"]["letter"] - m["lora_per_task"]["letter"] >= 0.30, m
    assert m["lora_trainable_share"] < 0.25
    assert m["footprint_ratio"] >= 4.0, "the 4-bit model must be at least 4x smaller than fp32"
    assert 6.0 <= m["quantized_layers_ratio"] < 8.0, "4-bit codes plus block scales: under 8x, well over 4x"
    assert m["precision"] == "fp32" and m["full_steps"] == 300 and m["lora_steps"] == 300
    # the bound follows the precision used (helpers.precision); in fp32 it is a few 1e-4 of logits ~15
    assert m["merged_max_logit_diff"] < m["merged_logit_tolerance"] < 1e-3
    assert m["merged_reloaded_accuracy"] == m["lora_accuracy"]


def test_exercises_show_not_tried_without_failing(run):
    _, run_dir = run
    nb = json.loads((run_dir / "02_sft.ipynb").read_text())
    outputs = "".join(o.get("text", "") if isinstance(o.get("text", ""), str) else "".join(o["text"])
                      for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", []))
    assert "02.masked_fraction: not tried yet" in outputs


def test_04_data_curation(run):
    m = lesson(run, "04")
    assert m["documents"] == 945 and m["reloaded"] == m["kept"]
    assert m["repaired"] == {"markup": 1.0, "mojibake": 1.0} and m["clean_untouched"] == 1.0
    by_kind = m["quality_removed_by_kind"]
    for kind, planted in {"short": 25, "repetitive": 15, "symbols": 15, "foreign": 20}.items():
        assert by_kind.get(kind) == planted, f"every {kind} document must go: {by_kind}"
    assert by_kind.get("clean", 0) <= 0.01 * m["clean_total"], f"filters must keep 99 % of clean documents: {by_kind}"
    assert m["exact_scores"]["precision"] == 1.0 and m["exact_scores"]["recall"] == 1.0, m["exact_scores"]
    near = m["near_scores"]
    assert near["precision"] >= 0.9 and near["recall"] >= 0.9, f"near-dup detector against the planted truth: {near}"
    assert abs(m["jaccard_by_hand"] - m["jaccard_minhash"]) < 0.1 and m["jaccard_by_hand"] >= 0.5
    assert m["closest_nonduplicate"] < m["threshold"] < m["farthest_duplicate"], "the threshold separates the two"
    assert m["kinds_left"]["contaminated"] == 0 and m["contaminated_removed"] == 30, "those 30 and no other"
    assert m["pii_left"] == 0 and m["pii_planted"] == 80 and m["scrubbed_wrongly"] == 0


def test_05_distillation(run):
    m = lesson(run, "05")
    r = m["results"]
    assert m["precision"] == "fp32" and m["steps"] == 400 and m["size_ratio"] <= 0.4
    assert max(abs(m["loss_by_hand"] - m["loss_torch"]), abs(m["loss_by_hand"] - m["loss_trl"])) < 1e-6
    assert 0 < m["top_k_mass"] < 1 and m["before_accuracy"] < 0.1, "the student starts unable to answer"
    # soft targets at every position beat the answers alone on the same data, steps and learning rate
    assert r["distilled"]["accuracy"] >= r["hard labels"]["accuracy"] + 0.2, r
    assert r["distilled"]["kept"] >= 0.7 and r["on-policy"]["kept"] >= 0.7, "a sixth of the size, most of the accuracy"
    assert r["distilled"]["parameters"] <= 0.4 * r["teacher"]["parameters"]
    students = [r[name]["tokens_per_s"] for name in ("hard labels", "distilled", "on-policy")]  # one architecture
    assert sum(students) / 3 >= 1.2 * r["teacher"]["tokens_per_s"], "a smaller model decodes faster"
    assert m["seconds"]["on-policy"] > 0 and m["reloaded_accuracy"] == r[m["best"]]["accuracy"]


def test_06_reward_model(run):
    m = lesson(run, "06")
    assert m["precision"] == "fp32" and m["rm_steps"] == 300
    assert abs(m["hand_loss"] - m["trainer_loss"]) < 1e-5, "the Bradley-Terry loss by hand must match RewardTrainer's"
    assert m["hand_loss"] < 0.6, "checked on the trained model, not at log 2 where any two scores that tie agree"
    assert m["pairwise_before"] == 0.5, "a zero score head ties every pair: chance"
    assert m["pairwise_after"] >= 0.85 and m["pairwise_after"] >= m["pairwise_before"] + 0.25, m
    assert m["pairwise_per_task_after"]["unknown"] >= 0.9, "declining must beat an invented capital"
    assert m["on_policy_pairs"] >= 100
    # best-of-n follows its judge: where the reward model ranks pairs well it must beat one sample (on held-out
    # sums it judges poorly and the lesson shows best-of-n can lose there)
    judged = [t for t in ("capital", "letter") if m["pairwise_per_task_after"][t] >= 0.9]
    assert judged == ["capital", "letter"], m["pairwise_per_task_after"]
    one = sum(m["sample_accuracy"][t] for t in judged) / 2
    best = sum(m["best_of_n_accuracy"][t] for t in judged) / 2
    assert best >= one + 0.04, f"best-of-{m['best_of_n']} must beat one sample: {best:.3f} vs {one:.3f}"
    assert m["hallucination_rate"]["n=1"] >= 0.9, "the SFT model never declines: the premise of 07 and 08"


def test_07_dpo(run):
    m = lesson(run, "07")
    assert m["precision"] == "fp32" and m["dpo_steps"] == 100 and m["nll_weight"] == 1.0
    assert abs(m["hand_loss"] - m["trainer_loss"]) < 1e-5, "DPO + NLL by hand must match DPOTrainer's loss"
    assert m["sft_hallucination"] >= 0.9, "the SFT model never declines: what DPO has to change"
    assert m["dpo_preference_accuracy"] >= 0.80 and m["dpo_preference_accuracy"] >= m["sft_preference_accuracy"] + 0.1
    assert m["sft_hallucination"] - m["dpo_hallucination"] >= 0.30, "the target behaviour must move by 30 points"
    known = ("add", "capital", "letter")
    sft_tasks = sum(m["sft_per_task"][t] for t in known) / 3
    assert sum(m["dpo_per_task"][t] for t in known) / 3 >= sft_tasks - 0.05, "DPO must keep the tasks"
    # the variant ran on the same budget and was measured
    assert m["orpo_hallucination"] <= m["sft_hallucination"] - 0.2 and m["orpo_preference_accuracy"] >= 0.8
    assert set(m["orpo_per_task"]) == set(m["dpo_per_task"]) and m["orpo_seconds"] > 0
    assert m["merged_max_logit_diff"] < m["merged_logit_tolerance"] < 1e-3
    assert m["merged_per_task"] == m["dpo_per_task"] and m["merged_hallucination"] == m["dpo_hallucination"]


def test_08_ppo_rlhf(run):
    m = lesson(run, "08")
    assert m["precision"] == "fp32" and m["ppo_steps"] == 40 and m["kl_coef"] == 1.0
    assert max(m["gae_max_diff"], m["clip_loss_diff"], m["kl_sum_diff"]) < 1e-5, "PPO's pieces must match by hand"
    ppo, free, last = m["ppo_evals"], m["free_evals"], str(m["ppo_steps"])
    assert ppo["0"] == free["0"] and ppo["0"]["kl"] == 0.0, "both runs start from the SFT policy"
    assert ppo[last]["reward"] >= ppo["0"]["reward"] + 0.25, "with the KL penalty the held-out reward must rise"
    assert 0 < ppo[last]["kl"] < 0.5 and free[last]["kl"] >= 3 * ppo[last]["kl"], "no penalty: several times the KL"
    trained = ("capital", "letter")
    sft, kept, hacked = (sum(m[f"{k}_per_task"][t] for t in trained) / 2 for k in ("sft", "ppo", "free"))
    assert kept >= sft - 0.05 and hacked <= sft - 0.10, "the penalised run keeps its answers, the free run loses them"
    assert m["greedy_changed"]["β = 0"] >= 2 * m["greedy_changed"]["β = 1.0"] + 5
    assert m["rloo_eval"]["reward"] >= ppo["0"]["reward"] + 0.25 and m["rloo_seconds"] > 0, "RLOO ran and learned"


def test_09_grpo(run):
    m = lesson(run, "09")
    assert m["precision"] == "fp32" and m["grpo_steps"] == 150 and m["train_tasks"] == ["capital", "letter"]
    assert m["advantage_diff"] < 1e-5 and m["signal_groups"] >= 1, "group advantages by hand must match TRL's"
    target, before, after = m["target_task"], m["heldout_before"], m["heldout_after"]
    assert before[target] <= m["clean_before"][target] - 0.3, "the premise: a distractor makes the SFT model weak"
    assert after[target] >= before[target] + 0.15, "held-out accuracy on the chosen family must rise by 15 points"
    assert m["mistakes_before"][target]["wrong_kind"] >= 0.3, "half the SFT model's wrong letters are not letters"
    assert m["mistakes_after"][target]["wrong_kind"] <= 0.1, "the format reward and correctness remove them"
    assert m["reward_after"] >= m["reward_before"] + 0.2, "the held-out mean reward must rise"
    assert m["train_reward_last"] >= m["train_reward_first"] + 0.1, "and the training reward curve with it"
    for task in m["train_tasks"]:  # the bare questions of the trained families are kept
        assert m["clean_after"][task] >= m["clean_before"][task] - 0.05, (task, m["clean_before"], m["clean_after"])


def test_10_evaluation(run):
    m = lesson(run, "10")
    n = m["test_questions"]
    assert m["precision"] == "fp32" and n == 300 and m["distinct_questions"] < n
    # SFT beats base with a (question-level) confidence interval that excludes 0, and wins the A/B comparison
    assert m["differences"]["SFT-base:all"][1] > 0.3, m["differences"]["SFT-base:all"]
    assert m["win_rates"]["SFT vs base"]["win_rate"] >= 0.7
    # the aligned model: the honesty it was trained for shows; the known families stay where they were
    assert m["differences"]["aligned-SFT:unknown"][1] > 0.5
    for task in ("add", "capital", "letter"):
        assert m["differences"][f"aligned-SFT:{task}"][1] <= 0 <= m["differences"][f"aligned-SFT:{task}"][2]
    # resampling distinct questions, not repeated rows, widens the intervals
    row, clustered = m["row_intervals"]["SFT"]["add"], m["intervals"]["SFT"]["add"]
    assert clustered[2] - clustered[1] > 1.5 * (row[2] - row[1])
    # lm-eval and the course's evaluator: the same number, and the same verdict on every question
    for name in ("base", "SFT", "aligned"):
        assert m["harness"][name]["generate EM"] == m["exact_match"][name]
        assert m["harness_same_rows"][name] == n
        assert 0.4 <= m["harness"][name]["yes/no acc"] <= 0.6, "no model was taught yes/no: chance"
    assert m["harness"]["base"]["choice acc"] >= m["harness"]["base"]["generate EM"] + 0.3, "likelihood sees more"
    # the judges were measured: position bias shows when the answers swap; the reward model agrees with the rubric
    assert m["judge_pairs"] >= 100 and 0 <= m["judge_flip_rate"] <= 1
    assert m["judge_agreement"] - m["judge_swapped_agreement"] >= 0.5 and m["judge_flip_rate"] >= 0.5
    assert m["rm_judge_agreement"] >= 0.75
    # format: the same model without its chat template
    assert m["exact_match"]["SFT"] - m["plain_exact_match"]["SFT"] >= 0.2
    assert m["harness_no_template_exact_match"] <= m["exact_match"]["SFT"] - 0.3
    # perplexity: the SFT model answers with low perplexity and has forgotten the corpus
    assert max(m["perplexity"]["SFT"][t] for t in ("add", "capital", "letter")) < 3
    assert m["perplexity"]["SFT"]["corpus"] > 10 * m["perplexity"]["base"]["corpus"]
    # contamination: none in the fine-tuning data, a planted leak found whole, pretraining facts counted
    assert m["test_prompts_in_train"] == 0 and m["planted_leak_recall"] == 1.0 and m["planted_leak_false_alarms"] == 0
    assert m["answers_in_pretraining"] == {"add": 1.0, "capital": 1.0, "unknown": 0.0}
    # one log per run, with every question; the diff of two runs counts what DPO fixed
    assert m["log_items"] == n
    assert m["diff_counts"]["fixed"] >= 0.5 * 60 and m["diff_counts"]["broken"] <= 5


def test_11_decoding_kv_cache(run):
    m = lesson(run, "11")
    assert m["model"] == "tiny:large" and m["parameters"] > 5e6 and m["new_tokens"] == 256
    assert m["filters_match_transformers"], "top-k, top-p and min-p by hand must keep transformers' token sets"
    assert m["loop_matches_generate"], "the hand-written KV-cache loop must equal generate token for token"
    assert m["cache_speedup"] >= 3, f"cached decoding must be >= 3x uncached at 256 tokens: {m['cache_speedup']:.2f}"
    assert abs(m["cache_bytes_measured"] / m["cache_bytes_formula"] - 1) <= 0.10 and m["cache_tokens"] > 256
    assert abs(m["gqa_cache_saving"] - m["attention_heads"] / m["kv_heads"]) < 0.01
    rep = m["repetition"]
    assert rep["greedy"] >= 0.15 and rep["greedy + repetition penalty 1.3"] <= rep["greedy"] - 0.1, rep
    eager, sdpa = m["kernel_seconds"]["eager"][-1], m["kernel_seconds"]["sdpa"][-1]
    assert eager >= 1.1 * sdpa, f"SDPA must beat eager attention at {m['seq_lens'][-1]} tokens: {eager:.3f} s vs {sdpa:.3f} s"


def test_12_quantization(run):
    m = lesson(run, "12")
    assert m["model"] == "tiny:large"
    assert m["int8_codes_identical"] >= 0.999, "absmax int8 by hand must give bitsandbytes' codes"
    assert m["nf4_table_max_diff"] < 1e-6 and m["nf4_hand_vs_library"] < 1e-6, "NF4 by hand must equal bitsandbytes'"
    err = m["relative_error"]
    assert err["NF4, per block of 64"] < 0.8 * err["4-bit evenly spaced, per row"], err
    ppl = m["rounded_ppl"]
    assert ppl["2"] >= 1.1 * ppl["8"], f"ternary rounding must visibly hurt: {ppl}"
    assert m["gguf_conversion_logit_diff"] < 0.05, "the f32 GGUF must compute the PyTorch model's logits"
    r = m["results"]
    fp32 = r["fp32"]
    for name, bits in [("bnb int8", 8), ("quanto int8", 8), ("gguf q8_0", 8), ("bnb nf4", 4), ("bnb fp4", 4),
                       ("gguf q4_k_m", 4)]:
        shrink = fp32["linear MB"] / r[name]["linear MB"]
        assert shrink >= (3.5 if bits == 8 else 6.0), f"{name}: quantized layers only {shrink:.2f}x smaller"
        assert r[name]["model MB"] < fp32["model MB"], name
        rise = r[name]["perplexity"] / fp32["perplexity"] - 1
        assert rise <= (0.02 if bits == 8 else 0.10), f"{name}: perplexity +{rise:.1%}"
        assert abs(r[name]["next-token accuracy"] - fp32["next-token accuracy"]) <= 0.02, name
    assert abs(r["gguf f32"]["perplexity"] / fp32["perplexity"] - 1) < 1e-3, "same model, same perplexity"
    speedup = r["gguf q4_k_m"]["tokens/s"] / r["gguf f32"]["tokens/s"]
    assert speedup >= 2, f"llama.cpp q4_K_M must decode >= 2x faster than its f32: {speedup:.2f}"
    assert m["gguf_fallback_tensors"] == 0, "k-quants need rows a multiple of 256 wide"


def test_13_speculative_decoding(run):
    m = lesson(run, "13")
    assert m["target"] == "tiny:large" and m["draft"] == "tiny:draft" and m["size_ratio"] >= 10
    assert m["rule_matches_library"], "greedy verification by hand must equal the library's first step"
    assert m["identical_to_greedy"], "speculative decoding must not change greedy output"
    assert m["best_speedup"] >= 1.5, f"the best method must be >= 1.5x plain greedy: {m['best_method']} {m['best_speedup']:.2f}"
    results = m["results"]
    assert all(0 < r["acceptance"] <= 1 for r in results.values()), "acceptance is read from the candidate generators"
    lookup = [r for key, r in results.items() if key.startswith("prompt lookup / repetitive")]
    story = [r for key, r in results.items() if key.startswith("prompt lookup / story")]
    assert max(r["acceptance"] for r in lookup) > max(r["acceptance"] for r in story), "lookup needs repetition"


def test_14_serving(run):
    m = lesson(run, "14")
    assert m["engine"] == "transformers" and m["model"] == "tiny:large" and m["served_models"] == ["tiny:large"]
    assert m["served_equals_local"] == 1.0, "on CPU in fp32 the served greedy text must equal generate's"
    assert m["streamed_same"] and m["streamed_chunks"] >= 10 and m["first_chunk_s"] < m["stream_total_s"] / 2
    assert m["auth_status"] == {"no key": 401, "wrong key": 401, "right key": 200}
    assert m["client_wrong_key_status"] == 401 and m["no_completion_without_key"]
    assert len(m["bad_request_status"]) == 5 and all(400 <= s < 500 for s in m["bad_request_status"].values())
    assert m["served_after_bad"], "the server must keep serving after bad requests"
    assert m["concurrency_gain"] >= 2, f"8 in flight must give >= 2x the requests/s of 1: {m['concurrency_gain']:.2f}"
    assert m["one_at_a_time_gain"] < 1.5 < m["concurrency_gain"], "the gain comes from batching, not from overlap"
    tokens = {c: r["tokens"] for c, r in m["batched"].items()}
    assert len(set(tokens.values())) == 1 and min(tokens.values()) > 16 * 16, f"same work at every level: {tokens}"
    assert not m["left_running"] and not m["port_open"]


def test_no_server_outlives_its_lesson(run):
    import psutil

    survivors = [p.info for p in psutil.process_iter(["pid", "cmdline"])
                 if any(name in " ".join(p.info["cmdline"] or []) for name in ("helpers.serving", "train_dist.py"))]
    assert not survivors, f"lesson 14's servers or lesson 15's ranks left behind: {survivors}"


def test_every_figure_is_shown_once(run):
    # a plot helper that returned its figure was displayed twice when its call ended a cell
    records, run_dir = run
    for record in records.values():
        if record["status"] != "ok":
            continue
        nb = json.loads((run_dir / f"{record['stem']}.ipynb").read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                images = sum("image/png" in o.get("data", {}) for o in cell.get("outputs", []))
                assert images <= "".join(cell["source"]).count("plots.plot_"), (record["stem"], cell["source"][:2])


def test_15_distributed_training(run):
    m = lesson(run, "15")
    assert m["backend"] == "gloo" and m["world"] == 2 and m["ranks"] == [0, 1], "two ranks really ran"
    assert m["accelerate_ranks"] == [0, 1], "accelerate launch --multi_gpu gives two processes on a CPU too"
    assert m["shared_first_batch_rows"] == 0, "each rank takes its own shard"
    assert m["ddp_same_weights"] and m["fsdp_same_weights"] and m["accelerate_same_weights"]
    assert m["ddp_loss_gap"] < 1e-4 and m["fsdp_loss_gap"] < 1e-4, "same global batch, same losses as one process"
    ddp, fsdp = m["ddp_param_bytes"], m["fsdp_param_bytes"]
    assert sum(fsdp) == ddp[0] and all(abs(b / ddp[0] - 0.5) < 0.01 for b in fsdp), "FSDP: each rank half"
    assert all(abs(b / m["ddp_optimizer_bytes"][0] - 0.5) < 0.01 for b in m["fsdp_optimizer_bytes"])
    assert m["zero_gb_8_gpus"] == {"DDP": 16.0, "ZeRO-1": 5.5, "ZeRO-2": 3.75, "ZeRO-3 / FSDP": 2.0}


def test_16_pruning(run):
    m = lesson(run, "16")
    base, sizes = m["baseline"], m["sizes"]
    dense, sparse, small = sizes["dense"], sizes["unstructured 50 %"], sizes["structured, 25% of neurons"]
    assert m["precision"] == "fp32" and m["zero_share_50"] == 0.5, "50 % magnitude pruning zeroes exactly half"
    # zeros stored in dense matrices: nothing smaller, nothing faster
    assert sparse["parameters"] == dense["parameters"] and sparse["bytes"] == dense["bytes"]
    assert sparse["forward_tokens_per_s"] < 1.15 * dense["forward_tokens_per_s"]
    # whole neurons removed: a smaller model, faster with the same dense kernels
    assert small["parameters"] <= 0.7 * dense["parameters"] and small["bytes"] <= 0.7 * dense["bytes"]
    assert small["forward_tokens_per_s"] >= 1.2 * dense["forward_tokens_per_s"], sizes
    # the sweep: more pruning costs more, and the importance score beats chance
    for runs in m["sweep"].values():
        assert runs[-1]["perplexity"] > runs[0]["perplexity"]
    assert m["pruned"]["accuracy"] >= m["random_neurons"]["accuracy"] + 0.2
    # prune, then distill: a measured part of the lost accuracy comes back
    assert base["accuracy"] - m["pruned"]["accuracy"] >= 0.1, "KEEP must cost accuracy for the recovery to mean anything"
    assert m["recovered_share"] >= 0.5 and m["recovered"]["perplexity"] < m["pruned"]["perplexity"]
