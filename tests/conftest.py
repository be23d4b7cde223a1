from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pdr.models import register_model, unregister_model
from tests.scripted import Script, ScriptedChatModel


@pytest.fixture
def scripted() -> Iterator[ScriptedChatModel]:
    """A fresh scripted model registered as the spec 'scripted'."""
    model = ScriptedChatModel(script=Script())
    register_model("scripted", model)
    yield model
    unregister_model("scripted")


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
