"""Provider errors sorted into those worth retrying and those not, in messages that say why.

``classify_error`` turns an exception from a provider's client into ``TransientBackendError`` (a
time-out, a dropped connection, a rate limit, a 5xx, a reply that is not JSON or has no choices;
with the server's ``Retry-After`` when it sent one) or ``BackendError`` (a bad request, a bad key),
each naming the model (its URL's password redacted) and quoting what the server sent, and each
saying whether the request reached the model (what the failed attempt then costs).
"""

from __future__ import annotations

import email.utils
import json
import time

import httpx
import openai
from langchain_core.exceptions import ModelError

from pdr.models.base import BackendError, TransientBackendError
from pdr.redact import redact

# Transport failures before the request was sent (nothing reached the model) and after it was
# (the model may have been working on it: its prompt counts).
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.WriteError)
_AFTER_SENDING = (
    httpx.ReadTimeout,
    httpx.ReadError,
    httpx.RemoteProtocolError,
    openai.APITimeoutError,
)


def _transport_reached(error: BaseException) -> bool:
    """Whether a connection-level failure happened after the request was sent (by its cause)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, _NOT_SENT):
            return False
        if isinstance(seen, _AFTER_SENDING):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class EmptyReplyError(ValueError):
    """A server answered with no choices at all (worth retrying: a server hiccup)."""


def retry_after(error: Exception) -> float | None:
    """Seconds the server asked to wait (``Retry-After``/``retry-after-ms``), if it said."""
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def classify_error(spec: str, error: Exception) -> Exception:
    """TransientBackendError for errors worth retrying, BackendError for the rest.

    Each says whether the request reached the model (``ModelCallError.reached_model``), which
    decides what the failed attempt costs: a time-out after sending, a 5xx or a reply that is not
    JSON or has no choices did; a refused connection, a 429 or a rejected (4xx) request did not.
    A reply that is not JSON, or has no choices, is a server hiccup (transient); the message
    quotes what the server sent. A server's ``Retry-After`` travels with the error. Messages name
    the model with its URL's password redacted. Errors that are neither a provider nor a transport
    error are returned unchanged.
    """
    shown = redact(spec)
    if isinstance(error, json.JSONDecodeError):
        return TransientBackendError(
            f"model {shown!r}: the server sent a reply that is not JSON ({error.msg} at "
            f"character {error.pos}): {redact(error.doc[:200])!r}",
            reached_model=True,
        )
    if isinstance(error, EmptyReplyError):
        return TransientBackendError(f"model {shown!r}: {redact(str(error))}", reached_model=True)
    described = f"model {shown!r}: {type(error).__name__}: {redact(str(error))}"
    wait = retry_after(error)
    if isinstance(error, openai.APIConnectionError | httpx.TransportError):
        return TransientBackendError(described, wait, reached_model=_transport_reached(error))
    if isinstance(error, openai.RateLimitError):
        return TransientBackendError(described, wait, reached_model=False)
    if isinstance(error, openai.InternalServerError | openai.APIResponseValidationError):
        return TransientBackendError(described, wait, reached_model=True)
    if isinstance(error, ModelError) and error.is_retryable:
        return TransientBackendError(described, wait)
    if isinstance(error, openai.APIStatusError | ModelError):
        return BackendError(described, reached_model=False)
    try:
        from google.genai import errors as genai_errors
    except ImportError:
        return error
    if isinstance(error, genai_errors.ServerError):
        return TransientBackendError(described, reached_model=True)
    if isinstance(error, genai_errors.ClientError) and error.code == 429:
        return TransientBackendError(described, reached_model=False)
    if isinstance(error, genai_errors.APIError):
        return BackendError(described, reached_model=False)
    return error
