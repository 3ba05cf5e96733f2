"""Serving (16_serving.ipynb), the notebook's side: start an OpenAI-compatible server as a child process, wait for
it, send it requests, load-test it, stop it.

Two engines, one client. On a GPU the lesson runs ``vllm serve``; on a CPU (and a T4) it runs the course's
``python -m helpers.server`` (``transformers serve`` with an API key and request checks); llama.cpp's server is the
third, for a GGUF file.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from helpers import processes


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now. Introduced in 16_serving.ipynb."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server process started by :func:`launch`: ``url``, ``log`` (its output file), ``wait_healthy()``,
    ``stop()``, ``alive()``. Introduced in 16_serving.ipynb."""

    def __init__(self, command: list[str], port: int, log: Path, env: dict | None = None,
                 health_path: str = "/health"):
        self.command, self.port, self.log, self.health_path = command, port, Path(log), health_path
        self.url = f"http://127.0.0.1:{port}"
        self._log_file = self.log.open("w")
        self.process = processes.start(command, self._log_file, env)  # its own process group
        atexit.register(self.stop)

    def log_tail(self, lines: int = 25) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def wait_healthy(self, timeout: float = 600.0) -> float:
        """Poll ``GET /health`` (``health_path``) until it answers 200; the seconds it took. Raises with the server's
        log if the process exits or ``timeout`` passes."""
        start = time.perf_counter()
        while time.perf_counter() - start < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with code {self.process.returncode} before it was healthy. "
                                   f"Its log ({self.log}):\n{self.log_tail()}")
            if self.health(timeout=2)[0] == 200:
                return time.perf_counter() - start
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"no healthy answer from {self.url}{self.health_path} in {timeout:.0f} s. "
                           f"Log:\n{self.log_tail()}")

    def health(self, timeout: float = 5) -> tuple[int, dict]:
        """One ``GET /health``: (HTTP status, JSON body), (0, {}) when nothing answers. What a supervisor (a
        Kubernetes liveness probe, systemd's watchdog) polls, restarting the process on anything but 200:
        transformers serve answers 503 ``cb_worker_dead`` once its continuous-batching worker has died."""
        try:
            with urllib.request.urlopen(f"{self.url}{self.health_path}", timeout=timeout) as reply:
                status, raw = reply.status, reply.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return 0, {}
        try:
            return status, json.loads(raw or b"{}")
        except ValueError:
            return status, {"text": raw.decode(errors="replace")}

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM the server's whole process group, SIGKILL it after ``timeout`` s; the exit code."""
        code = processes.stop(self.process, timeout)
        self._log_file.close()
        atexit.unregister(self.stop)
        return code

    def alive(self) -> bool:
        """True while the server or any process of its group still exists."""
        return processes.alive(self.process)


def launch(command: list[str], port: int, log: str | Path | None = None, env: dict | None = None,
           health_path: str = "/health") -> Server:
    """Start ``command`` (a server listening on ``port``) in its own process group, its output in ``log``
    (default: ``server-PORT.log`` in the lesson's output folder). ``health_path``: what answers 200 once it serves
    (llama.cpp's Python server has no ``/health``: its API page, ``/docs``).

    Introduced in 16_serving.ipynb. Call ``wait_healthy()`` before the first request and ``stop()`` at the end;
    the server is also stopped when the kernel exits.
    """
    from helpers import paths

    env = dict(os.environ if env is None else env)
    # the course's folder on the server's import path: on Colab/Kaggle the notebook put it on sys.path, which a
    # child process does not inherit (``python -m helpers.server`` failed there with ModuleNotFoundError)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(paths.REPO_ROOT), env.get("PYTHONPATH")) if p)
    return Server(command, port, log or paths.output_dir() / f"server-{port}.log", env, health_path)


def listening(port: int) -> bool:
    """True when something accepts TCP connections on 127.0.0.1:``port``. Introduced in 16_serving.ipynb."""
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def post(url: str, body: dict | bytes, api_key: str | None = None, timeout: float = 60) -> tuple[int, dict]:
    """POST raw JSON (a dict, or bytes sent as they are, malformed or not) without the openai client; the HTTP
    status and the JSON answer. Introduced in 16_serving.ipynb."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {api_key}"} if api_key else {})
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status, json.loads(reply.read() or b"{}")
    except urllib.error.HTTPError as error:
        text = error.read()
        try:
            return error.code, json.loads(text)
        except ValueError:
            return error.code, {"error": {"message": text.decode(errors="replace")}}


def error_message(payload: dict) -> str:
    """The human-readable message of an error answer, whichever server wrote it (OpenAI, vLLM, FastAPI shapes).
    Introduced in 16_serving.ipynb."""
    error = payload.get("error")
    if isinstance(error, dict):
        return str(error.get("message"))
    return str(error or payload.get("message") or payload.get("detail") or payload)


VLLM_MIN_CAPABILITY = (8, 0)


def default_engine(device: str, capability: tuple[int, int] | None = None) -> tuple[str, str]:
    """``(engine, why)`` for lesson 16's ``ENGINE = "auto"``: vLLM on a GPU of compute capability 8.0 or more,
    else the course's transformers server (on the GPU when there is one).

    Below 8.0 (a T4 is 7.5, Kaggle's P100 6.0) recent vLLM releases are reported failing (vLLM 0.15.1 on a Colab
    T4: its CUTLASS DSL compiler rejects sm_75, microsoft/fara#57; projects serving on Colab now gate vLLM on sm >=
    8.0, Open-Athena/MarinFold#115). Not verified on a T4 here. Introduced in 16_serving.ipynb."""
    if device != "cuda":
        return "transformers", "no GPU: vLLM has no CPU wheel"
    if capability is None:
        import torch

        capability = torch.cuda.get_device_capability()
    if tuple(capability) >= VLLM_MIN_CAPABILITY:
        return "vllm", f"compute capability {capability[0]}.{capability[1]}"
    return "transformers", (f"compute capability {capability[0]}.{capability[1]} < 8.0: recent vLLM releases are "
                            "reported failing on it, so the course's server runs on the GPU instead")


def driver_cuda_major() -> int | None:
    """The CUDA major version the NVIDIA driver supports (``nvidia-smi``'s "CUDA Version"), or None."""
    import re
    import shutil

    if not shutil.which("nvidia-smi"):
        return None
    out = subprocess.run(["nvidia-smi"], capture_output=True, text=True).stdout
    found = re.search(r"CUDA Version:\s*(\d+)\.", out)
    return int(found.group(1)) if found else None


def vllm_requirement(version: str, cuda_major: int | None) -> list[str]:
    """pip arguments for ``vllm==version`` built for the driver: PyPI's wheels target CUDA 13, which a CUDA 12
    driver (Colab's, most of Kaggle's) cannot load (``libcudart.so.13``); vLLM publishes CUDA 12.9 builds on its own
    index, which also run on CUDA 13 drivers."""
    if cuda_major is not None and cuda_major < 13:
        return [f"vllm=={version}+cu129", "--extra-index-url", f"https://wheels.vllm.ai/{version}/cu129/"]
    return [f"vllm=={version}"]


def install_vllm(version: str) -> str:
    """The ``vllm`` command of a virtual environment of its own with ``vllm==version`` (created once, in the
    course cache; the build for the driver's CUDA, ``vllm_requirement``): vLLM wheels pin their own torch, which
    must not replace the notebook's. Introduced in 16_serving.ipynb; GPU only."""
    import shutil

    from helpers import paths

    env = paths.cache_dir() / f"vllm-{version}"
    exe = env / "bin" / "vllm"
    if not exe.exists():
        requirement = vllm_requirement(version, driver_cuda_major())
        print(f"installing {' '.join(requirement)} into {env} (several minutes, once)", flush=True)
        if shutil.which("uv"):  # Colab and Kaggle have uv: much faster, and needs no ensurepip
            subprocess.run(["uv", "venv", "--quiet", "--seed", str(env)], check=True)
            subprocess.run(["uv", "pip", "install", "--quiet", "--python", str(env / "bin" / "python"), *requirement],
                           check=True)
        else:
            subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
            subprocess.run([str(env / "bin" / "python"), "-m", "pip", "install", "--quiet", *requirement], check=True)
    return str(exe)


def load_test(request, concurrency: int, n_requests: int) -> dict:
    """Send ``n_requests`` calls of ``request()`` (which returns the completion's token count) with at most
    ``concurrency`` in flight; requests/s, tokens/s and per-request latencies. Introduced in 16_serving.ipynb."""
    latencies, tokens = [], 0

    def one(_):
        start = time.perf_counter()
        n = request()
        return time.perf_counter() - start, n

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        for seconds, n in pool.map(one, range(n_requests)):
            latencies.append(seconds)
            tokens += n
    wall = time.perf_counter() - start
    return {"concurrency": concurrency, "requests": n_requests, "seconds": wall, "requests/s": n_requests / wall,
            "tokens/s": tokens / wall, "tokens": tokens, "mean latency s": sum(latencies) / len(latencies)}
