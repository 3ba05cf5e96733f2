"""helpers.server and helpers.serving without a model: the request checks, the API-key guard, and the process life cycle."""

import asyncio
import json
import os
import sys

import pytest

from helpers import server, serving
from helpers.paths import REPO_ROOT

GOOD = {"model": "tiny:sft", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


@pytest.mark.parametrize("change, words", [
    ({"messages": None}, "'messages' must be a non-empty list"),
    ({"messages": []}, "'messages' must be a non-empty list"),
    ({"messages": ["hi"]}, "messages[0] must be an object"),
    ({"max_tokens": 10**9}, "more than this model's context of 512"),
    ({"max_tokens": 0}, "positive integer"),
    ({"max_tokens": "8"}, "positive integer"),
    ({"model": "gpt-5"}, "is not served here"),
])
def test_bad_requests_are_named(change, words):
    body = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    assert words in server.check_request("/v1/chat/completions", body, "tiny:sft", 512)


def test_good_requests_pass():
    assert server.check_request("/v1/chat/completions", GOOD, "tiny:sft", 512) is None
    assert server.check_request("/v1/chat/completions", {**GOOD, "max_tokens": 512}, "tiny:sft", 512) is None
    assert server.check_request("/v1/completions", {"prompt": "Once", "max_tokens": 4}, "tiny:sft", 512) is None
    assert "'prompt' is required" in server.check_request("/v1/completions", {}, "tiny:sft", 512)
    assert "JSON object" in server.check_request("/v1/chat/completions", [GOOD], "tiny:sft", 512)


def call(path: str, body: bytes, key: str | None, length: int | None = None):
    """Send one request through Guard around an app that echoes the body it receives; (status, JSON)."""
    async def app(scope, receive, send):
        message = await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": message["body"]})

    guard = server.Guard(app, api_key="k1", served_name="tiny:sft", engine_name="/models/sft", max_model_len=512)
    size = str(len(body) if length is None else length).encode()
    headers = [(b"content-length", size)] + ([(b"authorization", f"Bearer {key}".encode())] if key else [])
    scope = {"type": "http", "method": "POST", "path": path, "headers": headers}
    sent, chunks = [], [{"type": "http.request", "body": body[:5], "more_body": True},
                        {"type": "http.request", "body": body[5:], "more_body": False}]

    async def receive():
        return chunks.pop(0)

    async def send(message):
        sent.append(message)

    asyncio.run(guard(scope, receive, send))
    return sent[0]["status"], json.loads(sent[1]["body"])


def test_guard_wants_the_key_and_checks_the_body():
    good = json.dumps(GOOD).encode()
    assert call("/v1/chat/completions", good, None)[0] == 401
    status, reply = call("/v1/chat/completions", good, "wrong")
    assert status == 401 and reply["error"]["code"] == "invalid_api_key"
    status, reply = call("/v1/chat/completions", b'{"messages": [', "k1")
    assert status == 400 and "not valid JSON" in reply["error"]["message"]
    status, reply = call("/v1/chat/completions", json.dumps({"model": "tiny:sft"}).encode(), "k1")
    assert status == 400 and "'messages' must be a non-empty list" in reply["error"]["message"]
    status, reply = call("/v1/chat/completions", good, "k1")  # passed on whole, with the engine's model name
    assert status == 200 and reply == {**GOOD, "model": "/models/sft"}


HEALTHY = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404); self.end_headers()
    def log_message(self, *a): pass
print("listening", flush=True)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def test_launch_waits_for_health_and_stop_leaves_nothing(tmp_path):
    port = serving.free_port()
    server = serving.launch([sys.executable, "-c", HEALTHY, str(port)], port, tmp_path / "server.log")
    assert server.wait_healthy(timeout=30) < 30 and server.alive()
    assert server.health() == (200, {})
    assert server.stop() == -15 and not server.alive()
    assert server.health() == (0, {})  # nothing answers: a supervisor restarts it
    assert "listening" in server.log.read_text()


def test_a_server_that_dies_is_reported_with_its_log(tmp_path):
    port = serving.free_port()
    server = serving.launch([sys.executable, "-c", "print('no model here'); raise SystemExit(3)"], port,
                            tmp_path / "server.log")
    with pytest.raises(RuntimeError, match="exited with code 3(.|\n)*no model here"):
        server.wait_healthy(timeout=30)
    server.stop()


def test_the_server_process_finds_the_course_without_an_installed_package(tmp_path, monkeypatch):
    # on Colab the notebook only put the clone on sys.path; the server is a child process and must import helpers
    monkeypatch.chdir(tmp_path)  # not from the repository's folder, without site-packages (-S): only PYTHONPATH
    port = serving.free_port()
    code = "import helpers, os; print('found', helpers.__file__); print('path', os.environ['PYTHONPATH'])"
    server = serving.launch([sys.executable, "-S", "-c", code], port, tmp_path / "server.log",  # -S: no site
                            env={"PATH": os.environ.get("PATH", "")})
    server.process.wait(timeout=30)
    server.stop()
    assert f"found {REPO_ROOT / 'helpers' / '__init__.py'}" in server.log.read_text()


@pytest.mark.parametrize("change, words", [
    ({"temperature": 5}, "'temperature' must be a number between 0 and 2, got 5"),
    ({"temperature": "hot"}, "'temperature' must be a number"),
    ({"top_p": 0}, "'top_p' must be a number in (0, 1], got 0"),
    ({"n": 0}, "'n' must be an integer between 1 and 128"),
    ({"logprobs": "yes"}, "'logprobs' must be true or false"),
    ({"temperature": 0.7}, "'temperature' = 0.7 is not supported by this server, which decodes greedily"),
    ({"top_p": 0.9}, "'top_p' = 0.9 is not supported"),
    ({"n": 3}, "'n' = 3 is not supported"),
    ({"logprobs": True}, "send false or leave it out"),
    ({"presence_penalty": 0.5}, "'presence_penalty' is not supported by this server (it would be ignored)"),
])
def test_sampling_parameters_are_honoured_or_refused_never_ignored(change, words):
    assert words in server.check_request("/v1/chat/completions", {**GOOD, **change}, "tiny:sft", 512)


def test_the_values_the_server_uses_pass():
    fine = {**GOOD, "temperature": 0, "top_p": 1.0, "n": 1, "logprobs": False, "stream": True, "seed": 3}
    assert server.check_request("/v1/chat/completions", fine, "tiny:sft", 512) is None


def test_a_prompt_longer_than_the_context_is_refused_before_the_engine():
    def count(body):
        return len(body["messages"][0]["content"].split())

    long = {**GOOD, "messages": [{"role": "user", "content": "word " * 600}]}
    assert "maximum context length is 512 tokens; the prompt has 600" in \
        server.check_request("/v1/chat/completions", long, "tiny:sft", 512, count)
    near = {**GOOD, "messages": [{"role": "user", "content": "word " * 508}], "max_tokens": 8}
    assert "the prompt has 508 and 8 more" in server.check_request("/v1/chat/completions", near, "tiny:sft", 512, count)
    unset = {"messages": [{"role": "user", "content": "word " * 500}]}
    assert server.check_request("/v1/chat/completions", unset, "tiny:sft", 512, count) is None
    assert unset["max_tokens"] == 12  # what is left of the context, as vLLM does

    def broken(body):
        raise ValueError("no template")

    assert "chat template: no template" in server.check_request("/v1/chat/completions", GOOD, "tiny:sft", 512, broken)


def test_a_huge_body_gets_413_whatever_its_content_length_says():
    huge = json.dumps({**GOOD, "messages": [{"role": "user", "content": "x" * (server.MAX_BODY_BYTES + 10)}]})
    for length in (None, 100):  # told, or lied about: counted as it arrives, and read to its end
        status, reply = call("/v1/chat/completions", huge.encode(), "k1", length)
        assert status == 413 and reply["error"]["code"] == "body_too_large"


def test_vllm_only_where_it_is_reported_to_run_and_built_for_the_driver():
    assert serving.default_engine("cpu")[0] == "transformers"
    engine, why = serving.default_engine("cuda", (7, 5))  # a T4
    assert engine == "transformers" and "7.5 < 8.0" in why
    assert serving.default_engine("cuda", (6, 0))[0] == "transformers"  # Kaggle's P100
    assert serving.default_engine("cuda", (8, 9))[0] == "vllm"  # an L4
    assert serving.vllm_requirement("0.33.0", 12) == [
        "vllm==0.33.0+cu129", "--extra-index-url", "https://wheels.vllm.ai/0.33.0/cu129/"]  # Colab's CUDA 12 driver
    assert serving.vllm_requirement("0.33.0", 13) == serving.vllm_requirement("0.33.0", None) == ["vllm==0.33.0"]
