"""The command line's view of a running graph: rounds, drafts and workspaces as they happen.

``LiveView`` consumes the graphs' progress events (``stream_mode="custom"``). On a terminal it
redraws a Rich table in place; elsewhere (a pipe, a log file, a test) it prints one plain line per
event, so the progress of a run is readable after the fact too.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from pdr.events import ANSWER, DRAFT_FINISHED, DRAFT_VERIFIED, ROUND_STARTED, WORKSPACE_WRITTEN
from pdr.printable import printable


@dataclass
class RoundView:
    """What is known about one round."""

    drafts: int
    cap: int | None = None
    finished: dict[int, tuple[int, int, str | None]] = field(default_factory=dict)
    scores: dict[int, float] = field(default_factory=dict)
    workspaces: int = 0
    workspace_tokens: int | None = None

    @property
    def waves(self) -> int:
        """How many waves the round's drafts run in under the call cap (1 without a cap)."""
        if not self.cap or self.drafts <= self.cap:
            return 1
        return -(-self.drafts // self.cap)

    def drafts_text(self) -> str:
        """``64 drafts``, or ``64 drafts, 16 at a time (max_concurrency 16): 4 waves``."""
        text = f"{self.drafts} drafts"
        if self.waves > 1:
            text += f", {self.cap} at a time (max_concurrency {self.cap}): {self.waves} waves"
        return text


class LiveView:
    """Shows a run's progress events; use as a context manager and pass ``handle`` as on_event."""

    def __init__(self, console: Console, *, title: str, quiet: bool = False) -> None:
        """Show progress on ``console`` under ``title``; ``quiet`` shows nothing."""
        self.console = console
        self.title = title
        self.quiet = quiet
        self.rounds: dict[int, RoundView] = {}
        self.total_rounds = 0
        self.answer: dict[str, Any] | None = None
        self._live: Live | None = None

    def __enter__(self) -> LiveView:
        """Start redrawing in place when the console is a terminal."""
        if not self.quiet and self.console.is_terminal:
            self._live = Live(
                self.render(), console=self.console, refresh_per_second=8, transient=False
            )
            self._live.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        """Draw the last state and stop."""
        if self._live is not None:
            self._live.update(self.render())
            self._live.__exit__(kind, error, trace)
            self._live = None

    def handle(self, event: dict[str, Any]) -> None:
        """Take one progress event into account and show it."""
        kind = event.get("event")
        line: str | None = None
        if kind == ROUND_STARTED:
            number = int(event["round"])
            self.total_rounds = int(event.get("rounds", self.total_rounds))
            cap = event.get("max_concurrency")
            view = self.rounds[number] = RoundView(
                drafts=int(event["drafts"]), cap=None if cap is None else int(cap)
            )
            line = f"round {number}/{self.total_rounds} started: {view.drafts_text()}"
        elif kind == DRAFT_FINISHED:
            view = self._round(int(event["round"]))
            index = int(event["index"])
            tokens = (int(event["input_tokens"]), int(event["output_tokens"]))
            view.finished[index] = (*tokens, event.get("answer"))
            line = (
                f"  draft {event['round']}.{index} finished: {tokens[0]} in + {tokens[1]} out "
                f"tokens, answer {event.get('answer')}"
            )
        elif kind == DRAFT_VERIFIED:
            view = self._round(int(event["round"]))
            view.scores[int(event["index"])] = float(event["score"])
            line = f"  draft {event['round']}.{event['index']} verified: score {event['score']}"
        elif kind == WORKSPACE_WRITTEN:
            view = self._round(int(event["round"]))
            counts = [int(count) for count in event["tokens"]]
            view.workspaces = len(counts)
            view.workspace_tokens = max(counts)
            shown = "workspace" if view.workspaces == 1 else f"{view.workspaces} workspaces"
            line = f"  {shown} written after round {event['round']}: {max(counts)} tokens"
        elif kind == ANSWER:
            self.answer = event
        if self.quiet:
            return
        if self._live is not None:
            self._live.update(self.render())
        elif line is not None:
            self.console.print(Text(printable(line)), soft_wrap=True)

    def _round(self, number: int) -> RoundView:
        return self.rounds.setdefault(number, RoundView(drafts=0))

    def render(self) -> Group:
        """The current state as a table of rounds."""
        table = Table(title=Text(printable(self.title)), title_justify="left", expand=False)
        for column in ("Round", "Drafts done", "Tokens in", "Tokens out", "Answers", "Workspace"):
            table.add_column(column, justify="left" if column == "Answers" else "right")
        for number in sorted(self.rounds):
            view = self.rounds[number]
            done = view.finished.values()
            answers = Counter(str(answer) for _, _, answer in done if answer is not None)
            shown = ", ".join(f"{answer} x{count}" for answer, count in answers.most_common(3))
            workspace = "" if view.workspace_tokens is None else f"{view.workspace_tokens} tok"
            waves = f" ({view.waves} waves of {view.cap})" if view.waves > 1 else ""
            table.add_row(
                f"{number}/{self.total_rounds or '?'}",
                f"{len(view.finished)}/{view.drafts}{waves}",
                str(sum(tokens_in for tokens_in, _, _ in done)),
                str(sum(tokens_out for _, tokens_out, _ in done)),
                Text(printable(shown)),
                workspace,
            )
        parts: list[Any] = [table]
        if self.answer is not None:
            parts.append(
                Text(
                    printable(
                        f"answer {self.answer.get('answer')}  B_seq {self.answer.get('b_seq')}  "
                        f"B_tot {self.answer.get('b_tot')}"
                    )
                )
            )
        return Group(*parts)
