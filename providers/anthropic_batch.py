"""Adapter for Anthropic's Message Batches API, with the interface of ``NativeBatchClient`` (openai_batch.py).

:class:`AnthropicBatchClient` sends OpenAI chat lines translated by
:func:`~providers.anthropic.chat_to_messages` inline to ``POST messages/batches`` (:meth:`submit`),
reads the batch as a :class:`RemoteBatch` (:meth:`poll`), streams its JSONL results back into
:class:`LineResult` objects whose bodies are OpenAI ``chat.completion`` objects or error envelopes
(:meth:`results`), and cancels it (:meth:`cancel`). It talks through the client of
:func:`~providers.anthropic.make_anthropic_client`; failed calls raise as the real-time adapter does.

Decisions:

- **Status.** ``in_progress`` -> ``in_progress``, ``canceling`` -> ``cancelling``; ``ended`` -> ``cancelled`` if a
  cancel was initiated, else ``expired`` if any request expired, else ``completed`` (OpenAI's words for the
  same situations). Counts: completed = succeeded, failed = errored + canceled + expired, total = all of them
  plus those still processing.
- **Lines that cannot be sent** (a translation refused with a 400, or a custom_id that cannot be carried, see
  :func:`remote_custom_id`) are left out of the remote batch, so they do not sink it, and :meth:`results`
  reports them as 400 lines with the same body the real-time adapter would give. They are remembered by this
  client instance only: collected from another process they are simply absent from the results, which the
  contract already reads as "not run", and running them in real time fails them with that same 400. If no
  line at all can be sent, :meth:`submit` raises that 400 as :class:`TerminalUpstream`.
- **custom_id.** Anthropic accepts 1-64 characters of ``A-Za-z0-9_-``; other ids travel base64url-encoded
  behind :data:`ENCODED_PREFIX` (stateless, so any process can map results back).
- **Errors** of an errored request get the HTTP status of their type (:data:`ERROR_STATUSES`) and OpenAI's
  envelope as body; ``canceled`` and ``expired`` requests come back with ``error_code`` ``batch_cancelled`` and
  ``batch_expired`` (the latter retryable). A 529 ``overloaded_error`` line is retryable too.
- **Files.** Anthropic takes requests inline and has no files: :meth:`delete_file` does nothing (results
  expire at Anthropic on their own) and :meth:`upload` is refused with a :class:`TerminalUpstream` 400.
  ``completion_window`` and ``metadata`` are not carried (Anthropic's window is 24 h).
"""

import base64
import binascii
import datetime as dt
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import orjson

from broker.errors import RetryableUpstream, TerminalUpstream
from providers.anthropic import (
    CHAT_ENDPOINT,
    OVERLOADED,
    chat_to_messages,
    message_to_chat,
    openai_error,
    raise_for_status,
    refused,
)
from providers.base import (
    BATCH_EXPIRED,
    DEFAULT_COMPLETION_WINDOW,
    DEFAULT_TRANSFER_TIMEOUT,
    BatchLine,
    LineResult,
    RemoteBatch,
    usage_of,
)
from providers.http import request_json, stream_lines

BATCH_CANCELLED = "batch_cancelled"  #: error code of a request left unrun because its batch was cancelled
ENCODED_PREFIX = "b64-"  #: marks a custom_id sent base64url-encoded (ids starting with it are encoded too)
MAX_CUSTOM_ID = 64  #: characters of a custom_id Anthropic accepts
_CUSTOM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
ERROR_STATUSES: dict[str, int] = {
    "invalid_request_error": 400, "authentication_error": 401, "billing_error": 402, "permission_error": 403,
    "not_found_error": 404, "request_too_large": 413, "rate_limit_error": 429, "api_error": 500,
    "timeout_error": 504, "overloaded_error": OVERLOADED,
}  #: HTTP status of each Anthropic error type (an unknown type counts as 500)
_STATUSES = {"in_progress": "in_progress", "canceling": "cancelling"}
_UNRUN = {"canceled": (BATCH_CANCELLED, "This request was not executed because the batch was cancelled."),
          "expired": (BATCH_EXPIRED, "This request could not be executed before the batch expired.")}


def remote_custom_id(custom_id: str) -> str | None:
    """The id Anthropic gets for ``custom_id``: itself when Anthropic accepts it, else :data:`ENCODED_PREFIX`
    + its base64url UTF-8 (which fits ids of up to 45 bytes); None when it cannot be carried."""
    if _CUSTOM_ID.fullmatch(custom_id) and not custom_id.startswith(ENCODED_PREFIX):
        return custom_id
    encoded = ENCODED_PREFIX + base64.urlsafe_b64encode(custom_id.encode()).decode().rstrip("=")
    return encoded if len(encoded) <= MAX_CUSTOM_ID else None


def local_custom_id(remote_id: str) -> str:
    """The inverse of :func:`remote_custom_id`."""
    if not remote_id.startswith(ENCODED_PREFIX):
        return remote_id
    data = remote_id[len(ENCODED_PREFIX):]
    try:
        return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        return remote_id


def batch_requests(lines: Sequence[BatchLine], endpoint: str) -> tuple[list[dict[str, Any]], dict[str, LineResult]]:
    """The ``requests`` of a Message Batch for ``lines``, and a 400 result for each line that cannot be sent.

    Raises ValueError if a line's url is not ``endpoint``.
    """
    requests: list[dict[str, Any]] = []
    rejected: dict[str, LineResult] = {}
    for custom_id, url, body in lines:
        if url != endpoint:
            raise ValueError(f"line {custom_id!r} targets {url!r}, not the batch endpoint {endpoint!r}")
        remote_id = remote_custom_id(custom_id)
        try:
            if remote_id is None:
                raise refused(f"custom_id {custom_id[:80]!r} is too long for Anthropic's Message Batches "
                              "(at most 64 characters of A-Z, a-z, 0-9, _ and -, or 45 bytes of other text).",
                              "custom_id", "invalid_value")
            requests.append({"custom_id": remote_id, "params": chat_to_messages(body)})
        except TerminalUpstream as exc:
            rejected[custom_id] = LineResult(custom_id, status_code=exc.status, body=exc.body)
    return requests, rejected


def remote_batch(data: dict[str, Any], rejected: int = 0) -> RemoteBatch:
    """A Message Batch object as a :class:`RemoteBatch` (``rejected``: lines left out at submission, counted
    as failed)."""
    counts = data.get("request_counts") or {}
    succeeded, errored, canceled, expired, processing = (
        int(counts.get(name) or 0) for name in ("succeeded", "errored", "canceled", "expired", "processing"))
    state = str(data.get("processing_status"))
    if state != "ended":
        status = _STATUSES.get(state, "in_progress")
    elif data.get("cancel_initiated_at"):
        status = "cancelled"
    else:
        status = "expired" if expired else "completed"
    failed = errored + canceled + expired + rejected
    return RemoteBatch(id=str(data["id"]), status=status, total=processing + succeeded + failed,
                       completed=succeeded, failed=failed, created_at=_unix(data.get("created_at")),
                       expires_at=_unix(data.get("expires_at")))


def _unix(value: Any) -> int | None:
    try:
        return int(dt.datetime.fromisoformat(value).timestamp()) if isinstance(value, str) else None
    except ValueError:
        return None


def parse_result(text: str) -> LineResult:
    """One line of a Message Batch's results as a :class:`LineResult` (succeeded bodies translated)."""
    try:
        data = orjson.loads(text)
        custom_id, result = local_custom_id(str(data["custom_id"])), data["result"]
        kind = result["type"]
    except (orjson.JSONDecodeError, TypeError, KeyError) as exc:
        raise RetryableUpstream("Upstream results have a line that is not a result",
                                code="upstream_invalid_response") from exc
    if kind == "succeeded" and isinstance(result.get("message"), dict):
        chat = message_to_chat(result["message"])
        usage = usage_of(chat)
        return LineResult(custom_id, status_code=200, body=orjson.dumps(chat).decode(),
                          input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)
    if kind == "errored":
        error = result.get("error") if isinstance(result.get("error"), dict) else {}
        envelope = openai_error(error)
        request_id = error.get("request_id")
        return LineResult(custom_id, status_code=ERROR_STATUSES.get(envelope["error"]["type"], 500),
                          body=orjson.dumps(envelope).decode(),
                          request_id=request_id if isinstance(request_id, str) else None)
    if kind in _UNRUN:
        code, message = _UNRUN[kind]
        return LineResult(custom_id, error_code=code, error_message=message)
    raise RetryableUpstream(f"Upstream results have a line of unknown type {kind!r}",
                            code="upstream_invalid_response")


class AnthropicBatchClient:
    """Anthropic's Message Batches API over ``client`` (from
    :func:`~providers.anthropic.make_anthropic_client`); the interface of ``NativeBatchClient``."""

    def __init__(self, client: httpx.AsyncClient, *,
                 transfer_timeout: httpx.Timeout = DEFAULT_TRANSFER_TIMEOUT) -> None:
        self.client = client
        self.transfer_timeout = transfer_timeout
        self._rejected: dict[str, dict[str, LineResult]] = {}
        """Per remote batch id: the lines left out at submission, until :meth:`results` reports them."""

    async def submit(
        self,
        lines: Sequence[BatchLine],
        endpoint: str,
        completion_window: str = DEFAULT_COMPLETION_WINDOW,
        metadata: dict[str, str] | None = None,
    ) -> str:
        """Create a Message Batch of ``lines`` (translated); returns the remote batch id.

        Lines that cannot be sent are left out and reported by :meth:`results`; if none can be sent, or
        ``endpoint`` is not chat completions, raises :class:`TerminalUpstream` (400). Raises ValueError if
        ``lines`` is empty or a line's url is not ``endpoint``. ``completion_window`` and ``metadata`` are
        not carried.
        """
        if not lines:
            raise ValueError("a batch needs at least one line")
        if endpoint != CHAT_ENDPOINT:
            raise refused(f"Anthropic providers serve {CHAT_ENDPOINT} only, not {endpoint}.", None,
                          "unsupported_endpoint")
        requests, rejected = batch_requests(lines, endpoint)
        if not requests:
            first = next(iter(rejected.values()))
            raise TerminalUpstream("No line of the batch can be sent to Anthropic", code="unsupported_parameter",
                                   status=first.status_code, body=first.body)
        created = await self._json("POST", "messages/batches", json={"requests": requests},
                                   timeout=self.transfer_timeout)
        remote_id = str(created["id"])
        if rejected:
            self._rejected[remote_id] = rejected
        return remote_id

    async def upload(self, content: bytes, filename: str = "batch_input.jsonl") -> str:
        """Refused: Anthropic's Message Batches take their requests inline, there is no file to upload."""
        raise refused("Anthropic's Message Batches API has no file upload; requests are sent inline by submit().",
                      None, "unsupported_operation")

    async def poll(self, remote_id: str) -> RemoteBatch:
        """The batch's current state."""
        return remote_batch(await self._json("GET", f"messages/batches/{remote_id}"), self._rejected_count(remote_id))

    async def cancel(self, remote_id: str) -> RemoteBatch:
        """Ask Anthropic to cancel the batch (``cancelling``, then ``cancelled``; finished requests are kept).
        A batch that has already ended answers 4xx: :class:`TerminalUpstream`."""
        data = await self._json("POST", f"messages/batches/{remote_id}/cancel")
        return remote_batch(data, self._rejected_count(remote_id))

    async def results(self, remote: RemoteBatch) -> dict[str, LineResult]:
        """Stream the batch's results and map each line by ``custom_id`` (call it once the batch has ended;
        before, Anthropic refuses with a 4xx). Lines left out at submission are included (see the module)."""
        found: dict[str, LineResult] = dict(self._rejected.get(remote.id, {}))
        async for result in self._result_lines(remote.id):
            found[result.custom_id] = result
        self._rejected.pop(remote.id, None)
        return found

    async def delete_file(self, file_id: str) -> None:
        """Nothing to do: Anthropic's batches have no files (their results expire at Anthropic on their own)."""

    def _rejected_count(self, remote_id: str) -> int:
        return len(self._rejected.get(remote_id, ()))

    def _result_lines(self, remote_id: str) -> AsyncIterator[LineResult]:
        return stream_lines(self.client, f"messages/batches/{remote_id}/results", raise_for_status, parse_result,
                            timeout=self.transfer_timeout)

    async def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return await request_json(self.client, method, path, raise_for_status, keys=("id",), what="a Message Batch",
                                  **kwargs)
