"""Command-line options generated from the run contexts' own fields.

Every field of every run context (``pdr.graphs.context``) is an option of ``pdr run``: its name
(``--draft-model``), its help (the field's description), its default (the field's default, per
graph where the graphs differ) and its parsing (``pdr.graphs.fields.parse_setting``, the same as
the ``PDR_<FIELD>`` environment variables) all come from the field, so nothing is copied by hand.
An option left out is not passed to the context, so the environment fallback still applies.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
from collections.abc import Callable
from typing import Annotated, Any

import typer

from pdr.cli.terminal import CommandError
from pdr.graphs.catalog import CONTEXT_TYPES, GRAPHS, graphs_taking
from pdr.graphs.context import ContextError
from pdr.graphs.fields import (
    ENV_PREFIX,
    env_name,
    field_default,
    field_hints,
    optional_inner,
    parse_setting,
)

OPTION_OF_FIELD = {"problem": "PROBLEM"}
_LONG_DEFAULT = 40  # longer defaults (the system prompts) are not repeated in the help


@dataclasses.dataclass(frozen=True)
class ContextOption:
    """One run-context field as a command-line option."""

    name: str
    hint: Any
    description: str
    text_hint: str | None
    defaults: dict[str, Any]  # graph -> default, for the graphs that take the field

    @property
    def flag(self) -> str:
        """``--field-name``."""
        return option_name(self.name)

    @property
    def metavar(self) -> str:
        """What the option's text looks like, for the help."""
        inner, _ = optional_inner(self.hint)
        names = {str: "TEXT", int: "INT", float: "NUMBER", bool: "BOOL"}
        return names.get(inner, "8,4,1")

    def help(self) -> str:
        """The field's description, the graphs that take it and its default(s)."""
        graphs = list(self.defaults)
        scope = "" if len(graphs) == len(GRAPHS) else f"{', '.join(graphs)}: "
        shown = {graph: _show(value) for graph, value in self.defaults.items()}
        values = set(shown.values())
        if values == {None}:
            default = ""
        elif len(values) == 1:
            default = f" (default: {next(iter(values))})"
        else:
            default = " (default: " + "; ".join(f"{g} {v}" for g, v in shown.items()) + ")"
        return f"{scope}{self.description}{default}"

    def parse(self, raw: str | None) -> Any:
        """The option's text as the field's type, parsed like ``PDR_<FIELD>`` (None: not given).

        Raises:
            ContextError: naming the field, when the text does not parse.
        """
        if raw is None:
            return None
        return parse_setting(self.name, raw, self.hint, self.text_hint)


def _show(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    text = str(value)
    return text if len(text) <= _LONG_DEFAULT else "the built-in prompt"


def option_name(field_name: str) -> str:
    """The command-line option that sets a run-context field."""
    return OPTION_OF_FIELD.get(field_name, "--" + field_name.replace("_", "-"))


def context_options() -> list[ContextOption]:
    """Every field of every graph's run context, once, in declaration order."""
    found: dict[str, ContextOption] = {}
    for graph, kind in CONTEXT_TYPES.items():
        hints = field_hints(kind)
        for item in dataclasses.fields(kind):
            option = found.get(item.name)
            if option is None:
                option = ContextOption(
                    name=item.name,
                    hint=hints[item.name],
                    description=item.metadata.get("description", ""),
                    text_hint=item.metadata.get("text_hint"),
                    defaults={},
                )
                found[item.name] = option
            option.defaults[graph] = field_default(item)
    return list(found.values())


def with_context_options(
    command: Callable[..., Any], options: list[ContextOption]
) -> Callable[..., Any]:
    """``command`` with one keyword option per context field added to its signature.

    ``command`` takes its own parameters and ``**values``; the generated options arrive in
    ``values`` as text (None where the option was left out), for ``context_values`` to parse.
    """
    own = [
        parameter
        for parameter in inspect.signature(command, eval_str=True).parameters.values()
        if parameter.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    taken = {parameter.name for parameter in own}
    generated = []
    for option in options:
        if option.name in taken:
            continue
        annotation = Annotated[
            str | None,
            typer.Option(
                option.flag, help=option.help(), metavar=option.metavar, show_default=False
            ),
        ]
        generated.append(
            inspect.Parameter(
                option.name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation
            )
        )
    command.__signature__ = inspect.Signature([*own, *generated])  # type: ignore[attr-defined]
    return command


def context_values(options: list[ContextOption], given: dict[str, Any]) -> dict[str, Any]:
    """The context values of the options that were given, parsed to the fields' types.

    Raises:
        CommandError: an option's text does not parse, naming the option.
    """
    values: dict[str, Any] = {}
    for option in options:
        if given.get(option.name) is None:
            continue
        try:
            values[option.name] = option.parse(given[option.name])
        except ContextError as error:
            raise context_error(error) from error
    return values


def context_error(error: ContextError, given: dict[str, Any] | None = None) -> CommandError:
    """A ContextError ('field: reason') restated with the option's name ('--field: reason').

    A value that came from the environment (``PDR_<FIELD>``, the option not given) is named by
    its variable instead.
    """
    message = str(error)
    name, separator, reason = message.partition(": ")
    if not separator or " " in name or name.startswith(ENV_PREFIX):
        return CommandError(message)
    variable = env_name(name)
    if given is not None and given.get(name) is None and variable in os.environ:
        return CommandError(f"{variable} (environment): {reason}")
    if name == "schedule":  # show the fix in the option's own syntax, 8,4,1
        reason = re.sub(r"\[(\d+(?:, \d+)*)\]", lambda m: m.group(1).replace(", ", ","), reason)
    return CommandError(f"{option_name(name)}: {reason}")


def graph_hint(error: ContextError, graph: str) -> ContextError:
    """Point at the graph that takes a parameter given to a graph that does not."""
    message = str(error)
    name, _, reason = message.partition(": ")
    if "does not take this parameter" not in reason:
        return error
    takers = [other for other in graphs_taking(name) if other != graph]
    hint = f"; it is for --graph {' or '.join(takers)}" if takers else ""
    return ContextError(f"{name}: --graph {graph} does not take it{hint}")
