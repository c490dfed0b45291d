"""Adapter for an OpenAI-compatible provider's native batch API (Files + Batches).

:class:`NativeBatchClient` uploads lines as a JSONL input file and creates a remote batch (:meth:`submit`),
reads its state (:meth:`poll`), downloads its output and error files and maps every line back to its
``custom_id`` (:meth:`results`), and cancels it (:meth:`cancel`). It talks through the pooled
``httpx.AsyncClient`` of :func:`providers.base.make_client`, so the base URL, key and default
timeouts are the provider's; file transfers get the longer :data:`~providers.base.DEFAULT_TRANSFER_TIMEOUT`.

Failed calls raise like the real-time adapter: :class:`~broker.errors.RetryableUpstream` for timeouts,
dropped connections, 429 and 5xx (with ``delay`` from ``Retry-After``), :class:`~broker.errors.TerminalUpstream`
for any other 4xx. Prices and discounts are the catalogue's business, not this module's.
"""

from collections.abc import AsyncIterator, Sequence
from contextlib import suppress
from typing import Any

import httpx
import orjson

from broker.errors import RetryableUpstream, UpstreamError
from broker.pricing import Usage
from providers.base import (
    DEFAULT_COMPLETION_WINDOW,
    DEFAULT_TRANSFER_TIMEOUT,
    BatchLine,
    LineResult,
    RemoteBatch,
    raise_for_status,
    usage_of,
)
from providers.http import request_json, stream_lines


class NativeBatchClient:
    """A provider's native batch API over ``client`` (from :func:`~providers.openai.make_client`)."""

    def __init__(self, client: httpx.AsyncClient, *,
                 transfer_timeout: httpx.Timeout = DEFAULT_TRANSFER_TIMEOUT) -> None:
        self.client = client
        self.transfer_timeout = transfer_timeout

    async def submit(
        self,
        lines: Sequence[BatchLine],
        endpoint: str,
        completion_window: str = DEFAULT_COMPLETION_WINDOW,
        metadata: dict[str, str] | None = None,
    ) -> str:
        """Upload ``lines`` as a JSONL input file and create a batch over it; returns the remote batch id.

        If creating the batch fails, the uploaded file is deleted (best effort) and the error re-raised.
        Raises ValueError if ``lines`` is empty or a line's url is not ``endpoint``.
        """
        if not lines:
            raise ValueError("a batch needs at least one line")
        file_id = await self.upload(encode_lines(lines, endpoint))
        request: dict[str, Any] = {"input_file_id": file_id, "endpoint": endpoint,
                                   "completion_window": completion_window}
        if metadata:
            request["metadata"] = metadata
        try:
            created = await self._json("POST", "batches", json=request)
        except UpstreamError:
            with suppress(UpstreamError):
                await self.delete_file(file_id)
            raise
        return str(created["id"])

    async def upload(self, content: bytes, filename: str = "batch_input.jsonl") -> str:
        """Upload a JSONL input file (purpose ``batch``); returns its file id."""
        uploaded = await self._json("POST", "files", data={"purpose": "batch"},
                                    files={"file": (filename, content, "application/jsonl")},
                                    timeout=self.transfer_timeout)
        return str(uploaded["id"])

    async def poll(self, remote_id: str) -> RemoteBatch:
        """The batch's current state."""
        return RemoteBatch.from_json(await self._json("GET", f"batches/{remote_id}"))

    async def cancel(self, remote_id: str) -> RemoteBatch:
        """Ask the provider to cancel the batch (it goes ``cancelling``, then ``cancelled``; finished lines
        are kept). A batch that has already ended answers 4xx: :class:`TerminalUpstream`."""
        return RemoteBatch.from_json(await self._json("POST", f"batches/{remote_id}/cancel"))

    async def results(self, remote: RemoteBatch) -> dict[str, LineResult]:
        """Download the batch's error and output files and map each line by ``custom_id``.

        Call it on a terminal batch (earlier, the files may be missing or partial). A submitted custom_id
        absent from the answer was not reported by the provider (e.g. a cancelled batch's unrun lines).
        """
        found: dict[str, LineResult] = {}
        for file_id in (remote.error_file_id, remote.output_file_id):  # output last: a success wins
            if file_id:
                async for result in self._result_lines(file_id):
                    found[result.custom_id] = result
        return found

    async def delete_file(self, file_id: str) -> None:
        """Delete a file at the provider (input, output or error file)."""
        await self._json("DELETE", f"files/{file_id}")

    def _result_lines(self, file_id: str) -> AsyncIterator[LineResult]:
        return stream_lines(self.client, f"files/{file_id}/content", raise_for_status, parse_result_line,
                            timeout=self.transfer_timeout)

    async def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return await request_json(self.client, method, path, raise_for_status, **kwargs)


def encode_lines(lines: Sequence[BatchLine], endpoint: str) -> bytes:
    """The JSONL input file for ``lines``: ``{"custom_id","method":"POST","url","body"}`` per line."""
    out = bytearray()
    for custom_id, url, body in lines:
        if url != endpoint:
            raise ValueError(f"line {custom_id!r} targets {url!r}, not the batch endpoint {endpoint!r}")
        out += orjson.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": body})
        out += b"\n"
    return bytes(out)


def parse_result_line(text: str) -> LineResult:
    """One output/error file line (``{"id","custom_id","response","error"}``) as a :class:`LineResult`."""
    try:
        data = orjson.loads(text)
        custom_id = data["custom_id"]
    except (orjson.JSONDecodeError, TypeError, KeyError) as exc:
        raise RetryableUpstream("Upstream result file has a line that is not a result",
                                code="upstream_invalid_response") from exc
    response = data.get("response") if isinstance(data.get("response"), dict) else None
    error = data.get("error") if isinstance(data.get("error"), dict) else None
    status = body = request_id = None
    usage = Usage()
    if response is not None:
        status, request_id = response.get("status_code"), response.get("request_id")
        payload = response.get("body")
        body = orjson.dumps(payload).decode() if isinstance(payload, dict) else None
        if isinstance(payload, dict) and error is None and isinstance(status, int) and status < 400:
            usage = usage_of(payload)
    return LineResult(
        custom_id=str(custom_id), status_code=status if isinstance(status, int) else None, body=body,
        request_id=request_id if isinstance(request_id, str) else None,
        error_code=None if error is None else str(error.get("code") or "upstream_error"),
        error_message=None if error is None else str(error.get("message") or ""),
        input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
    )

