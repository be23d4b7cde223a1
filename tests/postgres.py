"""A real PostgreSQL server for the tests, started once per test session and stopped at its end.

The server binaries (``initdb``, ``postgres``) come from the system: Debian's ``postgresql``
package (``.ci/run`` installs it), found under ``/usr/lib/postgresql/*/bin``, on the PATH, or in
``PDR_PG_BIN``. The cluster lives in a temporary folder and listens on a free loopback port (TCP
only, no Unix socket), trusts local connections, and is stopped (fast shutdown) and deleted at the
end of the session. Each test gets its own empty schema of one database (``create_schema``): a
URL whose ``options`` put that schema first on the search path, which SQLAlchemy (the ledger),
psycopg (LangGraph's checkpoints) and Alembic all follow. A schema costs a few catalog rows where
a database per test cost a third of a second to create and thousands of files to delete.

This is our own small fixture rather than pytest-postgresql: ``initdb`` and ``pg_ctl`` refuse to
run as root, and CI runs as root; here the binaries run as an unprivileged user (``postgres`` when
the package created it, else ``nobody``) when the tests run as root, which pytest-postgresql does
not do. It is also about 100 lines with no dependency beyond psycopg, which pdr uses anyway.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

REQUIRED_ENV = "PDR_REQUIRE_POSTGRES"
"""When set (CI sets it), a missing server binary fails the tests instead of skipping them."""


INITDB = ["--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"]
# Loopback TCP only; no fsync (the tests kill clients, never the server); room for many workers.
SERVER = [
    *("-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="),
    *("-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=300"),
]


def server_binaries() -> Path | None:
    """The folder holding ``initdb`` and ``postgres``, or None where none is installed."""
    candidates: list[Path] = []
    if os.environ.get("PDR_PG_BIN"):
        candidates.append(Path(os.environ["PDR_PG_BIN"]))
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates += debian
    found = shutil.which("initdb")
    if found:
        candidates.append(Path(found).parent)
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "postgres").exists():
            return folder
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PostgresServer:
    """One PostgreSQL cluster in a temporary folder: ``start``, ``create_database``, ``stop``."""

    binaries: Path
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pdr-pg-")))
    port: int = 0
    user: str = "pdr"
    process: subprocess.Popen[bytes] | None = None
    schemas: int = 0
    database: str = "pdr_tests"

    def _as_owner(self) -> dict[str, Any]:
        """Popen arguments that drop root to an unprivileged user (the server refuses root)."""
        if os.geteuid() != 0:
            return {}
        for name in ("postgres", "nobody"):
            with contextlib.suppress(KeyError):
                entry = pwd.getpwnam(name)
                return {"user": entry.pw_uid, "group": entry.pw_gid}
        raise RuntimeError("running as root with neither a 'postgres' nor a 'nobody' user")

    def start(self) -> None:
        """Create the cluster and start the server; returns once it accepts connections."""
        owner = self._as_owner()
        if owner:
            os.chown(self.folder, owner["user"], owner["group"])
        data = self.folder / "data"
        subprocess.run(
            [str(self.binaries / "initdb"), "-D", str(data), "-U", self.user, *INITDB],
            check=True,
            capture_output=True,
            cwd=self.folder,
            extra_groups=[] if owner else None,
            **owner,
        )
        for _ in range(5):  # another process may take the probed port first
            self.port = _free_port()
            log = open(self.folder / "server.log", "wb")  # noqa: SIM115 (the server's own)
            self.process = subprocess.Popen(
                [str(self.binaries / "postgres"), "-D", str(data), "-p", str(self.port), *SERVER],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.folder,
                extra_groups=[] if owner else None,
                **owner,
            )
            log.close()
            if self._ready():
                with psycopg.connect(self.conninfo("postgres"), autocommit=True) as connection:
                    connection.execute(f'CREATE DATABASE "{self.database}"')
                return
            self.process.wait(10)
        raise RuntimeError(f"PostgreSQL did not start: {(self.folder / 'server.log').read_text()}")

    def _ready(self, timeout: float = 60.0) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with psycopg.connect(self.conninfo("postgres"), connect_timeout=2):
                    return True
            except psycopg.OperationalError:
                time.sleep(0.1)
        return False

    def conninfo(self, database: str, password: str | None = None) -> str:
        """A libpq URL of ``database`` (the password is ignored by trust authentication)."""
        secret = f":{password}" if password else ""
        return f"postgresql://{self.user}{secret}@127.0.0.1:{self.port}/{database}"

    def create_schema(self, password: str | None = None) -> str:
        """A fresh, empty schema; returns the URL that works in it."""
        self.schemas += 1
        name = f"test_{self.schemas}"
        with psycopg.connect(self.conninfo(self.database), autocommit=True) as connection:
            connection.execute(f'CREATE SCHEMA "{name}"')
        return f"{self.conninfo(self.database, password)}?options=-csearch_path%3D{name}"

    def stop(self) -> None:
        """Fast shutdown, then delete the folder."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)
