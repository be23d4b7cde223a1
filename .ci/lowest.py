"""Print pip constraints that pin every runtime dependency of pyproject.toml to its lower bound.

CI's second job installs the project with these constraints (``pip install -c``) and runs the
quick tests, so the lowest versions pyproject.toml admits are checked as well as the newest.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

LOWER = re.compile(r"^\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(?:>=|==)\s*([^,;\s]+)")


def main() -> None:
    """Print ``name==lower`` for each of ``[project].dependencies``."""
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "pyproject.toml")
    project = tomllib.loads(path.read_text())
    for requirement in project["project"]["dependencies"]:
        found = LOWER.match(requirement)
        if found is None:
            raise SystemExit(f"no lower bound in {requirement!r}: pin one in pyproject.toml")
        print(f"{found.group(1)}=={found.group(3)}")


if __name__ == "__main__":
    main()
