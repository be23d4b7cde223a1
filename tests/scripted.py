"""A scripted chat model for offline tests: it answers from the prompt's content.

It recognises which step is calling from the system prompt, finds the call's round and index by
recomputing the seed every node passes (pdr.calls.call_seed, a hash of the run seed, the messages,
the round and the index) for the messages it was sent, sleeps a configurable latency, reports
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

from pdr.calls import call_seed
from pdr.graphs.context import RunContext
from pdr.models import Message
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
        answer: the final answer a draft/refine/long_cot reply ends with (by default
            ``varied_answer``: drafts disagree, the refine step and long CoT say 391).
        score: the score a verify reply ends with (by default ``graded_score``: 9 for a draft
            that answers 391, 2 for any other).
        text: the whole reply (None: a short natural reply that ends with ``answer`` or
            ``score``).
        reply_tokens: whitespace tokens of each reply (None: the reply as it is).
        usage: (input_tokens, output_tokens) to report (None: whitespace counts).
        report_usage: False: the replies carry no usage at all (a server that omits it).
        fail: raise this exception for the call (None: succeed).
        log_path: also append one JSON line per finished call here (for killed processes).
    """

    latency: float | Callable[[Call], float] = 0.0
    answer: Callable[[Call], str] = lambda call: varied_answer(call)
    score: Callable[[Call], int] = lambda call: graded_score(call)
    text: Callable[[Call], str] | None = None
    reply_tokens: Callable[[Call], int] | None = None
    usage: Callable[[Call, str], tuple[int, int]] | None = None
    report_usage: bool = True
    fail: Callable[[Call], Exception | None] = lambda call: None
    before_reply: Callable[[Call], None] = lambda call: None
    log_path: Path | None = None


# Round-r draft i answers DRAFT_ANSWERS[(i + r - 1) % 3]: drafts of a round disagree, so
# selection (vote, verify) has something to choose, and the wrong ones move from round to round.
DRAFT_ANSWERS = ("391", "400", "391")


def varied_answer(call: Call) -> str:
    """The default answers: drafts vary by round and index; refine and long CoT say 391."""
    if call.role == "draft":
        return DRAFT_ANSWERS[(call.index + call.round - 1) % len(DRAFT_ANSWERS)]
    return "391"


def graded_score(call: Call) -> int:
    """The default verdict: 9 when the solution shown answers 391, 2 otherwise."""
    shown = call.prompt.split("Proposed solution:")[-1]
    found = re.findall(r"Answer: (\S+)", shown)
    return 9 if found and found[-1] == "391" else 2


def words(text: str) -> int:
    """The scripted model's tokenizer: whitespace-separated pieces."""
    return len(text.split())


# Run seeds, rounds and indices the scripted model tries when it identifies a call by its seed.
RUN_SEEDS = range(8)
ROUNDS = range(1, 11)
INDICES = range(64)


def decode_seed(seed: int | None, messages: list[Message]) -> tuple[int, int]:
    """Round and index of a call, found by recomputing pdr.calls.call_seed for its messages.

    The seed is a hash of (run seed, messages, round, index), so the model, which sees the
    messages, tries the run seeds, rounds and indices above until one gives this seed. (0, 0) when
    none does (no seed, or one a test set by hand).
    """
    if seed is None:
        return 0, 0
    for run_seed in RUN_SEEDS:
        context = RunContext(model="scripted", seed=run_seed)
        for round_ in ROUNDS:
            for index in INDICES:
                if call_seed(context, round_, index, messages) == seed:
                    return round_, index
    return 0, 0


def plain_messages(messages: list[BaseMessage]) -> list[Message]:
    """The LangChain messages as pdr built them (role and content)."""
    kinds: dict[str, Any] = {"system": "system", "human": "user", "ai": "assistant"}
    return [{"role": kinds[m.type], "content": str(m.content)} for m in messages]


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
        round_, index = decode_seed(seed, plain_messages(messages))
        with self.lock:
            call = Call(role, round_, index, seed, prompt, kwargs.get("max_tokens"))
            call.number = len(self.started)
            self.started.append(call)
        return call

    def _reply(self, call: Call) -> str:
        if self.script.text is not None:
            body = self.script.text(call)
        elif call.role == "verify":
            body = f"Checked. Score: {self.script.score(call)}"
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
            }
            if self.script.report_usage
            else None,
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
