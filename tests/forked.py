"""The ``pdr`` command in a child process forked from the test, for kills, signals and races.

A fresh ``python -m pdr.cli`` costs seconds of imports on the test machines; a fork of the test
process starts at once with everything imported (and with the test's monkeypatches, such as a zero
retry back-off). The child runs the real command line (``pdr.cli.app``) with its stdout and stderr
in files, and exits with the command's status, so a test can SIGKILL it at an exact point (the
fault server does) or send it SIGINT/SIGTERM, and read what it printed. Fork only from
synchronous tests: a child of a running event loop could not start its own.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path

# Imported here, before any fork, so that children start with them loaded.
import pdr.models.providers  # noqa: F401  (the OpenAI client the fault server is reached with)
from pdr.cli import app


@dataclass
class Child:
    """A forked ``pdr`` command: its process and the files its output went to."""

    process: BaseProcess
    stdout: Path
    stderr: Path

    @property
    def pid(self) -> int:
        """The child's pid."""
        assert self.process.pid is not None
        return self.process.pid

    def wait(self, timeout: float = 120) -> int:
        """Wait for the child; returns its exit code (-9 when SIGKILLed)."""
        self.process.join(timeout)
        assert self.process.exitcode is not None, "the pdr child did not finish in time"
        return self.process.exitcode

    @property
    def out(self) -> str:
        """What the child printed on stdout."""
        return self.stdout.read_text(errors="replace")

    @property
    def err(self) -> str:
        """What the child printed on stderr."""
        return self.stderr.read_text(errors="replace")


def _main(args: list[str], env: dict[str, str], stdout: str, stderr: str) -> None:
    os.environ.update(env)
    for fd, path in ((1, stdout), (2, stderr)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    sys.stdout = sys.__stdout__ = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = sys.__stderr__ = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    app(args, prog_name="pdr")


def start(args: list[str], folder: Path, *, env: dict[str, str] | None = None) -> Child:
    """Fork a child running ``pdr ARGS``; its output goes to files in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    number = len(list(folder.glob("*.out")))
    stdout, stderr = folder / f"{number}.out", folder / f"{number}.err"
    process = multiprocessing.get_context("fork").Process(
        target=_main, args=(args, env or {}, str(stdout), str(stderr)), daemon=False
    )
    process.start()
    return Child(process, stdout, stderr)


def run(args: list[str], folder: Path, *, env: dict[str, str] | None = None) -> Child:
    """``start`` and wait for the child to end."""
    child = start(args, folder, env=env)
    child.wait()
    return child
