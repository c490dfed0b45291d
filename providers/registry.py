"""Provider kinds: the catalogue's ``kind`` -> how to build its client and its adapters.

A new provider kind is one module implementing :class:`~providers.base.Adapter` (and, if it has a batch API,
:class:`~providers.base.NativeBatchApi`) plus one line in :data:`KINDS`; the catalogue lists the batch endpoints
each kind serves (``broker.catalogue.KINDS_ENDPOINTS``). Nothing outside this module branches on a kind.
"""

from collections.abc import Callable
from dataclasses import dataclass

import httpx

from broker.catalogue import KINDS_ENDPOINTS, ProviderConfig
from providers.anthropic import make_anthropic_client
from providers.anthropic_batch import AnthropicBatchClient
from providers.anthropic_stream import AnthropicStreamingMessages
from providers.base import NativeBatchApi, make_client
from providers.openai import OpenAICompatible
from providers.openai_batch import NativeBatchClient
from providers.sse import StreamingAdapter


@dataclass(frozen=True, slots=True)
class ProviderKind:
    client: Callable[[ProviderConfig], httpx.AsyncClient]  #: a pooled client with the kind's auth headers
    realtime: Callable[[httpx.AsyncClient], StreamingAdapter]  #: one call at a time, OpenAI format in and out
    native_batch: Callable[[httpx.AsyncClient], NativeBatchApi]  #: the kind's batch API


KINDS: dict[str, ProviderKind] = {
    "openai": ProviderKind(make_client, OpenAICompatible, NativeBatchClient),
    "anthropic": ProviderKind(make_anthropic_client, AnthropicStreamingMessages, AnthropicBatchClient),
}
assert KINDS.keys() == KINDS_ENDPOINTS.keys(), "every kind the catalogue accepts has adapters, and no other"


def kind_of(provider: ProviderConfig) -> ProviderKind:
    return KINDS[provider.kind]
