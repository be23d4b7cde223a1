"""Parse a model spec string into a backend.

Accepted forms (``context.model`` and the per-role models are one such string):

- ``embedded``: Qwen2.5-Coder-1.5B-Instruct Q4_K_M run by llama.cpp on the CPU (offline default);
  ``embedded:fast``: Qwen2.5-Coder-0.5B-Instruct (the ``fast`` extra).
- a path to a ``.gguf`` file, or ``llamacpp:/path/to/model.gguf``: any GGUF model, by llama.cpp.
- ``openai:MODEL`` (e.g. ``openai:o3-mini``), key in ``OPENAI_API_KEY``.
- ``google_genai:MODEL`` (e.g. ``google_genai:gemini-2.5-flash``), key in ``GOOGLE_API_KEY``.
- ``vllm:MODEL@http://host:port/v1``: an OpenAI-compatible server (``vllm serve``, or
  ``python -m llama_cpp.server``); optional key in ``VLLM_API_KEY``.
  ``vllm:MODEL@http://host1:8000/v1,http://host2:8000/v1``: replicas of one model, each call on
  the least busy one, failing over to another (``pdr.models.replicas``).
- ``vllm-engine:MODEL``: an in-process ``vllm.LLM`` on this machine's GPU (the ``vllm`` extra).
- ``transformers:SOURCE``: a Hugging Face transformers model in this process (the ``train`` extra):
  a ``save_pretrained`` folder (what ``pdr train`` writes), a ``.gguf`` file, or ``embedded:fast``.
- any other ``provider:model`` that LangChain's ``init_chat_model`` knows (e.g. ``anthropic:...``
  with its integration package installed), one sample per call.
"""

from __future__ import annotations

import re

from langchain.chat_models import init_chat_model

from pdr.models.base import BackendError, ChatBackend
from pdr.models.langchain_backend import LangChainBackend
from pdr.redact import redact

ACCEPTED_FORMS = (
    "'embedded' (offline default, Qwen2.5-Coder-1.5B on llama.cpp), 'embedded:fast' (0.5B), "
    "a path to a .gguf file or 'llamacpp:/path/model.gguf', 'openai:MODEL' (e.g. "
    "'openai:o3-mini'), 'google_genai:MODEL' (e.g. 'google_genai:gemini-2.5-flash'), "
    "'vllm:MODEL@http://host:port/v1' (OpenAI-compatible server; replicas: "
    "'vllm:MODEL@http://h1:8000/v1,http://h2:8000/v1'), 'vllm-engine:MODEL' "
    "(in-process vLLM on a GPU), 'transformers:FOLDER_OR_GGUF' (transformers in this process, "
    "e.g. a folder pdr train wrote, or 'transformers:embedded:fast'), or another "
    "'provider:model' known to init_chat_model"
)

_SERVER = re.compile(r"^(?P<model>[^@]+)@(?P<url>https?://.+)$", re.DOTALL)


def backend_from_spec(spec: str) -> ChatBackend:
    """Build the backend a spec names (see the module docstring for the forms).

    Building a backend makes no call and, for local models, no file access: a missing GGUF file
    or model package is reported by the first call.

    Raises:
        BackendError: unknown form, missing API key (names the variable), missing integration
            package; the message says how to fix it.
    """
    text = spec.strip()
    if text == "embedded" or text.startswith("embedded:"):
        from pdr.models.embedded import embedded_model, ensure_model_file
        from pdr.models.llama import LlamaBackend

        name = embedded_model(text.partition(":")[2] or "default").name
        # Assembled and verified on first use, in a worker thread (no blocking on the loop).
        return LlamaBackend(spec, lambda: ensure_model_file(name))
    if text.startswith("llamacpp:") or text.lower().endswith(".gguf"):
        from pdr.models.llama import LlamaBackend

        return LlamaBackend(spec, text.removeprefix("llamacpp:"))
    provider, _, rest = text.partition(":")
    if not rest:
        raise BackendError(f"model {spec!r}: not a model spec; use one of: {ACCEPTED_FORMS}")
    if provider == "openai":
        from pdr.models.providers import OpenAIBackend

        return OpenAIBackend(spec, rest)
    if provider == "google_genai":
        from pdr.models.providers import GeminiBackend

        return GeminiBackend(spec, rest)
    if provider == "vllm":
        found = _SERVER.match(rest)
        if not found:
            raise BackendError(
                f"model {redact(spec)!r}: a server spec is 'vllm:MODEL@http://host:port/v1' "
                f"(several replicas: separate their base URLs with commas), e.g. "
                f"'vllm:Qwen/Qwen3-8B@http://localhost:8000/v1'"
            )
        from pdr.models.replicas import parse_replicas, replica_pool

        urls = parse_replicas(spec, found["url"])
        if len(urls) > 1:
            return replica_pool(spec, found["model"], urls)
        from pdr.models.providers import OpenAICompatibleBackend

        return OpenAICompatibleBackend(spec, found["model"], urls[0])
    if provider == "transformers":
        from pdr.models.transformers_backend import TransformersBackend

        return TransformersBackend(spec, rest)
    if provider == "vllm-engine":
        from pdr.models.vllm_engine import VLLMEngineBackend

        return VLLMEngineBackend(spec, rest)
    try:
        model = init_chat_model(text)
    except ValueError as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0].rstrip(".")
        raise BackendError(f"model {spec!r}: {reason}; use one of: {ACCEPTED_FORMS}") from error
    except ImportError as error:
        raise BackendError(
            f"model {spec!r}: the LangChain integration for {provider!r} is not installed "
            f"({error}); install it, or use one of: {ACCEPTED_FORMS}"
        ) from error
    return LangChainBackend(spec, model)
