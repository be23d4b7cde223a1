"""Print pip constraints that pin every runtime dependency of pyproject.toml to its lower bound.

CI's second job installs the project with these constraints (``pip install -c``) and runs the
quick tests, so the lowest versions pyproject.toml admits are checked as well as the newest.
``python .ci/lowest.py [EXTRA ...]`` pins ``[project].dependencies`` and the named optional
dependencies (CI names ``train``: torch, transformers, trl, ... at their lower bounds); the
``fast`` extra's model parts are exact pins already.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

LOWER = re.compile(r"^\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(?:>=|==)\s*([^,;\s]+)")


def main() -> None:
    """Print ``name==lower`` for each of ``[project].dependencies`` and of the extras named."""
    project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in sys.argv[1:]:
        if extra not in project["optional-dependencies"]:
            raise SystemExit(f"no extra {extra!r} in pyproject.toml")
        requirements += project["optional-dependencies"][extra]
    for requirement in requirements:
        found = LOWER.match(requirement)
        if found is None:
            raise SystemExit(f"no lower bound in {requirement!r}: pin one in pyproject.toml")
        print(f"{found.group(1)}=={found.group(3)}")


if __name__ == "__main__":
    main()
