"""Real-time adapter for any OpenAI-compatible upstream (OpenAI, Mistral, vLLM, Ollama, OpenRouter, LiteLLM).

Its client is :func:`~providers.base.make_client` as it is (``Authorization: Bearer`` with the provider's key).
"""

import httpx

from providers.answers import parse_answer
from providers.base import UpstreamResponse, raise_for_status
from providers.http import int_header, post_json
from providers.sse import Relay, open_events


class OpenAICompatible:
    """Posts one request body to an endpoint and sorts the answer into success, retryable or terminal."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def post(self, endpoint: str, body: bytes) -> UpstreamResponse:
        resp = await post_json(self.client, endpoint.removeprefix("/v1/"), body, raise_for_status)
        parsed = parse_answer(endpoint, resp.content, resp.status_code)
        limits = (int_header(resp.headers, "x-ratelimit-limit-requests"),
                  int_header(resp.headers, "x-ratelimit-limit-tokens"))
        # parsed: the body is UTF-8 (orjson takes nothing else), so no charset sniffing as ``resp.text`` does
        return UpstreamResponse(resp.status_code, resp.content, parsed, resp.headers.get("x-request-id"),
                                limits)

    async def open_stream(self, endpoint: str, body: bytes) -> httpx.Response:
        """The upstream's streamed answer, its status checked; the caller reads and closes it."""
        return await open_events(self.client, endpoint.removeprefix("/v1/"), body, raise_for_status)

    def relay(self, include_usage: bool) -> Relay:
        """The upstream's events relayed as they are (it speaks OpenAI's)."""
        return Relay(include_usage)
