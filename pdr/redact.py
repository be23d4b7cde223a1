"""Credentials stay in the process: a password in a URL is replaced before it is stored or shown.

A model spec such as ``vllm:m@http://user:PASS@host/v1`` or a ledger URL such as
``postgresql+psycopg://user:PASS@host/db`` carries a password in the URL's user information. Every
place that writes such a string (the ledger's runs and calls, checkpoints, error messages) or prints
it (``pdr runs list``, progress titles) goes through ``redact``, which keeps the user name and
replaces the password with ``***``.
"""

from __future__ import annotations

import re

MASK = "***"

# scheme://user:password@  (the password ends at the last '@' before the host)
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]*):(?P<secret>[^/\s]*)@")


def redact(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    return _USERINFO.sub(lambda found: f"{found['head']}:{MASK}@", text)


def is_redacted(text: str) -> bool:
    """True when ``text`` holds a URL whose password was replaced by ``redact``."""
    return f":{MASK}@" in text
