"""helpers.precision decides bf16 / fp16 / fp32 per device; the GPU cases are checked with a faked capability."""

import pytest
import torch

from helpers import precision


def test_cpu_and_mps_train_in_fp32():
    for device in ("cpu", "mps"):
        p = precision.choose(device)
        assert p.name == "fp32" and p.compute_dtype == torch.float32
        assert p.trainer_args == {"bf16": False, "fp16": False, "use_cpu": device == "cpu"}


@pytest.mark.parametrize("capability, expected", [((7, 5), "fp16"), ((7, 0), "fp16"), ((8, 0), "bf16"),
                                                  ((8, 9), "bf16"), ((9, 0), "bf16")])
def test_cuda_precision_follows_native_bf16_support(capability, expected):
    # A T4 (7.5) only emulates bf16, and torch.cuda.is_bf16_supported() may say True there: the capability decides.
    p = precision.choose("cuda", capability=capability, emulate_t4=False, rocm=False)
    assert p.name == expected
    assert p.trainer_args == {"bf16": expected == "bf16", "fp16": expected == "fp16", "use_cpu": False}
    assert p.load_dtype == torch.float32, "trained weights stay fp32 (mixed precision)"


def test_t4_emulation_overrides_a_newer_gpu(monkeypatch):
    assert precision.choose("cuda", capability=(9, 0), emulate_t4=True).name == "fp16"
    monkeypatch.setenv("COURSE_EMULATE_T4", "1")
    assert precision.choose("cuda", capability=(9, 0), rocm=False).name == "fp16"
    monkeypatch.setenv("COURSE_EMULATE_T4", "0")
    assert precision.choose("cuda", capability=(9, 0), rocm=False).name == "bf16"
    assert precision.choose("cuda", capability=(7, 5), rocm=True, emulate_t4=False).name == "bf16"


def test_tolerances_grow_with_coarser_dtypes():
    rtol = {name: precision.Precision(name, "cuda").logits_rtol for name in ("fp32", "fp16", "bf16")}
    assert rtol["fp32"] < rtol["fp16"] < rtol["bf16"]
    for name in ("fp32", "fp16", "bf16"):  # a few units of the dtype's rounding, never looser than 10 % of the scale
        assert torch.finfo(precision.Precision(name, "cuda").compute_dtype).eps < rtol[name] < 0.1


def test_fp16_amp_needs_fp32_trainable_weights():
    # The error lesson 03 hit on a T4: AMP's grad scaler refuses fp16 gradients. The same check runs on CPU.
    def step(layer):
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
        opt = torch.optim.AdamW([p for p in layer.parameters() if p.requires_grad])
        scaler.scale(layer(torch.ones(2, 4, dtype=layer.weight.dtype)).float().sum()).backward()
        scaler.step(opt)

    half = torch.nn.Linear(4, 4).half()
    with pytest.raises(ValueError, match="Attempting to unscale FP16 gradients"):
        step(half)
    half.zero_grad(set_to_none=True)
    assert precision.trainable_to_fp32(half) == 2
    step(half)


def test_trainable_to_fp32_leaves_frozen_weights_alone():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 3)).to(torch.bfloat16)
    model[0].requires_grad_(False)
    assert precision.trainable_to_fp32(model) == 2
    assert model[0].weight.dtype == torch.bfloat16 and model[1].weight.dtype == torch.float32
    assert precision.trainable_to_fp32(model) == 0


def test_autocast_is_a_no_op_in_fp32():
    layer = torch.nn.Linear(3, 3)
    with precision.choose("cpu").autocast():
        assert layer(torch.ones(1, 3)).dtype == torch.float32
    with precision.Precision("bf16", "cpu").autocast():
        assert layer(torch.ones(1, 3)).dtype == torch.bfloat16


def test_trl_casts_qlora_adapters_to_bf16_and_the_helper_undoes_it(tmp_path):
    # Why trainable_to_fp32 exists (trl 1.16): if TRL stops casting, this test says so and the call can go.
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig
    from trl import SFTTrainer

    from helpers import data, profiles, recipes, tiny

    folder = tiny.model_path("base")
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32)
    model = AutoModelForCausalLM.from_pretrained(folder, quantization_config=quant, device_map="cpu")
    rows = Dataset.from_list([{"messages": r["messages"]} for r in data.load_split("sft", "train")[:8]])
    args = recipes.sft_args(str(tmp_path), profiles.PROFILES["tiny"], 1, 1e-3, precision.choose("cpu"))
    trainer = SFTTrainer(model=model, args=args, train_dataset=rows, processing_class=AutoTokenizer.from_pretrained(folder),
                         peft_config=LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"))
    trainable = [p for p in trainer.model.parameters() if p.requires_grad]
    assert trainable and {p.dtype for p in trainable} == {torch.bfloat16}
    assert precision.trainable_to_fp32(trainer.model) == len(trainable)
    assert {p.dtype for p in trainer.model.parameters() if p.requires_grad} == {torch.float32}
