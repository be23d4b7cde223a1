"""Model specs to backends: one cached backend per spec string, and a place to register your own."""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel

from pdr.models.base import BackendError, ChatBackend
from pdr.models.langchain_backend import LangChainBackend

_registered: dict[str, ChatBackend] = {}
_cache: dict[str, ChatBackend] = {}


def register_model(name: str, model: BaseChatModel | ChatBackend) -> None:
    """Make ``name`` usable as a model spec in any run context (``model=name``).

    Accepts a LangChain chat model (usage read from ``usage_metadata``) or a ChatBackend.
    """
    backend = model if isinstance(model, ChatBackend) else LangChainBackend(name, model)
    backend.spec = name
    _registered[name] = backend
    _cache.pop(name, None)


def unregister_model(name: str) -> None:
    """Forget a registered model."""
    _registered.pop(name, None)
    _cache.pop(name, None)


def get_backend(spec: str) -> ChatBackend:
    """The backend for ``spec``, built once per process and then reused."""
    if spec in _registered:
        return _registered[spec]
    backend = _cache.get(spec)
    if backend is None:
        backend = build_backend(spec)
        _cache[spec] = backend
    return backend


def build_backend(spec: str) -> ChatBackend:
    """Construct a backend from a spec string; raises BackendError naming the fix."""
    from pdr.models.specs import backend_from_spec

    try:
        return backend_from_spec(spec)
    except BackendError:
        raise
    except Exception as error:
        raise BackendError(f"model {spec!r}: {error}") from error
