"""Quantization plumbing: stored bytes of a (quantized) model, and GGUF files with llama.cpp (llama-cpp-python).

Introduced in 14_quantization.ipynb. The quantization itself (by hand, with bitsandbytes and optimum-quanto, and
``llama_cpp.llama_model_quantize``) stays in the notebook; this module holds what it needs around it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import io
import math
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

import torch

from .paths import cache_dir

INDEX_URL = "https://pypi.org/simple"  # where the converter's source comes from ($PIP_INDEX_URL when set)
CONVERTER_PARTS = ("convert_hf_to_gguf.py", "gguf-py/", "conversion/")


def stored_bytes(model, include=lambda name: True) -> int:
    """Bytes of the tensors a model stores (its ``state_dict``: quantized codes, scales, norms), each storage once
    (tied embeddings count once). ``include(name)`` filters by parameter name.

    ``get_memory_footprint()`` is not used: it counts a tensor subclass (optimum-quanto) as its float shape.
    Introduced in 14_quantization.ipynb.
    """
    seen, total = set(), 0
    for name, tensor in model.state_dict().items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tensor.nbytes)
        if include(name) and key not in seen:
            seen.add(key)
            total += tensor.nbytes
    return total


LINEAR = re.compile(r"\.layers\.\d+\.\w+\.\w+_proj\.|^blk\.\d+\.(attn_(q|k|v|output)|ffn_(gate|up|down))\.")


def in_linear_layers(name: str) -> bool:
    """Whether a tensor (a ``state_dict`` name, or a GGUF tensor name) belongs to a decoder block's linear layers:
    the weights quantization replaces (embeddings, the output head and norms stay in full precision).
    Introduced in 14_quantization.ipynb."""
    return LINEAR.search(name) is not None


def _index_url() -> str:
    return os.environ.get("PIP_INDEX_URL", INDEX_URL).rstrip("/")


def converter_dir(version: str | None = None, progress: bool = True) -> Path:
    """llama.cpp's HF→GGUF converter (``convert_hf_to_gguf.py`` with its ``gguf-py/`` and ``conversion/``), taken
    from the source distribution of the installed llama-cpp-python, so that it writes the files that the compiled
    llama.cpp reads. Downloaded once (77 MB, sha256 checked) into the course cache.

    Introduced in 14_quantization.ipynb.
    """
    version = version or importlib.metadata.version("llama_cpp_python")
    folder = cache_dir() / f"gguf-converter-{version}"
    if (folder / CONVERTER_PARTS[0]).exists():
        return folder
    name = f"llama_cpp_python-{version}.tar.gz"
    index = urllib.request.urlopen(f"{_index_url()}/llama-cpp-python/", timeout=60).read().decode()
    links = [link for link in re.findall(r'href="([^"]+)"', index) if link.split("#")[0].endswith(name)]
    if not links:
        raise RuntimeError(f"{name} not found on {_index_url()}/llama-cpp-python/")
    url, _, digest = links[0].partition("#sha256=")
    url = urllib.parse.urljoin(f"{_index_url()}/llama-cpp-python/", url)
    if progress:
        print(f"downloading llama.cpp's converter: {url.rsplit('/', 1)[-1]} (once)")
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        archive = Path(tmp) / name
        with urllib.request.urlopen(url, timeout=300) as response, open(archive, "wb") as out:
            shutil.copyfileobj(response, out)
        if digest and hashlib.sha256(archive.read_bytes()).hexdigest() != digest:
            raise RuntimeError(f"{name}: sha256 does not match the index's")
        prefix = f"llama_cpp_python-{version}/vendor/llama.cpp/"
        staging = Path(tmp) / "converter"
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith(prefix)
                       and m.name[len(prefix):].startswith(CONVERTER_PARTS) and (m.isfile() or m.isdir())]
            for member in members:
                member.name = member.name[len(prefix):]
            tar.extractall(staging, members=members, filter="data")
        with contextlib.suppress(OSError):  # another process finished first: keep its copy
            staging.rename(folder)
    return folder


# Run inside a subprocess: the converter, with one change. It names a BPE pre-tokenizer by hashing how the tokenizer
# splits a test string, and raises for a hash it does not know (the course's own tokenizer). Ours is byte-level BPE
# with GPT-2's split pattern, so "gpt-2" is the right name; a known tokenizer (Qwen's) keeps the converter's answer.
_CONVERT = """
import sys
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/gguf-py"]
import convert_hf_to_gguf
from conversion import base
known = base.TextModel.get_vocab_base_pre
def pre_tokenizer(self, tokenizer):
    try:
        return known(self, tokenizer)
    except NotImplementedError:
        print("pre-tokenizer not in the converter's table: using gpt-2 (byte-level BPE, GPT-2's split pattern)")
        return "gpt-2"
base.TextModel.get_vocab_base_pre = pre_tokenizer
sys.argv = ["convert_hf_to_gguf.py", *sys.argv[2:]]
convert_hf_to_gguf.main()
"""


CONVERTER_TYPES = ("f32", "f16", "bf16", "q8_0")  # what convert_hf_to_gguf.py writes itself


def quantize_gguf(source: str | Path, outfile: str | Path, kind: str) -> dict:
    """Quantize a GGUF file with llama.cpp's ``llama_model_quantize`` (what its ``llama-quantize`` tool runs) to
    ``kind`` (``LLAMA_FTYPE_MOSTLY_<kind>``: Q4_K_M, Q4_0, Q5_K_M, ...); returns ``{"fallback_tensors": n}``, the
    tensors llama.cpp had to give another type (rows not a multiple of 256 wide). Lesson 14 writes this loop out;
    introduced for the capstones (19_capstone_post_training.ipynb)."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{kind.upper()}")
    with llama_log() as log:
        code = llama_cpp.llama_model_quantize(str(source).encode(), str(outfile).encode(), params)
    if code != 0:
        raise RuntimeError(f"llama_model_quantize({source} -> {kind}) failed with code {code}:\n" + "\n".join(log[-10:]))
    fallbacks = [line for line in log if "required fallback quantization" in line]
    return {"fallback_tensors": sum(int(line.split("WARNING: ")[-1].split()[0]) for line in fallbacks)}


def to_gguf(model_dir: str | Path, outfile: str | Path, outtype: str = "f32") -> Path:
    """Convert a Hugging Face model folder to one GGUF file with llama.cpp's converter (``outtype``: f32, f16, bf16,
    q8_0). Raises with the converter's last lines when it fails. Introduced in 14_quantization.ipynb."""
    outfile = Path(outfile)
    command = [sys.executable, "-c", _CONVERT, str(converter_dir()), str(model_dir),
               "--outtype", outtype, "--outfile", str(outfile)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0 or not outfile.exists():
        raise RuntimeError(f"convert_hf_to_gguf.py failed for {model_dir}:\n" + "\n".join(done.stderr.splitlines()[-15:]))
    notes = [line for line in done.stdout.splitlines() if line.startswith("pre-tokenizer")]
    for line in notes:
        print(line)
    return outfile


def gguf_tensors(path: str | Path) -> list[tuple[str, str, int]]:
    """(name, type, bytes) of every tensor in a GGUF file (types: F32, Q8_0, Q4_K, Q6_K, ...), read with the
    converter's gguf-py ``GGUFReader``. Introduced in 14_quantization.ipynb."""
    sys.path.insert(0, str(converter_dir() / "gguf-py"))
    try:
        from gguf import GGUFReader
    finally:
        sys.path.pop(0)
    return [(t.name, t.tensor_type.name, int(t.n_bytes)) for t in GGUFReader(str(path)).tensors]


@contextlib.contextmanager
def llama_log():
    """Collect what llama.cpp logs (it prints through Python's ``sys.stderr``) into a list of lines, instead of
    flooding the notebook. Introduced in 14_quantization.ipynb."""
    lines: list[str] = []
    buffer = io.StringIO()
    with contextlib.redirect_stderr(buffer):
        yield lines
    lines.extend(buffer.getvalue().splitlines())


def gguf_scores(llm, rows: torch.Tensor) -> tuple[float, float]:
    """Perplexity and next-token accuracy of a ``llama_cpp.Llama`` (created with ``logits_all=True``) on packed token
    rows: :func:`helpers.evaluation.perplexity` and :func:`~helpers.evaluation.next_token_accuracy` for llama.cpp.
    Introduced in 14_quantization.ipynb."""
    total, hits, count = 0.0, 0, 0
    for row in rows.tolist():
        llm.reset()
        llm.eval(row)
        logits, targets = torch.from_numpy(llm.scores[: len(row) - 1].copy()), torch.tensor(row[1:])
        total += torch.nn.functional.cross_entropy(logits, targets, reduction="sum").item()
        hits += (logits.argmax(-1) == targets).sum().item()
        count += len(row) - 1
    return math.exp(total / count), hits / count


def gguf_greedy(llm, prompt: list[int], new_tokens: int) -> list[int]:
    """``new_tokens`` greedy tokens after ``prompt`` (token ids) from a ``llama_cpp.Llama``, past any end-of-text
    token, as ``generate(min_new_tokens=...)`` does. Introduced in 14_quantization.ipynb."""
    out = []
    for token in llm.generate(prompt, top_k=1, temp=0.0, reset=True):
        out.append(token)
        if len(out) == new_tokens:
            break
    return out
