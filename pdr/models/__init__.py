"""Model backends: the embedded local model, LangChain providers, vLLM; all with exact usage."""

from pdr.models.base import (
    BackendError,
    ChatBackend,
    Generation,
    Message,
    ModelCallError,
    NoTextError,
    SampledTokens,
    SamplingOptions,
    TransientBackendError,
    prompt_text,
    reached_model,
    split_output,
    truncate_to_tokens,
)
from pdr.models.registry import get_backend, register_model, unregister_model

__all__ = [
    "BackendError",
    "ChatBackend",
    "Generation",
    "Message",
    "ModelCallError",
    "NoTextError",
    "SampledTokens",
    "SamplingOptions",
    "TransientBackendError",
    "get_backend",
    "prompt_text",
    "reached_model",
    "register_model",
    "split_output",
    "truncate_to_tokens",
    "unregister_model",
]
