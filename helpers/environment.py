"""Setup every notebook repeats: seeds, device, versions, platform, profile.

Introduced in 00_welcome.ipynb.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import random
import sys
from typing import Any, NamedTuple

LIBRARIES = ("torch", "transformers", "trl", "peft", "bitsandbytes", "datasets", "accelerate", "tokenizers")


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA). Introduced in 00_welcome.ipynb."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def check_gpu_supported(torch, name: str) -> None:
    """Refuse a GPU this torch build has no kernels for (Kaggle's P100, sm_60, under its current torch): every CUDA
    operation would fail later with a cryptic error. Introduced in 00_welcome.ipynb."""
    major, minor = torch.cuda.get_device_capability(0)
    archs, have = torch.cuda.get_arch_list(), major * 10 + minor
    # a cubin runs on later GPUs of its major version; PTX (compute_XX) is compiled for any later GPU
    runs = any((a.startswith("sm_") and int(a[3:]) // 10 == major and int(a[3:]) <= have)
               or (a.startswith("compute_") and int(a[8:]) <= have) for a in archs if a[-1].isdigit())
    if archs and not runs:
        raise RuntimeError(f"{name} (sm_{major}{minor}) has no kernels in this torch {torch.__version__} (built for "
                           f"{', '.join(archs)}). On Kaggle choose Accelerator: GPU T4 x2 in the notebook's settings; "
                           "on Colab, Runtime > Change runtime type > T4 GPU.")


def free_memory(device: str) -> None:
    """After a lesson moves or deletes models it no longer needs: collect them and hand the GPU's cached blocks back,
    so the next model fits on a T4 (15 GB). Introduced in 09_ppo_rlhf.ipynb."""
    import gc

    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def pick_device(verbose: bool = True) -> str:
    """CUDA, then Apple MPS, then CPU; prints the choice. Introduced in 00_welcome.ipynb."""
    import torch

    if torch.cuda.is_available():
        device = "cuda"
        detail = torch.cuda.get_device_name(0)
        check_gpu_supported(torch, detail)
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        device, detail = "mps", "Apple GPU"
    else:
        device, detail = "cpu", f"{os.cpu_count()} cores, {torch.get_num_threads()} torch threads"
    if verbose:
        print(f"device: {device} ({detail})")
    return device


def versions(names: tuple[str, ...] = LIBRARIES) -> dict[str, str]:
    """Installed versions of the course's libraries ('-' when missing). Introduced in 00_welcome.ipynb."""
    found = {"python": platform.python_version()}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "-"
    return found


def hosted_platform() -> str:
    """'colab', 'kaggle' or 'local'. Introduced in 00_welcome.ipynb."""
    if "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ:
        return "colab"
    if "KAGGLE_KERNEL_RUN_TYPE" in os.environ:
        return "kaggle"
    return "local"


def cap_gpu_memory(gib: float, verbose: bool = True) -> float:
    """Limit this process's CUDA allocator to ``gib`` GiB (e.g. a T4's) and return the fraction set.

    ``python -m course gpu-check`` sets ``COURSE_GPU_MEMORY_GIB`` so a larger GPU fails where a T4 would run
    out of memory. Introduced in 00_welcome.ipynb (for maintainers).
    """
    import torch

    total = torch.cuda.get_device_properties(0).total_memory / 2**30
    fraction = min(1.0, gib / total)
    torch.cuda.set_per_process_memory_fraction(fraction, 0)
    if verbose:
        print(f"GPU memory capped at {gib:g} of {total:.1f} GiB")
    return fraction


class Setup(NamedTuple):
    """What a lesson's setup cell gets back from :func:`setup`; unpack it as ``PROFILE, DEVICE, cfg, prec``."""

    profile: str  # the resolved profile name: "tiny" or "t4"
    device: str  # "cuda", "mps" or "cpu"
    cfg: Any  # helpers.profiles.Profile: the profile's settings with the lesson's overrides
    prec: Any  # helpers.precision.Precision: how this device trains and runs models


def setup(seed: int = 0, profile: str = "auto", verbose: bool = True, **overrides) -> Setup:
    """The setup cell in one call: seed, device, versions, platform, the resolved profile with the lesson's
    ``overrides`` (its parameters; None keeps the profile's value) and the device's precision.

    Returns ``Setup(profile, device, cfg, prec)``. Also turns Hub downloads off for the offline ``tiny`` profile, and
    makes ``seed`` the seed of the shared fine-tuned models the lesson loads (``helpers.cache``).
    Introduced in 00_welcome.ipynb.
    """
    from helpers.cache import use_seed
    from helpers.precision import for_device
    from helpers.profiles import get_profile, resolve_profile

    name = resolve_profile(profile)
    cfg = get_profile(name, **overrides)  # an unknown override fails here, before anything is loaded
    use_seed(seed)  # the shared tiny models (tiny:sft, tiny:rm, tiny:dpo) this process loads are built with it
    if name == "tiny":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    set_seed(seed)
    device = pick_device(verbose)
    if device == "cuda" and os.environ.get("COURSE_GPU_MEMORY_GIB"):
        cap_gpu_memory(float(os.environ["COURSE_GPU_MEMORY_GIB"]), verbose)
    prec = for_device(device, verbose)  # bf16 on A100/H100, fp16 mixed precision on a T4, fp32 on CPU
    if verbose:
        print(" · ".join(f"{k} {v}" for k, v in versions().items()))
        print(f"platform: {hosted_platform()} · profile: {name} · seed: {seed}")
    return Setup(name, device, cfg, prec)
