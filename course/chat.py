"""`python -m course chat MODEL`: talk to any model the course produced, in the terminal or from a script.

MODEL is a model folder (a ``save_pretrained`` checkpoint: a lesson's, a capstone stage's), a run folder holding such
checkpoints (the newest one is used), or any id the course loads (``tiny:sft``, ``dpo:tiny:sft``, a Hub id).
The replies use the chat template the model was trained with (``helpers.recipes.load_tokenizer``) and stream as
they are generated. Type a message; ``/reset`` forgets the conversation, ``/quit`` (or end of input) leaves.
``--prompt TEXT`` answers one message and exits, for scripts. Piped input works as typed input does.
"""

from __future__ import annotations

import sys
from pathlib import Path

HELP = "/reset: start a new conversation · /quit: leave"


def find_model(ref: str) -> str:
    """The model ``ref`` names: itself if it is a checkpoint folder or not a folder at all (an id), else the
    newest checkpoint folder under it (a run folder); a folder with none is an error naming it."""
    path = Path(ref)
    if not path.is_dir() or (path / "config.json").is_file():
        return ref
    found = sorted((c.parent for c in path.rglob("config.json")), key=lambda p: p.stat().st_mtime)
    if not found:
        raise SystemExit(f"{ref}: no model in this folder (no config.json below it); give a checkpoint folder, "
                         "a run folder, or a model id such as tiny:sft")
    return str(found[-1])


class Chat:
    """A conversation with one model: ``say(text)`` returns (and streams) the reply; ``reset()`` forgets."""

    def __init__(self, model_ref: str, temperature: float = 0.0, max_new_tokens: int = 64, stream=None, seed: int = 0):
        from helpers import environment, precision, recipes

        environment.set_seed(seed)  # sampled replies (temperature > 0) are the same from one session to the next
        self.source = find_model(model_ref)
        device = environment.pick_device(verbose=False)
        self.model, self.tokenizer = recipes.load_model(self.source, dtype=precision.choose(device).load_dtype)
        self.model.to(device).eval()
        self.temperature, self.max_new_tokens, self.stream = temperature, max_new_tokens, stream
        self.messages: list[dict] = []

    def reset(self) -> None:
        self.messages = []

    def say(self, text: str) -> str:
        from helpers.evaluation import generate

        self.messages.append({"role": "user", "content": text})
        sampling = {"do_sample": True, "temperature": self.temperature, "top_k": 0} if self.temperature > 0 else {}
        streamer = None if self.stream is None else _streamer(self.tokenizer, self.stream)
        (reply,) = generate(self.model, self.tokenizer, [self.messages], self.max_new_tokens, batch_size=1,
                            streamer=streamer, **sampling)  # the course's generation: template, stop tokens
        self.messages.append({"role": "assistant", "content": reply})
        return reply


def _streamer(tokenizer, stream):
    """transformers' TextStreamer writing the reply's text to ``stream`` as tokens arrive."""
    from transformers import TextStreamer

    class Streamer(TextStreamer):
        started = False

        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            text = text if self.started else text.lstrip()  # the reply's first token may carry a space
            self.started = self.started or bool(text)
            stream.write(text + ("\n" if stream_end else ""))
            stream.flush()

    return Streamer(tokenizer, skip_prompt=True, skip_special_tokens=True)


def main(model: str, prompt: str | None = None, temperature: float = 0.0, max_new_tokens: int = 64, seed: int = 0,
         stdin=None, stdout=None) -> int:
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    chat = Chat(model, temperature, max_new_tokens, stream=stdout, seed=seed)
    if prompt is not None:
        chat.say(prompt)
        return 0
    interactive = stdin.isatty()
    print(f"chatting with {chat.source} (temperature {temperature}, at most {max_new_tokens} new tokens) · {HELP}",
          file=stdout)
    while True:
        if interactive:
            stdout.write("you> ")
            stdout.flush()
        line = stdin.readline()
        if not line or line.strip() == "/quit":
            return 0
        text = line.strip()
        if not text:
            continue
        if text == "/reset":
            chat.reset()
            print("(new conversation)", file=stdout)
        elif text.startswith("/"):
            print(f"unknown command {text!r} · {HELP}", file=stdout)
        else:
            stdout.write("model> ")
            chat.say(text)
