"""The package's shape: real folders, one copy of each module, public APIs only, no import circle.

These check the repository as committed (a clone of HEAD), the way a new user gets it: a checkout
without symlink support (``core.symlinks=false``, Windows' default) must install and import, and a
built wheel must hold every module of ``pdr/`` exactly once.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pdr"
DESIGN_FOLDERS = ("graphs", "nodes", "prompts", "store")
MAX_MODULE_LINES = 400
# Offline: the project's own build backend (setuptools) from this environment, no dependencies.
PIP = [sys.executable, "-m", "pip", "-q", "--no-input"]
OFFLINE_BUILD = ["--no-deps", "--no-build-isolation"]


def git(*args: str, cwd: Path = ROOT) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout


def committed_modules() -> list[str]:
    """The .py files of pdr/ in HEAD, as paths inside the package."""
    return sorted(
        path
        for path in git("ls-files", "pdr").splitlines()
        if path.endswith(".py") and not os.path.islink(ROOT / path)
    )


@pytest.fixture(scope="module")
def clone_without_symlinks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    clone = tmp_path_factory.mktemp("clone") / "pdr"
    git("-c", "core.symlinks=false", "clone", "-q", str(ROOT), str(clone))
    return clone


def test_the_design_folders_are_real_package_folders() -> None:
    for name in DESIGN_FOLDERS:
        assert (PACKAGE / name).is_dir() and not (PACKAGE / name).is_symlink()
        assert (PACKAGE / name / "__init__.py").is_file()
        # The design card's top-level names stay visible at the root, as links to the package.
        assert (ROOT / name).resolve() == (PACKAGE / name).resolve()


def test_a_clone_without_symlinks_installs_and_imports(
    clone_without_symlinks: Path, tmp_path: Path
) -> None:
    clone = clone_without_symlinks
    assert (clone / "graphs").is_file()  # the root link became a small text file there
    target = tmp_path / "site"
    subprocess.run(
        [*PIP, "install", *OFFLINE_BUILD, "--target", str(target), str(clone)],
        check=True,
        capture_output=True,
    )
    code = (
        "import pdr, pdr.graphs.pdr, pdr.graphs.sr, pdr.graphs.long_cot, pdr.nodes.distill, "
        "pdr.prompts.draft, pdr.store.ledger, pdr.runner, pdr.cli, pdr.evaluation.harness; "
        "print(pdr.graphs.pdr.__file__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(target / "pdr" / "graphs" / "pdr.py")


def test_a_built_wheel_holds_every_module_once(
    clone_without_symlinks: Path, tmp_path: Path
) -> None:
    subprocess.run(
        [*PIP, "wheel", *OFFLINE_BUILD, "-w", str(tmp_path), str(clone_without_symlinks)],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("pdr-*.whl")
    names = [n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".py")]
    counts = Counter(names)
    assert [n for n, c in counts.items() if c > 1] == []
    assert sorted(names) == committed_modules()


def _private_imports(path: Path) -> list[str]:
    """Imports of another package's underscore modules or names in one source file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for module in modules:
            parts = module.split(".")
            if parts[0] != "pdr" and any(p.startswith("_") and p != "__future__" for p in parts):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {module}")
    return found


def test_no_private_module_of_a_dependency_is_imported() -> None:
    offenders = [hit for path in sorted(PACKAGE.rglob("*.py")) for hit in _private_imports(path)]
    assert offenders == []


def test_no_import_circle_between_modules() -> None:
    graph = grimp.build_graph("pdr")
    circles = sorted(
        f"{module} -> {imported}"
        for module in graph.modules
        for imported in graph.find_modules_directly_imported_by(module)
        if imported != module and graph.chain_exists(imported, module)
    )
    assert circles == []


def test_no_module_is_too_big_to_read_in_one_sitting() -> None:
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text().splitlines())
        for path in PACKAGE.rglob("*.py")
    }
    assert {path: lines for path, lines in sizes.items() if lines > MAX_MODULE_LINES} == {}


def test_ruff_checks_every_module_of_the_package_once() -> None:
    """The root links (graphs/, nodes/, ...) are excluded, never the folders they point to."""
    listed = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--show-files", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    checked = Counter(
        Path(line).resolve().relative_to(ROOT).as_posix()
        for line in listed
        if line.endswith(".py") and Path(line).resolve().is_relative_to(ROOT / "pdr")
    )
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "pdr").rglob("*.py")}
    assert set(checked) == modules
    assert set(checked.values()) == {1}
