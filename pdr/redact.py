"""Credentials stay in the process: a password in a URL is replaced before it is stored or shown.

A model spec such as ``vllm:m@http://user:PASS@host/v1`` or a ledger URL such as
``postgresql+psycopg://user:PASS@host/db`` carries a password in the URL's user information. Every
place that writes such a string (the ledger's runs and calls, checkpoints, error messages) or prints
it (``pdr runs list``, progress titles) goes through ``redact``, which keeps the user name and
replaces the password with ``***``.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"

# scheme://user:password@  (the password ends at the last '@' before the host)
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]*):(?P<secret>[^/\s]*)@")


def redact(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    return _USERINFO.sub(lambda found: f"{found['head']}:{MASK}@", text)


def is_redacted(text: str) -> bool:
    """True when ``text`` holds a URL whose password was replaced by ``redact``."""
    return f":{MASK}@" in text


def redacted(value: Any) -> Any:
    """``value`` (text, or JSON-like lists and dicts of it) with every URL password replaced."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redacted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redacted(item) for item in value]
    return value


def restored(stored: str, supplied: str | None) -> str | None:
    """The full value of a stored one, or None when it cannot be had.

    That is ``stored`` itself when no password was taken out of it, else ``supplied`` when that
    is the same value with its password.
    """
    if not is_redacted(stored):
        return stored
    if supplied and redact(supplied) == stored:
        return supplied
    return None
