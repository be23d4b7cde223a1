from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pdr.models import register_model, unregister_model
from tests.postgres import REQUIRED_ENV, PostgresServer, server_binaries
from tests.scripted import Script, ScriptedChatModel


@pytest.fixture
def scripted() -> Iterator[ScriptedChatModel]:
    """A fresh scripted model registered as the spec 'scripted'."""
    model = ScriptedChatModel(script=Script())
    register_model("scripted", model)
    yield model
    unregister_model("scripted")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the whole session (tests/postgres.py)."""
    binaries = server_binaries()
    if binaries is None:
        reason = (
            "no PostgreSQL server binaries (initdb, postgres) on this machine: install Debian's "
            "'postgresql' package (apt-get install -y postgresql) or set PDR_PG_BIN"
        )
        if os.environ.get(REQUIRED_ENV):
            pytest.fail(reason)
        pytest.skip(reason)
    server = PostgresServer(binaries)
    server.start()
    yield server
    server.stop()


@dataclass(frozen=True)
class Store:
    """Where a test's ledger and checkpoints live: SQLite files, or one PostgreSQL database.

    Attributes:
        kind: "sqlite" or "postgresql".
        ledger: the ``--db`` value (a file path or a ``postgresql://`` URL).
        checkpoints: the ``--checkpoints`` value (a file path or the same URL: the ledger's
            tables and LangGraph's share the test's schema).
    """

    kind: str
    ledger: str
    checkpoints: str

    @property
    def args(self) -> list[str]:
        """``--db LEDGER --checkpoints CHECKPOINTS`` for a ``pdr`` command."""
        return ["--db", self.ledger, "--checkpoints", self.checkpoints]


def sqlite_store(folder: Path) -> Store:
    """SQLite files in ``folder``."""
    return Store("sqlite", str(folder / "ledger.sqlite"), str(folder / "checkpoints.sqlite"))


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """The test's ledger and checkpoints, once on SQLite files and once on PostgreSQL."""
    if request.param == "sqlite":
        return sqlite_store(tmp_path)
    server: PostgresServer = request.getfixturevalue("postgres")
    url = server.create_schema()
    return Store("postgresql", url, url)


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded 0.5B model's tokenizer, saved as a transformers folder (the train extra)."""
    from tests.toy_policy import NO_TRAIN_EXTRA, save_tokenizer

    pytest.importorskip("torch", reason=NO_TRAIN_EXTRA)

    return save_tokenizer(tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture(scope="session")
def toy_policy_dir(tiny_tokenizer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Qwen2 policy of tests/toy_policy.py, pretrained to the answer format and saved."""
    import torch
    from transformers import AutoTokenizer

    from tests.toy_policy import pretrain, tiny_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
        model = pretrain(tiny_model(tokenizer), tokenizer)
    finally:
        torch.set_num_threads(threads)
    folder = tmp_path_factory.mktemp("toy-policy")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
