"""The peer: optillm's proxy, from its own virtual environment, never a dependency of pdr.

``python -m benchmarks.peer install`` makes ``benchmarks/.peer-venv`` (git-ignored) and installs
optillm there. optillm's own requirements pull torch, transformers, gradio, spacy and more (several
GB, none of which its proxy uses for the ``none`` pass-through or the ``mars`` approach), so it is
installed without them and with the packages its server imports. The benchmarks find it there (or
through ``$PDR_BENCH_OPTILLM_PYTHON``, a Python that can import ``optillm.server``) and start it
on a free loopback port in front of the simulated server; without it, the peer's rows are skipped
with a line saying how to install it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import venv
from pathlib import Path

from benchmarks.sim_server import ChildServer

HERE = Path(__file__).resolve().parent
PEER_VENV = HERE / ".peer-venv"
OPTILLM = "optillm==0.4.0"
# What optillm's server imports at start (measured: `import optillm.server` in a bare venv).
PROXY_REQUIREMENTS = [
    "flask",
    "openai",
    "httpx",
    "cerebras_cloud_sdk",
    "numpy",
    "networkx",
    "z3-solver<=4.15.4.0",
    "sympy",
    "aiohttp",
    "PyYAML",
    "math-verify",
]
INSTALL_HINT = "python -m benchmarks.peer install"


def peer_python() -> Path | None:
    """A Python that can run optillm's server, or None."""
    explicit = os.environ.get("PDR_BENCH_OPTILLM_PYTHON")
    candidate = Path(explicit) if explicit else PEER_VENV / "bin" / "python"
    if not candidate.is_file():
        return None
    check = subprocess.run(
        [str(candidate), "-c", "import optillm.server"], capture_output=True, timeout=120
    )
    return candidate if check.returncode == 0 else None


def missing_reason() -> str:
    return f"optillm is not installed for the benchmarks; install it with: {INSTALL_HINT}"


def install() -> None:
    """Create ``benchmarks/.peer-venv`` and install optillm's proxy into it."""
    venv.create(PEER_VENV, with_pip=True, clear=True)
    pip = [str(PEER_VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "--no-deps", OPTILLM], check=True)
    subprocess.run([*pip, *PROXY_REQUIREMENTS], check=True)
    if peer_python() is None:
        raise SystemExit("optillm was installed but its server does not import")
    print(f"optillm installed in {PEER_VENV}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Optillm(ChildServer):
    """optillm's proxy in a subprocess, forwarding to ``upstream``; ``url`` is its /v1 base."""

    stop_timeout_s = 20.0

    def __init__(self, python: Path, upstream: str, log_path: Path) -> None:
        self.python = python
        self.upstream = upstream
        self.log_path = log_path
        self.url = ""

    def __enter__(self) -> Optillm:
        port = free_port()
        environment = {**os.environ, "OPENAI_API_KEY": "EMPTY"}
        command = [
            str(self.python),
            "-c",
            "import sys; from optillm import main; sys.exit(main())",
            "--base-url",
            self.upstream,
            "--port",
            str(port),
            "--log",
            "warning",
        ]
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.log_path.parent,
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"optillm exited; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    self.url = f"http://127.0.0.1:{port}/v1"
                    return self
            except OSError:
                time.sleep(0.5)
        self.__exit__(None, None, None)
        raise RuntimeError(f"optillm did not answer within 120 s; see {self.log_path}")


if __name__ == "__main__":
    if sys.argv[1:] != ["install"]:
        raise SystemExit(f"usage: {INSTALL_HINT}")
    install()
