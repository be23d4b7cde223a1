r"""Text safe to print on a terminal: model replies and stored text without control characters.

A model's reply (or a problem, or a server's error page) can hold escape sequences:
``\x1b]0;X\a`` sets the terminal's title, others move the cursor or rewrite what is on screen.
Everything pdr prints that it did not write itself goes through ``printable``, which drops every C0
and C1 control character except newline and tab (the escape character among them, so no sequence
can start).
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` without control characters (newlines and tabs kept)."""
    return _CONTROL.sub("", text)
