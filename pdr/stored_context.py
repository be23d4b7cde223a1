"""A run's context as the ledger keeps it: passwords redacted, and rebuilt for a resume.

The ledger stores each run's whole context, with every URL password replaced by ``***``
(``pdr.redact``). A resume rebuilds the context from it; a redacted value is taken from the
field's ``PDR_<FIELD>`` environment variable when that holds the same value with its password,
and otherwise refused naming the variable to set.
"""

from __future__ import annotations

import os
from typing import Any

from pdr.graphs.catalog import context_type
from pdr.graphs.context import ContextError, RunContext, context_fields
from pdr.graphs.fields import env_name
from pdr.redact import restored
from pdr.store.rows import RunDetail


def stored_context(run: RunDetail) -> RunContext:
    """The run context a ledger row was started with (redacted secrets from the environment).

    Raises:
        ContextError: a stored value had a password and ``PDR_<FIELD>`` does not supply it.
    """
    kind = context_type(run.graph)
    accepted = set(context_fields(kind))
    values: dict[str, Any] = {}
    for name, value in run.context.items():
        if name not in accepted:
            continue
        if isinstance(value, str):
            variable = env_name(name)
            full = restored(value, os.environ.get(variable))
            if full is None:
                raise ContextError(
                    f"{name}: the run used {value!r}, whose password pdr does not store; set "
                    f"{variable} to the full value (with the password) to resume it"
                )
            value = full
        values[name] = value
    return kind(**values)
