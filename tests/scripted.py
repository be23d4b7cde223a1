"""A scripted chat model for offline tests: it answers from the prompt's content.

It recognises which step is calling from the system prompt, decodes the call's round and index
from the seed every node passes (pdr.calls.call_seed), sleeps a configurable latency, reports
``usage_metadata`` (by default the whitespace-token counts of prompt and reply, or scripted
numbers), and logs every call under a lock, so tests can count calls and spot repeated work. It is
safe under concurrency.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field

from pdr.prompts import distill, draft, long_cot, refine, verify

ROLE_BY_SYSTEM = {
    draft.SYSTEM: "draft",
    refine.SYSTEM: "refine",
    distill.SUMMARY_SYSTEM: "distill",
    verify.SYSTEM: "verify",
    long_cot.SYSTEM: "long_cot",
}


@dataclass
class Call:
    """What the scripted model saw in one call."""

    role: str
    round: int
    index: int
    seed: int | None
    prompt: str
    max_tokens: int | None
    number: int = 0


@dataclass
class Script:
    """How the scripted model behaves; each hook receives the Call.

    Attributes:
        latency: seconds each call sleeps (a callable may vary it per call).
        answer: the final answer a draft/refine/long_cot reply ends with.
        reply_tokens: whitespace tokens of each reply (None: a short natural reply).
        usage: (input_tokens, output_tokens) to report (None: whitespace counts).
        fail: raise this exception for the call (None: succeed).
        log_path: also append one JSON line per finished call here (for killed processes).
    """

    latency: float | Callable[[Call], float] = 0.0
    answer: Callable[[Call], str] = lambda call: "391"
    reply_tokens: Callable[[Call], int] | None = None
    usage: Callable[[Call, str], tuple[int, int]] | None = None
    fail: Callable[[Call], Exception | None] = lambda call: None
    before_reply: Callable[[Call], None] = lambda call: None
    log_path: Path | None = None


def words(text: str) -> int:
    """The scripted model's tokenizer: whitespace-separated pieces."""
    return len(text.split())


def decode_seed(seed: int | None) -> tuple[int, int]:
    """Round and index from pdr.calls.call_seed (seed * 1_000_003 + round * 1000 + index)."""
    if seed is None:
        return 0, 0
    rest = seed % 1_000_003
    return rest // 1000, rest % 1000


class ScriptedChatModel(BaseChatModel):
    """A deterministic chat model driven by a Script; see the module docstring."""

    script: Script = Field(default_factory=Script)
    calls: list[Call] = Field(default_factory=list)
    started: list[Call] = Field(default_factory=list)
    lock: Any = None
    in_flight: int = 0
    peak_in_flight: int = 0

    def model_post_init(self, context: Any) -> None:
        self.calls = []
        self.started = []
        self.lock = threading.Lock()

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def get_num_tokens(self, text: str) -> int:
        return words(text)

    def _describe(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> Call:
        system = str(messages[0].content) if messages else ""
        role = ROLE_BY_SYSTEM.get(system, "unknown")
        prompt = "\n".join(str(m.content) for m in messages)
        seed = kwargs.get("seed")
        round_, index = decode_seed(seed)
        with self.lock:
            call = Call(role, round_, index, seed, prompt, kwargs.get("max_tokens"))
            call.number = len(self.started)
            self.started.append(call)
        return call

    def _reply(self, call: Call) -> str:
        if call.role == "verify":
            body = "Checked. Score: 8"
        elif call.role == "distill":
            body = "Notes: the attempts agree on 391 ; check 17 * 23 ."
        else:
            body = f"17 * 23 = 391 . Answer: {self.script.answer(call)}"
        if self.script.reply_tokens is None:
            return body
        wanted = self.script.reply_tokens(call)
        tail = body.split()[-2:]
        return " ".join(["step"] * max(0, wanted - len(tail)) + tail[-wanted:])

    def _finish(self, call: Call) -> ChatResult:
        failure = self.script.fail(call)
        if failure is not None:
            raise failure
        self.script.before_reply(call)
        text = self._reply(call)
        if self.script.usage is not None:
            input_tokens, output_tokens = self.script.usage(call, text)
        else:
            input_tokens, output_tokens = words(call.prompt), words(text)
        with self.lock:
            self.calls.append(call)
            if self.script.log_path is not None:
                with self.script.log_path.open("a") as log:
                    log.write(
                        json.dumps({"role": call.role, "round": call.round, "index": call.index})
                        + "\n"
                    )
        message = AIMessage(
            content=text,
            usage_metadata={
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "total_tokens": input_tokens + output_tokens,
            },
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _latency(self, call: Call) -> float:
        latency = self.script.latency
        return latency(call) if callable(latency) else latency

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = self._describe(messages, kwargs)
        time.sleep(self._latency(call))
        return self._finish(call)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = self._describe(messages, kwargs)
        with self.lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self._latency(call))
            return self._finish(call)
        finally:
            with self.lock:
                self.in_flight -= 1

    def count(self, role: str) -> int:
        """Finished calls of ``role``."""
        return sum(1 for call in self.calls if call.role == role)


def problem_numbers(prompt: str) -> tuple[int, int] | None:
    """The two factors of a 'What is A * B?' problem in a prompt."""
    found = re.search(r"What is (\d+) \* (\d+)\?", prompt)
    return (int(found.group(1)), int(found.group(2))) if found else None
