"""The course's CPU server (16_serving.ipynb), run by the lesson as a child process::

    python -m helpers.server MODEL_DIR --served-model-name tiny:large --api-key KEY --port 8123

It is ``transformers serve`` (continuous batching on; ``--max-num-seqs 1`` turns it off) with the three things
vLLM's server has and it lacks, added around its FastAPI app: an API key on ``/v1/*`` (401 without it), request
checks that answer 400 with a message instead of a 500 or a silent surprise (body not JSON, ``messages`` missing or
malformed, ``max_tokens`` absurd, a prompt longer than the context, which would otherwise stop the
continuous-batching loop for every client, an unknown model, a sampling parameter out of range or one this greedy
server would ignore), 413 for a body over 1 MiB, and a ``/v1/models`` that lists the served model under its public
name. The notebook's side (start, wait, send, stop) is ``helpers.serving``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

COMPLETION_PATHS = ("/v1/chat/completions", "/v1/completions")
PAGE_SIZE = 256  # tokens per block of the paged KV cache (ContinuousBatchingConfig.page_size's default)
MAX_BODY_BYTES = 1 << 20  # a larger request body gets 413 before it is read on
# Request fields this server honours, and those it accepts only at the one value it uses: transformers serve decodes
# greedily and returns one choice without log-probabilities, and would silently ignore anything else. A field in
# neither set gets 400 naming it (vLLM honours them all).
HONOURED = {"model", "messages", "prompt", "max_tokens", "max_completion_tokens", "stream", "stream_options", "user",
            "seed"}
FIXED = {"temperature": 0, "top_p": 1, "n": 1, "logprobs": False}
RANGES = {"temperature": (0, 2), "top_p": (0, 1), "n": (1, 128)}  # the OpenAI API's ranges (top_p > 0)


def error_body(message: str, code: str, kind: str = "invalid_request_error") -> dict:
    """An error in the OpenAI API's shape, which the ``openai`` client turns into its exception's message."""
    return {"error": {"message": message, "type": kind, "code": code}}


def _sampling_problem(body: dict) -> str | None:
    for field in body:
        if field not in HONOURED and field not in FIXED:
            return (f"'{field}' is not supported by this server (it would be ignored): leave it out, or serve with "
                    "vLLM, which honours it")
    for field, used in FIXED.items():
        if field not in body:
            continue
        value = body[field]
        if field == "logprobs":
            if not isinstance(value, bool):
                return f"'logprobs' must be true or false, got {value!r}"
        else:
            low, high = RANGES[field]
            whole = field == "n"
            if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)) \
                    or not (low < value <= high if field == "top_p" else low <= value <= high):
                kind = "an integer" if whole else "a number"
                bounds = f"in (0, {high}]" if field == "top_p" else f"between {low} and {high}"
                return f"'{field}' must be {kind} {bounds}, got {value!r}"
        if value != used:
            return (f"'{field}' = {value!r} is not supported by this server, which decodes greedily and returns one "
                    f"choice without log-probabilities: send {json.dumps(used)} or leave it out (vLLM supports it)")
    return None


def check_request(path: str, body, served_name: str, max_model_len: int, prompt_tokens=None) -> str | None:
    """What is wrong with a completion request's parsed JSON body, in a sentence, or None when it is fine.

    ``prompt_tokens``: a function of the body giving the prompt's length in tokens (the chat template applied), to
    refuse a request longer than the model's context as vLLM does, before it reaches the engine; a request without
    ``max_tokens`` then gets what is left of the context, as in vLLM (set in ``body``)."""
    if not isinstance(body, dict):
        return f"the request body must be a JSON object, got {type(body).__name__}"
    if body.get("model") not in (None, served_name):
        return f"model {body['model']!r} is not served here; GET /v1/models lists {served_name!r}"
    if path.endswith("/chat/completions"):
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "'messages' must be a non-empty list of {\"role\": ..., \"content\": ...} objects"
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or "role" not in message or "content" not in message:
                return f"messages[{i}] must be an object with 'role' and 'content', got {message!r}"
    elif not isinstance(body.get("prompt"), str):
        return "'prompt' is required: a string"
    for field in ("max_tokens", "max_completion_tokens"):
        value = body.get(field)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            return f"'{field}' must be a positive integer, got {value!r}"
        if value > max_model_len:
            return f"'{field}' is {value}, more than this model's context of {max_model_len} tokens"
    problem = _sampling_problem(body)
    if problem or prompt_tokens is None:
        return problem
    try:
        length = prompt_tokens(body)
    except Exception as exc:  # noqa: BLE001 - whatever the template raises, the client hears it, the engine never
        return f"the messages could not be formatted with the model's chat template: {exc}"
    wanted = body.get("max_completion_tokens") or body.get("max_tokens")
    if wanted is None:
        if length >= max_model_len:
            return (f"this model's maximum context length is {max_model_len} tokens; the prompt alone has {length}: "
                    "shorten it")
        body["max_tokens"] = max_model_len - length  # as vLLM: the rest of the context (the body is changed)
    elif length + wanted > max_model_len:
        return (f"this model's maximum context length is {max_model_len} tokens; the prompt has {length} and "
                f"{wanted} more were asked for: shorten the prompt or lower max_tokens")
    return None


class Guard:
    """ASGI middleware: the API key on ``/v1/*`` and :func:`check_request` on completion requests.

    A request that passes is handed on with ``model`` set to the folder the engine loaded (transformers serve
    pins a forced model by that name).
    """

    def __init__(self, app, api_key: str, served_name: str, engine_name: str, max_model_len: int,
                 prompt_tokens=None):
        self.app, self.api_key, self.served_name = app, api_key, served_name
        self.engine_name, self.max_model_len, self.prompt_tokens = engine_name, max_model_len, prompt_tokens

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if headers.get(b"authorization", b"").decode() != f"Bearer {self.api_key}":
            return await self._reply(send, 401, error_body("missing or wrong API key: send the header "
                                                           "'Authorization: Bearer <key>'", "invalid_api_key"))
        if scope["method"] != "POST" or scope["path"] not in COMPLETION_PATHS:
            return await self.app(scope, receive, send)
        raw, size, more = b"", 0, True
        while more:  # read it all, even past the limit: a server that answers mid-upload breaks the client's pipe
            message = await receive()
            chunk, more = message.get("body", b""), message.get("more_body", False)
            size += len(chunk)
            raw = raw + chunk if size <= MAX_BODY_BYTES else b""
        if size > MAX_BODY_BYTES:
            return await self._reply(send, 413, error_body(f"the request body has {size:,} bytes, more than this "
                                                           f"server's limit of {MAX_BODY_BYTES:,}", "body_too_large"))
        try:
            body = json.loads(raw)
        except ValueError as exc:
            return await self._reply(send, 400, error_body(f"the request body is not valid JSON: {exc}", "bad_json"))
        problem = check_request(scope["path"], body, self.served_name, self.max_model_len, self.prompt_tokens)
        if problem:
            return await self._reply(send, 400, error_body(problem, "invalid_request"))
        body["model"] = self.engine_name
        raw, sent = json.dumps(body).encode(), False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()  # what follows the body: the client's disconnect
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}

        scope = dict(scope, headers=[(k, v) for k, v in scope["headers"] if k != b"content-length"]
                     + [(b"content-length", str(len(raw)).encode())])
        return await self.app(scope, replay, send)

    @staticmethod
    async def _reply(send, status: int, payload: dict):
        data = json.dumps(payload).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})


def _serve(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m helpers.server", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="folder of a causal LM and its tokenizer (with a chat template)")
    parser.add_argument("--served-model-name", required=True, help="the name clients ask for")
    parser.add_argument("--api-key", required=True, help="clients send 'Authorization: Bearer KEY'")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--max-num-seqs", type=int, default=16,
                        help="requests the KV cache holds at full context (vLLM's flag); 1 turns continuous batching off")
    parser.add_argument("--max-model-len", type=int, default=None,
                        help="context length served (vLLM's flag; default: the model's, at most 2048, as the lesson "
                             "gives vLLM): the KV cache holds --max-num-seqs requests of this length")
    parser.add_argument("--dtype", default="auto",
                        help="torch dtype of the weights (vLLM's flag): 'auto' keeps the checkpoint's; a T4 needs float16")
    parser.add_argument("--device", default="cpu", help="where the model runs: cpu (the lesson's tiny profile), cuda")
    args = parser.parse_args(argv)

    import transformers
    from fastapi.responses import JSONResponse
    from transformers.cli.serving import server

    engine_name = str(Path(args.model).resolve())
    # a Qwen2.5 model's 32k-131k positions for 16 requests would be 10s of GB of KV cache: 2048 unless asked
    max_model_len = args.max_model_len or min(transformers.AutoConfig.from_pretrained(engine_name).max_position_embeddings,
                                              2048)
    tokenizer = transformers.AutoTokenizer.from_pretrained(engine_name)

    def prompt_tokens(body: dict) -> int:  # as the engine will see the prompt
        if "messages" in body:
            return len(tokenizer.apply_chat_template(body["messages"], add_generation_prompt=True, tokenize=True,
                                                     return_dict=True)["input_ids"])
        return len(tokenizer(body["prompt"])["input_ids"])
    build_server = server.build_server

    def build_guarded(*a, **kw):  # transformers serve's own app, wrapped
        app = build_server(*a, **kw)
        app.router.routes = [r for r in app.router.routes if getattr(r, "path", None) != "/v1/models"]

        @app.get("/v1/models")
        def models():
            return JSONResponse({"object": "list", "data": [
                {"id": args.served_model_name, "object": "model", "owned_by": "llm-course", "created": 0,
                 "max_model_len": max_model_len}]})

        app.add_middleware(Guard, api_key=args.api_key, served_name=args.served_model_name,
                           engine_name=engine_name, max_model_len=max_model_len, prompt_tokens=prompt_tokens)
        return app

    server.build_server = build_guarded  # transformers.cli.serve.Serve imports it from this module when called
    from transformers.cli.serve import Serve

    # The paged KV cache, sized for max_num_seqs requests of a full context. Left to itself, continuous batching
    # sizes it from free memory: on a CPU, from the machine's RAM (gigabytes, and ~10 s at the first request).
    blocks = math.ceil(args.max_num_seqs * max_model_len / PAGE_SIZE)
    Serve(force_model=engine_name, continuous_batching=args.max_num_seqs > 1, cb_num_blocks=blocks,
          device=args.device, dtype=args.dtype, host=args.host, port=args.port, log_level="error")


if __name__ == "__main__":
    _serve(sys.argv[1:])
