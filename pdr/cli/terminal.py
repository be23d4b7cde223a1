"""What every command shares: its own output handles, consoles, and one-line errors.

Every error a command meets ends it with one line ``Error: ...`` on stderr that names the option
and the fix, and a non-zero exit status (2 for a usage error), never a traceback.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Sequence
from typing import IO, Any, Literal, TextIO

import typer
from rich.console import Console
from typer.core import TyperGroup

from pdr.printable import printable
from pdr.redact import redact

USAGE_ERROR = 2
StreamName = Literal["stdout", "stderr"]


class CommandError(Exception):
    """A problem the user can fix; shown as one line, exit status ``code``."""

    def __init__(self, message: str, code: int = USAGE_ERROR) -> None:
        """Keep the message and exit status."""
        super().__init__(message)
        self.code = code


def one_line(text: str) -> str:
    """Collapse a message onto one line."""
    return " ".join(text.split())


def shown(text: str) -> str:
    """Text fit to print: URL passwords redacted, control characters (escape sequences) gone."""
    return printable(redact(text))


_own: dict[str, tuple[TextIO, TextIO]] = {}


def own_stream(name: StreamName) -> TextIO:
    """The command line's own handle on the process's stdout or stderr.

    llama.cpp's quiet mode (``verbose=False``) points file descriptors 1 and 2 and
    ``sys.stdout``/``sys.stderr`` at /dev/null while a model loads in a worker thread, and two
    overlapping loads can leave them there; progress lines, the answer and error lines printed
    meanwhile would be lost. Writing through a duplicate of the descriptor, taken before any model
    loads, keeps them. Where the stream is not the process's own (captured by a test runner) it is
    used as it is.
    """
    current = sys.stdout if name == "stdout" else sys.stderr
    original = sys.__stdout__ if name == "stdout" else sys.__stderr__
    if original is None or current is not original:
        return current
    cached = _own.get(name)
    if cached is not None and cached[0] is original:
        return cached[1]
    try:
        duplicate = os.dup(original.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        return current
    stream = os.fdopen(duplicate, "w", encoding=original.encoding, errors="replace", buffering=1)
    _own[name] = (original, stream)
    return stream


class LiveConsole(Console):
    """A Rich console that writes to ``own_stream(name)`` as it is at the moment of writing."""

    def __init__(self, name: StreamName) -> None:
        """A console on the command line's own stdout or stderr."""
        self._name = name  # before Console.__init__, which already reads ``file``
        super().__init__(stderr=name == "stderr")

    @property
    def file(self) -> IO[str]:
        """The stream of the moment."""
        return own_stream(self._name)

    @file.setter
    def file(self, value: IO[str]) -> None:
        pass  # always the stream of the moment


def console() -> Console:
    """A console on the current stdout (created per command, so captured output works).

    Piped or captured output gets a wide page (unless COLUMNS says otherwise), so tables of
    runs and calls stay readable in logs instead of being cut to 80 columns.
    """
    stream = own_stream("stdout")
    probe = Console(file=stream, highlight=False)
    if probe.is_terminal or os.environ.get("COLUMNS"):
        return probe
    return Console(file=stream, highlight=False, width=160)


def print_error(message: str) -> None:
    """``Error: <message>`` as one line on the command line's own stderr."""
    print(f"Error: {one_line(shown(message))}", file=own_stream("stderr"))


class OneLineErrors(TyperGroup):
    """The top-level command group: every error becomes one ``Error: ...`` line on stderr."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command; map usage errors, command errors and crashes to one line."""
        own_stream("stdout"), own_stream("stderr")  # before any model loads
        code = 0
        try:
            result = super().main(
                args, prog_name, complete_var, False, windows_expand_args, **extra
            )
            code = result if isinstance(result, int) else 0
        except typer.TyperException as error:  # bad option, missing argument, unknown command
            print_error(error.format_message())
            code = error.exit_code
        except CommandError as error:
            print_error(str(error))
            code = error.code
        except typer.Exit as done:
            code = done.exit_code
        except typer.Abort:
            print_error("aborted")
            code = 1
        except Exception as error:  # never a traceback: one line, and a failing status
            print_error(f"{type(error).__name__}: {error}")
            code = 1
        if not standalone_mode:
            return code
        sys.exit(code)
