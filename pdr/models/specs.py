"""Parse a model spec string into a backend."""

from __future__ import annotations

from langchain.chat_models import init_chat_model

from pdr.models.base import ChatBackend
from pdr.models.langchain_backend import LangChainBackend


def backend_from_spec(spec: str) -> ChatBackend:
    """Build the backend a spec names; any ``provider:model`` string LangChain knows works."""
    return LangChainBackend(spec, init_chat_model(spec))
