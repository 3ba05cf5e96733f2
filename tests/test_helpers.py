import json
import math
import re

import pytest

from course import syllabus as course_syllabus
from helpers import environment, exercises, metrics, profiles


def test_record_metrics_merges_and_rejects_bad_values(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_OUTPUT_DIR", str(tmp_path))
    metrics.record_metrics("99_x", a=1, b=0.5)
    assert metrics.record_metrics("99_x", b=0.25, per_task={"add": 1.0}) is None, "nothing for a cell to display"
    assert json.loads((tmp_path / "99_x.metrics.json").read_text()) == {"a": 1, "b": 0.25, "per_task": {"add": 1.0}}
    with pytest.raises(ValueError):
        metrics.record_metrics("99_x", c=math.nan)
    with pytest.raises(TypeError):
        metrics.record_metrics("99_x", c=object())


def test_experiment_log_writes_config_seed_versions(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_OUTPUT_DIR", str(tmp_path))
    log = metrics.ExperimentLog("run1", config={"lr": 0.1}, seed=3)
    log.log(1, loss=2.0)
    record = json.loads(log.finish(accuracy=0.5).read_text())
    assert record["config"] == {"lr": 0.1} and record["seed"] == 3
    assert record["history"] == [{"step": 1, "loss": 2.0}] and record["final"] == {"accuracy": 0.5}
    assert record["versions"]["torch"] != "-"
    assert metrics.report_to(False) == "none"


def test_profiles_and_overrides():
    assert profiles.resolve_profile("auto") == "tiny"  # no CUDA on CPU machines
    with pytest.raises(ValueError, match="unknown PROFILE"):
        profiles.resolve_profile("huge")
    tiny = profiles.get_profile("tiny", sft_steps=7, base_model=None)
    assert tiny.sft_steps == 7 and tiny.base_model == "tiny:base"
    with pytest.raises(ValueError, match="unknown profile field"):
        profiles.get_profile("tiny", nope=1)
    assert set(profiles.PROFILES) == {"tiny", "t4"}
    assert all(not p.base_model.startswith("tiny:") for n, p in profiles.PROFILES.items() if n == "t4")


def test_setup_seeds_reproducibly():
    import torch

    environment.set_seed(5)
    a = torch.rand(3)
    environment.set_seed(5)
    assert torch.equal(a, torch.rand(3))
    assert environment.pick_device(verbose=False) == "cpu"
    assert environment.hosted_platform() == "local"


def test_exercise_checkers_accept_right_and_reject_wrong_answers():
    syl = course_syllabus.load()
    ready = sum(syl.lessons[n].status == "ready" for n in syl.paths["fast-track"])
    assert exercises.check("00.fast_track_ready", ready, syllabus=syl) is True
    assert exercises.check("00.fast_track_ready", ready + 1, syllabus=syl) is False
    assert exercises.check("00.fast_track_ready", None, syllabus=syl) is None
    assert exercises.check("01.ppl_from_loss", math.exp(1.5), loss=1.5) is True
    assert exercises.check("01.ppl_from_loss", 1.5, loss=1.5) is False
    assert exercises.check("03.masked_fraction", 0.75, labels=[-100, -100, -100, 4]) is True
    assert exercises.check("04.lora_params", 16 * (128 + 384), d_in=128, d_out=384, r=16) is True
    assert exercises.check("04.lora_params", 16 * 128 * 384, d_in=128, d_out=384, r=16) is False
    assert exercises.check("04.nf4_bytes", 562_500, n_weights=1_000_000) is True
    assert exercises.check("04.nf4_bytes", 4_000_000, n_weights=1_000_000) is False
    assert exercises.check("14.bits_per_weight", 4.5, code_bits=4, block=64, scale_bits=32) is True
    assert exercises.check("14.bits_per_weight", 4, code_bits=4, block=64, scale_bits=32) is False
    assert exercises.check("05.jaccard", 0.6, a={"a", "b", "c", "d"}, b={"b", "c", "d", "e"}) is True
    assert exercises.check("05.jaccard", 0.75, a={"a", "b", "c", "d"}, b={"b", "c", "d", "e"}) is False
    assert exercises.check("05.lsh_candidate", 1 - (1 - 0.9 ** 16) ** 8, s=0.9, bands=8, rows=16) is True
    assert exercises.check("05.lsh_candidate", 0.9 ** 16, s=0.9, bands=8, rows=16) is False
    assert exercises.check("15.expected_tokens", 1 + 0.5 + 0.25, acceptance=0.5, k=2) is True
    assert exercises.check("15.step_tokens", 3, guesses=[7, 3, 9], choices=[7, 3, 5, 2]) is True
    assert exercises.check("15.step_tokens", 2, guesses=[7, 3, 9], choices=[7, 3, 5, 2]) is False
    assert exercises.check("16.kv_blocks", 8, prompt_tokens=100, new_tokens=28, block_size=16) is True
    assert exercises.check("16.kv_blocks", 9, prompt_tokens=100, new_tokens=29, block_size=16) is True
    assert exercises.check("16.kv_blocks", 8, prompt_tokens=100, new_tokens=29, block_size=16) is False
    assert exercises.check("16.littles_law", 4, in_flight=8, latency_s=2) is True
    assert exercises.check("16.littles_law", 16, in_flight=8, latency_s=2) is False
    assert exercises.check("09.clipped_objective", 2.4, ratio=1.5, advantage=2.0, clip=0.2) is True
    assert exercises.check("09.clipped_objective", 3.0, ratio=1.5, advantage=2.0, clip=0.2) is False
    assert exercises.check("09.last_token_advantage", 0.7, reward=1.0, value=0.3) is True
    assert exercises.check("06.t_squared", 16, T=4) is True and exercises.check("06.t_squared", 4, T=4) is False
    assert exercises.check("06.softmax_temperature", 0.5065, logits=[2.0, 1.0, 0.0], T=2.0) is True
    assert exercises.check("06.softmax_temperature", 0.665, logits=[2.0, 1.0, 0.0], T=2.0) is False
    assert exercises.check("06.kept_share", 0.909, teacher=0.88, student=0.80) is True
    assert exercises.check("17.zero2_gb", 2 * 7 + 14 * 7 / 8, parameters=7e9, gpus=8) is True
    assert exercises.check("17.zero2_gb", 16 * 7, parameters=7e9, gpus=8) is False
    assert exercises.check("17.global_batch", 32, gpus=4, per_gpu=8) is True
    assert exercises.check("18.dense_bytes", 4096 * 4096 * 2, rows=4096, columns=4096, bytes_per_weight=2) is True
    assert exercises.check("18.dense_bytes", 4096 * 4096, rows=4096, columns=4096, bytes_per_weight=2) is False
    assert exercises.check("18.neuron_weights", 3 * 896, hidden=896) is True
    assert exercises.check("12.ci_half_width", 1.96 * math.sqrt(0.7 * 0.3 / 80), correct=56, n=80) is True
    assert exercises.check("12.ci_half_width", math.sqrt(0.7 * 0.3 / 80), correct=56, n=80) is False
    assert exercises.check("12.win_rate", 0.65, wins=50, ties=30, losses=20) is True
    assert exercises.check("12.win_rate", 0.5, wins=50, ties=30, losses=20) is False
    assert exercises.check("12.flip_rate", 0.3, pairs=120, consistent=84) is True
    assert exercises.check("12.flip_rate", 0.7, pairs=120, consistent=84) is False
    with pytest.raises(KeyError):
        exercises.check("nope", 1)


def test_attention_params_exercise_matches_the_model():
    from transformers import AutoTokenizer, LlamaForCausalLM

    from helpers import tiny

    config = tiny.model_config("base", AutoTokenizer.from_pretrained(tiny.tokenizer_path()))
    model = LlamaForCausalLM(config)
    counted = sum(p.numel() for n, p in model.named_parameters() if any(k in n for k in ("q_proj", "k_proj", "v_proj", "o_proj")))
    assert exercises.check("01.attention_params", counted, config=config) is True


def test_stored_bytes_counts_tied_weights_once_and_filters_linear_layers():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from helpers import quantization

    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    params = sum(p.numel() for p in model.parameters())  # parameters() yields a tied weight once
    assert quantization.stored_bytes(model) == 4 * params
    linear = sum(p.numel() for n, p in model.named_parameters() if n.endswith("_proj.weight"))
    assert quantization.stored_bytes(model, quantization.in_linear_layers) == 4 * linear
    assert quantization.in_linear_layers("blk.3.ffn_down.weight") and quantization.in_linear_layers("blk.0.attn_q.weight")
    assert not quantization.in_linear_layers("blk.0.attn_norm.weight")
    assert not quantization.in_linear_layers("token_embd.weight")
    assert torch.is_tensor(next(iter(model.state_dict().values())))


def test_cloze_items_and_accuracy():
    from helpers import evaluation

    texts = ["Ada had 2 coins. 3 + 4 = 7. In the list cat dog the last word is dog.",
             "The capital of Ruvia is Lune. 1 + 1 = 2."]
    items = evaluation.cloze_items(texts, per_task=1)
    assert [(i["task"], i["answer"]) for i in items] == [("sums", "7"), ("last word", "dog"), ("capitals", "Lune")]
    assert items[0]["prompt"] == "Ada had 2 coins. 3 + 4 ="
    scores = evaluation.cloze_accuracy([" 7.", " cat dog", " Lune. The"], items)
    assert scores["accuracy"] == 2 / 3 and scores["per_task"]["last word"] == 0.0


def test_bootstrap_intervals_and_win_rates():
    from helpers import comparison

    hits = [1] * 30 + [0] * 10
    mean, low, high = comparison.bootstrap_ci(hits)
    assert mean == 0.75 and 0.6 < low < 0.75 < high < 0.9
    assert comparison.bootstrap_ci(hits) == (mean, low, high), "seeded: the same call gives the same interval"
    wide, narrow = comparison.bootstrap_ci(hits[:8] + hits[-2:]), comparison.bootstrap_ci(hits * 10)
    assert wide[2] - wide[1] > 2 * (narrow[2] - narrow[1]), "ten times the items, about a third of the width"
    assert comparison.paired_difference_ci(hits, hits) == (0.0, 0.0, 0.0)
    better = [1] * 40
    diff, low, high = comparison.paired_difference_ci(hits, better)
    assert diff == 0.25 and 0 < low < diff < high
    one_more = hits[:-1] + [1]  # a single item of 40 changed: the set cannot tell the two apart
    assert comparison.paired_difference_ci(hits, one_more)[1] <= 0
    # a cluster bootstrap over repeated questions: ten copies of each item are one piece of evidence, not ten
    repeated, groups = [h for h in hits for _ in range(10)], [k for k in range(len(hits)) for _ in range(10)]
    assert comparison.bootstrap_ci(repeated, groups=groups) == comparison.bootstrap_ci(hits)
    assert comparison.bootstrap_ci(hits, groups=list(range(len(hits)))) == comparison.bootstrap_ci(hits)
    with pytest.raises(ValueError, match="one group per item"):
        comparison.bootstrap_ci(hits, groups=[0])
    assert comparison.win_rate([0, 1, 1, 0], [1, 1, 0, 1]) == {"wins": 2, "losses": 1, "ties": 1, "win_rate": 0.625}
    with pytest.raises(ValueError, match="same items"):
        comparison.paired_difference_ci([1], [1, 0])


def test_run_logs_diff_question_by_question(tmp_path):
    from helpers import comparison

    rows = [{"task": "add", "messages": [{"role": "user", "content": f"Compute {i} + 1."},
                                         {"role": "assistant", "content": str(i + 1)}]} for i in range(4)]
    old = comparison.write_run_log(tmp_path / "old.json", "m1", {"steps": 1}, 0, rows, ["1", "3", "x", "4"],
                                   {"exact_match": [True, False, False, True]})
    new = comparison.write_run_log(tmp_path / "new.json", "m2", {"steps": 2}, 0, rows, ["1", "2", "y", "5"],
                                   {"exact_match": [True, True, False, False]})
    record = json.loads(old.read_text())
    assert record["model"] == "m1" and record["seed"] == 0 and "torch" in record["versions"]
    assert record["items"][1] == {"task": "add", "prompt": "Compute 1 + 1.", "reference": "2", "reply": "3",
                                  "exact_match": False}
    diff = comparison.diff_runs(old, new)
    assert [d["prompt"] for d in diff["fixed"]] == ["Compute 1 + 1."]
    assert [d["new"] for d in diff["broken"]] == ["5"] and [d["old"] for d in diff["changed"]] == ["x"]
    assert diff["config_keys"] == ["steps"] and diff["model"] == ("m1", "m2")
    other = comparison.write_run_log(tmp_path / "other.json", "m3", {}, 0, rows[:3], ["1", "2", "3"],
                                     {"exact_match": [True] * 3})
    with pytest.raises(ValueError, match="different prompts"):
        comparison.diff_runs(old, other)


def test_setup_makes_the_lesson_seed_the_shared_models_seed(monkeypatch):
    from helpers import cache

    monkeypatch.setenv(cache.SEED_VARIABLE, "0")  # restored after the test, whatever setup writes
    assert cache.shared_seed() == 0
    profile, device, cfg, prec = environment.setup(3, "tiny", verbose=False, sft_steps=7, eval_rows=None)
    assert cache.shared_seed() == 3, "tiny:sft/rm/dpo loaded after setup are built with the lesson's SEED"
    assert (profile, device, prec.name) == ("tiny", "cpu", "fp32")
    assert cfg.sft_steps == 7 and cfg.eval_rows == profiles.PROFILES["tiny"].eval_rows, "None keeps the profile's"
    with pytest.raises(ValueError, match="unknown profile field"):
        environment.setup(3, "tiny", verbose=False, sft_step=7)
    monkeypatch.setenv(cache.SEED_VARIABLE, "three")
    with pytest.raises(ValueError, match="COURSE_SEED"):
        cache.shared_seed()


def test_a_gpu_without_kernels_in_this_torch_is_refused_with_what_to_choose():
    from types import SimpleNamespace

    from helpers.environment import check_gpu_supported

    def fake(capability, archs):
        cuda = SimpleNamespace(get_device_capability=lambda i: capability, get_arch_list=lambda: archs)
        return SimpleNamespace(cuda=cuda, __version__="2.11.0+cu128")

    kaggle = ["sm_70", "sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "compute_100"]
    with pytest.raises(RuntimeError, match=r"Tesla P100.*sm_60.*GPU T4 x2"):
        check_gpu_supported(fake((6, 0), kaggle), "Tesla P100-PCIE-16GB")
    check_gpu_supported(fake((7, 5), kaggle), "Tesla T4")  # a T4 has its own kernels
    check_gpu_supported(fake((8, 9), kaggle), "L4")  # sm_86 code runs on sm_89
    check_gpu_supported(fake((6, 1), ["sm_50", "compute_50"]), "GTX 1080")  # PTX is compiled for later GPUs
    check_gpu_supported(fake((6, 0), []), "P100")  # a build that does not say: nothing to check


def test_resolve_model_local_downloads_a_hub_id_once_and_keeps_folders(tmp_path, monkeypatch):
    import huggingface_hub

    from helpers import recipes

    got = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo_id: got.append(repo_id) or str(tmp_path))
    assert recipes.resolve_model("Qwen/Qwen2.5-1.5B-Instruct") == "Qwen/Qwen2.5-1.5B-Instruct" and got == []
    assert recipes.resolve_model("Qwen/Qwen2.5-1.5B-Instruct", local=True) == str(tmp_path)
    assert got == ["Qwen/Qwen2.5-1.5B-Instruct"]
    assert recipes.resolve_model(str(tmp_path), local=True) == str(tmp_path) and len(got) == 1


def test_every_notebook_exercise_has_a_worked_solution_its_checker_accepts(capsys):
    import ast
    import re

    from transformers import LlamaConfig

    from course import syllabus
    from helpers import data
    from helpers.paths import NOTEBOOKS_DIR

    assert set(exercises.SOLVERS) == set(exercises.CHECKERS)
    # the arguments notebooks pass from their own run, made here
    made = {"syllabus": syllabus.load(), "splits['test']": data.load_split("sft", "test"), "losses[-1]": 1.7,
            "labels": [-100, -100, -100, 7, 9], "config": LlamaConfig(hidden_size=64, num_attention_heads=4,
                                                                      num_key_value_heads=2, num_hidden_layers=2),
            "BATCH_SIZE": 32, "recall": 0.5, "when_right": 1.0, "when_wrong": 0.1, "max(VOTES)": 8,
            "sample_tokens['trace']": 23.4}
    seen = set()
    for path in sorted(NOTEBOOKS_DIR.glob("*.ipynb")):
        text = "".join("".join(c["source"]) + "\n" for c in json.loads(path.read_text())["cells"])
        calls = re.findall(r'exercises\.check\("([^"]+)", answer_\d+, (.*)\)', text)
        hints = re.findall(r'# stuck\? exercises\.solution\("([^"]+)", (.*)\)', text)
        assert [name for name, _ in calls] == [name for name, _ in hints], path.name  # each check has its line
        for name, arguments in calls:
            call = ast.parse(f"f({arguments})").body[0].value
            context = {kw.arg: (ast.literal_eval(kw.value) if ast.unparse(kw.value) not in made
                                else made[ast.unparse(kw.value)]) for kw in call.keywords}
            answer = exercises.solution(name, **context)
            assert exercises.check(name, answer, **context) is True, (path.name, name)
            assert f"{name} (" in capsys.readouterr().out
            seen.add(name)
    assert seen == set(exercises.CHECKERS)  # no checker without a notebook exercise


def test_coding_exercises_accept_a_right_implementation_and_reject_wrong_ones(capsys):
    import torch
    import torch.nn.functional as F

    def loss(logits, ids):
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))

    def lora(x, W, A, B, alpha, r):
        return x @ W.T + (alpha / r) * (x @ A.T @ B.T)

    def dpo(pc, pr, rc, rr, beta):
        return -F.logsigmoid(beta * ((pc - rc) - (pr - rr))).mean()

    def gae(rewards, values, gamma, lam):
        adv, running, nxt = torch.zeros_like(rewards), 0.0, 0.0
        for t in reversed(range(rewards.shape[1])):
            running = rewards[:, t] + gamma * nxt - values[:, t] + gamma * lam * running
            adv[:, t], nxt = running, values[:, t]
        return adv

    def top_p(logits, p):
        probs, order = logits.softmax(-1).sort(descending=True)
        drop = probs.cumsum(-1) - probs >= p
        return logits.masked_fill(torch.zeros_like(drop).scatter(0, order, drop), float("-inf"))

    def speculative(p, q, n, residual=True):
        x = torch.multinomial(q, n, replacement=True)
        keep = torch.rand(n) < (p[x] / q[x]).clamp(max=1)
        r = (p - q).clamp(min=0) if residual else p
        return torch.where(keep, x, torch.multinomial(r / r.sum(), n, replacement=True))

    right = {"01.next_token_loss": loss, "04.lora_forward": lora, "08.dpo_loss": dpo, "09.gae": gae,
             "13.top_p": top_p, "15.speculative_sample": speculative}
    wrong = {"01.next_token_loss": lambda logits, ids: F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                                         ids.reshape(-1)),  # no shift
             "04.lora_forward": lambda x, W, A, B, alpha, r: x @ W.T + x @ A.T @ B.T,  # no alpha / r
             "08.dpo_loss": lambda pc, pr, rc, rr, beta: -F.logsigmoid(beta * (pc - pr)).mean(),  # no reference
             "09.gae": lambda rewards, values, gamma, lam: gae(rewards, values, gamma, 1.0),
             "13.top_p": lambda logits, p: top_p(logits, p + 0.05),
             "15.speculative_sample": lambda p, q, n: speculative(p, q, n, residual=False)}  # resample from p: biased
    assert set(right) < set(exercises.CODE_CHECKERS)  # the others: test_the_other_coding_exercises
    torch.manual_seed(0)
    for name in right:
        assert exercises.check_code(name, right[name]) is True, name
        assert exercises.check_code(name, wrong[name]) is False, name
        assert exercises.check_code(name, lambda *a, **k: None) is None, name
    assert exercises.check_code("08.dpo_loss", lambda *a: 1 / 0) is False  # a bug is reported, not raised
    assert "ZeroDivisionError" in capsys.readouterr().out
    from helpers.paths import NOTEBOOKS_DIR

    used = {name for path in NOTEBOOKS_DIR.glob("*.ipynb")
            for name in re.findall(r'exercises\.check_code\(\\"([^\\"]+)\\"', path.read_text())}
    assert used == set(exercises.CODE_CHECKERS)  # each coding exercise is in its lesson


def test_the_other_coding_exercises(capsys):
    import random
    from collections import Counter

    import torch
    import torch.nn.functional as F

    def minhash(a, b, k):
        def signature(items):
            return [min(hash((seed, s)) for s in items) for seed in range(k)]
        sa, sb = signature(a), signature(b)
        return sum(x == y for x, y in zip(sa, sb)) / k

    def bootstrap(correct, resamples, seed):
        rng = random.Random(seed)
        means = sorted(sum(rng.choices(correct, k=len(correct))) / len(correct) for _ in range(resamples))
        return means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]

    def absmax(W):
        scale = W.abs().amax(1, keepdim=True) / 127
        return (W / scale).round().clamp(-127, 127) * scale

    def throughput(requests):
        wall = max(e for _, e, _ in requests) - min(s for s, _, _ in requests)
        return (len(requests) / wall, sum(t for _, _, t in requests) / wall,
                sum(e - s for s, e, _ in requests) / len(requests))

    def magnitude(W, amount):
        k = round(amount * W.numel())
        mask = torch.ones_like(W, dtype=torch.bool)
        mask.view(-1)[W.abs().view(-1).topk(k, largest=False).indices] = False
        return mask

    right = {
        "03.assistant_labels": lambda ids, mask: ids.masked_fill(mask == 0, -100),
        "05.minhash_jaccard": minhash,
        "06.kd_loss": lambda s, t, T: (F.softmax(t / T, -1) * (F.log_softmax(t / T, -1) - F.log_softmax(s / T, -1)))
        .sum(-1).mean() * T * T,
        "07.bt_loss": lambda c, r: -F.logsigmoid(c - r).mean(),
        "10.group_advantages": lambda r, n: ((r.view(-1, n) - r.view(-1, n).mean(1, keepdim=True))
                                             / (r.view(-1, n).std(1, keepdim=True) + 1e-4)).view(-1),
        "12.bootstrap_interval": bootstrap,
        "14.absmax_int8": absmax,
        "16.throughput": throughput,
        "17.all_reduce_mean": lambda ranks: {k: sum(r[k] for r in ranks) / len(ranks) for k in ranks[0]},
        "18.magnitude_mask": magnitude,
        "11.majority_vote": lambda answers: Counter(a for a in answers if a is not None).most_common(1)[0][0],
    }
    wrong = {
        "03.assistant_labels": lambda ids, mask: ids.masked_fill(mask == 1, -100),  # the wrong side masked
        "05.minhash_jaccard": lambda a, b, k: len(a & b) / len(a),  # overlap, not Jaccard
        "06.kd_loss": lambda s, t, T: F.kl_div(F.log_softmax(s / T, -1), F.softmax(t / T, -1), reduction="batchmean"),
        "07.bt_loss": lambda c, r: -F.logsigmoid(r - c).mean(),
        "10.group_advantages": lambda r, n: r - r.mean(),  # the batch's mean, not the group's
        "12.bootstrap_interval": lambda correct, resamples, seed: (0.7 - 1.96 * 0.458, 0.7 + 1.96 * 0.458),  # rows' sd
        "14.absmax_int8": lambda W: (W / (W.abs().max() / 127)).round() * (W.abs().max() / 127),  # one scale
        "16.throughput": lambda requests: (len(requests) / 1.0, 100.0, 1.0),
        "17.all_reduce_mean": lambda ranks: {k: sum(r[k] for r in ranks) for k in ranks[0]},  # summed
        "18.magnitude_mask": lambda W, amount: W.abs() > amount,
        "11.majority_vote": lambda answers: Counter(answers).most_common(1)[0][0],  # None counted as an answer
    }
    assert len(right) + 6 == len(exercises.CODE_CHECKERS)  # with the six above, every coding exercise is tested
    for name in right:
        assert exercises.check_code(name, right[name]) is True, name
        assert exercises.check_code(name, wrong[name]) is False, name
        assert exercises.check_code(name, lambda *a, **k: None) is None, name


def test_run_again_exercises_wait_for_the_rerun_and_check_its_outcome(capsys):
    same = {"distilled": {"accuracy": 0.8}, "hard labels": {"accuracy": 0.8}}
    apart = {"distilled": {"accuracy": 0.9}, "hard labels": {"accuracy": 0.8}}
    assert exercises.check_rerun("06.alpha_one", alpha=0.5, results=apart) is None  # the lesson's default run
    assert "not tried yet (set ALPHA = 1.0" in capsys.readouterr().out
    assert exercises.check_rerun("06.alpha_one", alpha=1.0, results=same) is True
    assert exercises.check_rerun("06.alpha_one", alpha=1.0, results=apart) is False
    shares, base = [0.25, 0.5, 0.75], {"accuracy": 0.97, "perplexity": 1.1}
    sweep = [{"accuracy": 0.97, "perplexity": 1.11}, {"accuracy": 0.95, "perplexity": 1.15},
             {"accuracy": 0.7, "perplexity": 1.9}]
    kw = dict(shares=shares, sweep=sweep, baseline=base)
    assert exercises.check_rerun("18.keep_half", keep=0.15, pruned=sweep[2], **kw) is None
    assert exercises.check_rerun("18.keep_half", keep=0.5, pruned=dict(sweep[1]), **kw) is True
    assert exercises.check_rerun("18.keep_half", keep=0.5, pruned=sweep[2], **kw) is False
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("18.keep_half: ✅"))
    assert "perplexity x1.05" in line  # 1.15 / 1.1, from the rerun's own numbers
    from helpers.comparison import bootstrap_ci

    hits = {"SFT": [1, 0, 1, 1, 0, 1, 1, 1] * 10, "base": [0, 0, 1, 0, 0, 1, 0, 0] * 10}
    def recompute(n):
        return {name: {"all": bootstrap_ci(h, n, seed=0)} for name, h in hits.items()}

    assert exercises.check_rerun("12.n_boot", n_boot=2000, intervals=recompute(2000), recompute=recompute) is None
    assert exercises.check_rerun("12.n_boot", n_boot=200, intervals=recompute(200), recompute=recompute) is True
    shifted = {name: {"all": (ci[0] + 0.1, *ci[1:])} for name, per in recompute(200).items() for ci in per.values()}
    assert exercises.check_rerun("12.n_boot", n_boot=200, intervals=shifted, recompute=recompute) is False
    sft = {"hallucination": 1.0, "per_task": {"add": 0.95, "capital": 1.0, "letter": 0.975, "unknown": 0.0}}
    declined = {"hallucination": 0.08, "per_task": {"add": 0.91, "capital": 1.0, "letter": 0.975, "unknown": 0.92}}
    assert exercises.check_rerun("08.beta_half", beta=0.1, runs={"SFT": sft, "DPO": declined}) is None
    assert exercises.check_rerun("08.beta_half", beta=0.5, runs={"SFT": sft, "DPO": declined}) is True
    assert exercises.check_rerun("08.beta_half", beta=0.5, runs={"SFT": sft, "DPO": sft}) is False  # never declines
    costly = {**declined, "per_task": {**declined["per_task"], "add": 0.5}}  # declines, but sums fall 45 points
    assert exercises.check_rerun("08.beta_half", beta=0.5, runs={"SFT": sft, "DPO": costly}) is False
    assert exercises.check_rerun("17.one_rank", ranks=2, world=2, fsdp_share=0.5, loss_gap=1e-7) is None
    assert exercises.check_rerun("17.one_rank", ranks=1, world=1, fsdp_share=1.0, loss_gap=0.0) is True
    assert exercises.check_rerun("17.one_rank", ranks=1, world=1, fsdp_share=1.0, loss_gap=0.3) is False
    greedy = {"heldout_before": {"add": 0.36}, "heldout_after": {"add": 0.3}, "clean_before": {"add": 0.95},
              "clean_after": {"add": 0.8}}

    def sampled(add):
        return {"pass@1": 0.4, "pass@1 per task": {"capital": 0.6, "letter": 0.4, **({"add": add} if add else {})}}

    default = ["capital", "letter"]
    assert exercises.check_rerun("10.add_sums", train_tasks=default, sampled_before=sampled(None),
                                 sampled_after=sampled(None), **greedy) is None
    trained = [*default, "add"]
    assert exercises.check_rerun("10.add_sums", train_tasks=trained, sampled_before=sampled(0.2),
                                 sampled_after=sampled(0.35), **greedy) is True
    assert "95% → 80%" in capsys.readouterr().out, "the rerun's own greedy numbers"
    assert exercises.check_rerun("10.add_sums", train_tasks=trained, sampled_before=sampled(0.2),
                                 sampled_after=sampled(0.19), **greedy) is False


def test_cache_dir_survives_a_kaggle_session_unless_told_otherwise(tmp_path, monkeypatch):
    from helpers import paths

    kaggle = tmp_path / "kaggle" / "working"
    kaggle.mkdir(parents=True)
    monkeypatch.setattr(paths, "PERSISTENT_ROOTS", (kaggle, tmp_path / "absent"))
    monkeypatch.delenv("COURSE_CACHE", raising=False)
    assert paths.cache_dir() == kaggle / "llm-course-cache"
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "mine"))
    assert paths.cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("COURSE_CACHE")
    monkeypatch.setattr(paths, "PERSISTENT_ROOTS", (tmp_path / "absent",))
    assert paths.cache_dir() == paths.Path.home() / ".cache" / "llm-course"


def test_every_exercise_is_findable_by_lesson_and_each_run_again_one_is_in_its_notebook():
    import re

    from helpers.paths import NOTEBOOKS_DIR

    assert exercises.of_lesson("08") == {"08.beta_half": "run again", "08.dpo_loss": "code",
                                         "08.implicit_reward": "answer"}
    every = {name for registry in exercises.KINDS.values() for name in registry}
    lessons = {path.name[:2] for path in NOTEBOOKS_DIR.glob("*.ipynb")}
    assert {name.split(".")[0] for name in every} <= lessons, "an exercise of a lesson that does not exist"
    assert sum(len(exercises.of_lesson(n)) for n in {name.split(".")[0] for name in every}) == len(every)
    with pytest.raises(KeyError, match="has no exercises"):
        exercises.of_lesson("99")
    called = set()
    for path in sorted(NOTEBOOKS_DIR.glob("*.ipynb")):
        text = "".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"])
        names = re.findall(r'exercises\.check_rerun\("([^"]+)"', text)
        assert all(name.startswith(path.name[:2] + ".") for name in names), path.name
        called |= set(names)
    assert called == set(exercises.RERUNS), "each run-again checker is called by its lesson, and only those"


def test_ranking_scores_and_bm25():
    from helpers import retrieval

    scores = retrieval.ranking_scores([[3, 1, 2], [0, 2, 1], [5, 6, 7]], gold=[3, 2, 9], k=3)
    assert scores == {"recall@1": 1 / 3, "recall@3": 2 / 3, "mrr@3": (1 + 1 / 2 + 0) / 3}
    documents = ["Risureia has 5 rivers.", "There are 8 lakes in Risureia.", "Midoveia has 2 rivers."]
    top = retrieval.bm25_search(documents, ["How many rivers does Midoveia have?", "lakes of Risureia"], k=2)
    assert top[:, 0].tolist() == [2, 1]


def test_reader_rows_rewrite_every_count_so_only_reading_answers():
    from helpers import data, retrieval

    atlas = data.load_atlas()
    rows = retrieval.reader_rows(atlas, 200, seed=0)
    test_countries = {atlas["documents"][q["doc"]]["country"] for q in atlas["test"]}
    shipped = {atlas["documents"][q["doc"]]["text"] for q in atlas["train"]}
    rewritten = 0
    for row in rows:
        passage, question = row["messages"][0]["content"].split("\n")
        answer = row["messages"][1]["content"]
        assert answer in passage.split() and not any(c in passage for c in test_countries)
        rewritten += passage not in shipped
    assert rewritten > 100, "most passages must state a count the shipped documents do not"
