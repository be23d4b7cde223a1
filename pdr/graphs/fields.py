"""The machinery behind the run contexts: field metadata, text parsing and the environment fallback.

A run-context field is declared with ``setting`` (its description and default, plus an optional
hint on how to write it as text). ``parse_setting`` turns text into the field's type, for the
environment fallback here and for the command line's options (``pdr.cli.options``), so both accept
and reject the same text with the same message. ``run_context`` makes a context class: a
keyword-only dataclass whose fields left out of the constructor call take ``PDR_<FIELD>`` from the
environment when it is set (every field, generically); fields given explicitly always win.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

C = TypeVar("C")

ENV_PREFIX = "PDR_"
_NONE_WORDS = {"none", "null"}
_TRUE_WORDS = {"1", "true", "yes", "on"}
_FALSE_WORDS = {"0", "false", "no", "off"}


class ContextError(ValueError):
    """A run parameter the graphs cannot use; the message names the field and the fix."""


def setting(description: str, *, default: Any, text_hint: str | None = None) -> Any:
    """A run-context field: its description, its default, and how to write it as text.

    Lists get a default factory (a fresh copy per context). ``text_hint`` tells a user who wrote
    the value as text (an option, an environment variable) what the text should look like.
    """
    metadata = {"description": description}
    if text_hint is not None:
        metadata["text_hint"] = text_hint
    if isinstance(default, list):
        copy: Callable[[], list[Any]] = functools.partial(list, default)
        return dataclasses.field(default_factory=copy, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def env_name(field_name: str) -> str:
    """The environment variable that gives ``field_name`` a default: ``PDR_<FIELD>``."""
    return ENV_PREFIX + field_name.upper()


def field_default(item: dataclasses.Field[Any]) -> Any:
    """The default of a dataclass field (calling its factory)."""
    if item.default_factory is not dataclasses.MISSING:
        return item.default_factory()
    return item.default


def optional_inner(hint: Any) -> tuple[Any, bool]:
    """``(X, True)`` for ``X | None``, else ``(hint, False)``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(members) == 1 and len(typing.get_args(hint)) == 2:
            return members[0], True
    return hint, False


def parse_setting(label: str, raw: str, hint: Any, text_hint: str | None = None) -> Any:
    """Text -> a value of type ``hint`` (str, int, float, bool, list[int], or ``X | None``).

    Raises:
        ContextError: ``"<label>: <what the text should be>, got '<raw>'"``.
    """
    inner, optional = optional_inner(hint)
    text = raw.strip()
    if optional and text.lower() in _NONE_WORDS:
        return None
    if inner is str:
        return raw
    if inner is bool:
        if text.lower() in _TRUE_WORDS | _FALSE_WORDS:
            return text.lower() in _TRUE_WORDS
        raise ContextError(f"{label}: must be true or false, got {raw!r}")
    if inner is int:
        try:
            return int(text)
        except ValueError:
            raise ContextError(f"{label}: must be a whole number, got {raw!r}") from None
    if inner is float:
        try:
            return float(text)
        except ValueError:
            raise ContextError(f"{label}: must be a number, got {raw!r}") from None
    if typing.get_origin(inner) is list and typing.get_args(inner) == (int,):
        return _parse_int_list(label, text, raw, text_hint)
    raise TypeError(f"{label}: no text form for a field of type {hint!r}")


def _parse_int_list(label: str, text: str, raw: str, text_hint: str | None) -> list[int]:
    hint = text_hint or "give whole numbers separated by commas, such as 8,4,1"
    try:
        value = json.loads(text) if text.startswith("[") else text.split(",")
    except json.JSONDecodeError:
        value = None
    parts = [str(part).strip() for part in value] if isinstance(value, list) else []
    if not parts or not all(part.isdigit() for part in parts):
        raise ContextError(f"{label}: {hint}; got {raw!r}")
    return [int(part) for part in parts]


def field_hints(context_type: type) -> dict[str, Any]:
    """The resolved type of every field of a context class."""
    return typing.get_type_hints(context_type)


def run_context(cls: type[C]) -> type[C]:
    """Make ``cls`` a run context: a keyword-only dataclass with the environment fallback.

    The generated ``__init__`` is wrapped so that the fields the caller did not pass take
    ``PDR_<FIELD>`` when that variable is set, parsed like the field's type, before validation
    (``__post_init__``) runs.
    """
    data_class = dataclasses.dataclass(kw_only=True)(cls)
    generated = data_class.__init__

    @functools.wraps(generated)
    def __init__(self: Any, **given: Any) -> None:
        hints = field_hints(type(self))
        for item in dataclasses.fields(self):
            name = env_name(item.name)
            if item.name in given or not item.init or name not in os.environ:
                continue
            given[item.name] = parse_setting(
                name, os.environ[name], hints[item.name], item.metadata.get("text_hint")
            )
        generated(self, **given)

    data_class.__init__ = __init__  # type: ignore[method-assign]
    return data_class


def check_positive_int(name: str, value: Any) -> None:
    """Raise ContextError unless ``value`` is a whole number >= 1."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ContextError(f"{name}: must be a whole number >= 1, got {value!r}")


def check_range(name: str, value: Any, low: float, high: float) -> None:
    """Raise ContextError unless ``value`` is a number from ``low`` to ``high``."""
    if not isinstance(value, int | float) or not low <= float(value) <= high:
        raise ContextError(f"{name}: must be a number from {low} to {high}, got {value!r}")


def check_text(name: str, value: Any) -> None:
    """Raise ContextError unless ``value`` is a non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise ContextError(f"{name}: must be a non-empty text, got {value!r}")


Check = Callable[[str, Any], None]
