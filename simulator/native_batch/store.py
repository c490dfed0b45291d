"""In-memory files and native batches, whose state is computed lazily from elapsed time at each read.

A valid batch is ``in_progress`` from its creation; line ``i`` of ``n`` is due ``turnaround * (i + 1) / n``
seconds later and runs at the first read after that. When every line is due the batch is ``completed``
(its ``finalizing_at`` and ``completed_at`` are that moment), unless it reached its expiry first
(``expired``: lines due by then are kept, the rest fail with ``batch_expired``) or was cancelled
(``cancelled``: lines due at the cancel are kept, the rest fail with ``batch_cancelled``). No task and no
timer: reading is what moves a batch forward, so the outcome depends on the clock only.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from simulator.native_batch.lines import (
    InputLine,
    LineProblem,
    LineRun,
    RunSettings,
    parse_input,
    result_line,
    run_line,
)
from simulator.stats import SimulatorStats

DEFAULT_WINDOW_SECONDS = 86_400  #: ``expires_at`` of a batch without a configured expiry: the 24 h window
TERMINAL_STATUSES = frozenset({"failed", "completed", "expired", "cancelled"})
"""Statuses a batch never leaves."""
_DUE_SLACK = 1e-9  #: a line due exactly at the expiry or cancel counts as run despite float rounding
_END_ERRORS = {
    "expired": ("batch_expired", "This request could not be executed before the completion window expired."),
    "cancelled": ("batch_cancelled", "This request was not executed because the batch was cancelled."),
}


@dataclass(slots=True)
class StoredFile:
    """A file kept in memory: an uploaded input, or a batch's output or error file."""

    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int

    def to_dict(self) -> dict[str, Any]:
        """OpenAI's FileObject."""
        return {"id": self.id, "object": "file", "bytes": len(self.content), "created_at": self.created_at,
                "filename": self.filename, "purpose": self.purpose, "status": "processed", "expires_at": None,
                "status_details": None}


@dataclass(slots=True)
class NativeBatch:
    """One batch and what has run of it so far."""

    id: str
    endpoint: str
    input_file_id: str
    completion_window: str
    metadata: dict[str, str] | None
    created_at: float
    lines: list[InputLine]
    problems: list[LineProblem]
    turnaround: float
    expire_after: float | None
    settings: RunSettings
    rng: random.Random
    runs: list[LineRun] = field(default_factory=list)
    cancelling_at: float | None = None
    status: str = "in_progress"
    ended_at: float | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None

    @property
    def model(self) -> str | None:
        model = self.lines[0].body.get("model") if self.lines else None
        return model if isinstance(model, str) else None

    def due(self, at: float) -> int:
        """How many lines are due to have run by ``at``."""
        n = len(self.lines)
        if self.turnaround <= 0:
            return n
        return max(0, min(n, int((at - self.created_at) * n / self.turnaround + _DUE_SLACK)))

    def to_dict(self, *, creating: bool = False) -> dict[str, Any]:
        """OpenAI's Batch object (``creating``: as the create call answers it, still ``validating``)."""
        failed = self.status == "failed"
        expires = self.expire_after if self.expire_after is not None else DEFAULT_WINDOW_SECONDS
        ok = [run for run in self.runs if run.ok]
        input_tokens = sum(run.prompt_tokens for run in ok)
        output_tokens = sum(run.completion_tokens for run in ok)
        ended = _stamp(self.ended_at)
        total = 0 if failed else len(self.lines)
        completed = len(ok)
        lost = total - len(self.runs) if self.status in _END_ERRORS else 0
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "model": self.model,
            "errors": {"object": "list", "data": [p.to_dict() for p in self.problems]} if failed else None,
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": "validating" if creating else self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": int(self.created_at),
            "in_progress_at": None if creating or failed else int(self.created_at),
            "expires_at": int(self.created_at + expires),
            "finalizing_at": ended if self.status == "completed" else None,
            "completed_at": ended if self.status == "completed" else None,
            "failed_at": ended if failed else None,
            "expired_at": ended if self.status == "expired" else None,
            "cancelling_at": _stamp(self.cancelling_at),
            "cancelled_at": ended if self.status == "cancelled" else None,
            "request_counts": {"total": total, "completed": completed,
                               "failed": len(self.runs) - completed + lost},
            "usage": {"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
                      "total_tokens": input_tokens + output_tokens},
            "metadata": self.metadata,
        }


def _stamp(value: float | None) -> int | None:
    return None if value is None else int(value)


class NativeBatchStore:
    """Files and batches of the simulator's native batch API, in memory, advanced on read."""

    def __init__(self, stats: SimulatorStats, clock: Callable[[], float] = time.time) -> None:
        self.stats = stats
        self.clock = clock
        self.files: dict[str, StoredFile] = {}
        self.batches: dict[str, NativeBatch] = {}
        self._created = 0

    def add_file(self, filename: str, purpose: str, content: bytes) -> StoredFile:
        """Keep a file and return it."""
        stored = StoredFile(f"file-{secrets.token_hex(12)}", filename, purpose, content, int(self.clock()))
        self.files[stored.id] = stored
        return stored

    def create_batch(
        self,
        source: StoredFile,
        endpoint: str,
        completion_window: str,
        metadata: dict[str, str] | None,
        *,
        turnaround: float,
        expire_after: float | None,
        settings: RunSettings,
        seed: int,
    ) -> NativeBatch:
        """Validate ``source`` and start a batch over it (``failed`` at once if any line is invalid).

        Injected failures are drawn from a generator seeded by ``seed`` and the batch's sequence number, so
        a batch resubmitted after a failure draws afresh while runs from a fresh simulator repeat exactly.
        """
        lines, problems = parse_input(source.content, endpoint)
        self._created += 1
        batch = NativeBatch(
            id=f"batch_{secrets.token_hex(12)}", endpoint=endpoint, input_file_id=source.id,
            completion_window=completion_window, metadata=metadata, created_at=self.clock(),
            lines=[] if problems else lines, problems=problems, turnaround=turnaround, expire_after=expire_after,
            settings=settings, rng=random.Random(f"{seed}/{self._created}"),
        )
        if problems:
            batch.status, batch.ended_at = "failed", batch.created_at
        self.batches[batch.id] = batch
        self.stats.native_batches += 1
        return batch

    def get(self, batch_id: str) -> NativeBatch | None:
        """The batch brought up to date, or None if unknown."""
        batch = self.batches.get(batch_id)
        if batch is not None:
            self.advance(batch)
        return batch

    def cancel(self, batch: NativeBatch) -> bool:
        """Start cancelling a running batch (it ends ``cancelled`` at the next read); False if it has ended."""
        self.advance(batch)
        if batch.status != "in_progress":
            return False
        batch.cancelling_at = self.clock()
        batch.status = "cancelling"
        return True

    def advance(self, batch: NativeBatch) -> None:
        """Run the lines due by now (or by the expiry or cancel, if sooner) and end the batch if it is over."""
        if batch.status in TERMINAL_STATUSES:
            return
        now = self.clock()
        stop = now if batch.cancelling_at is None else batch.cancelling_at
        deadline = None if batch.expire_after is None else batch.created_at + batch.expire_after
        if deadline is not None:
            stop = min(stop, deadline)
        due = batch.due(stop)
        self._run_due(batch, due)
        if due == len(batch.lines):
            done_at = batch.created_at + max(0.0, batch.turnaround)
            self._end(batch, "completed", done_at)
        elif batch.cancelling_at is not None and now >= batch.cancelling_at:
            self._end(batch, "cancelled", batch.cancelling_at)
        elif deadline is not None and now >= deadline:
            self._end(batch, "expired", deadline)

    def _run_due(self, batch: NativeBatch, due: int) -> None:
        now = int(self.clock())
        stats = self.stats
        for line in batch.lines[len(batch.runs):due]:
            run = run_line(line, batch.endpoint, batch.settings, batch.rng, now)
            batch.runs.append(run)
            stats.native_batch_lines += 1
            if not run.ok:
                stats.native_batch_failed_lines += 1

    def _end(self, batch: NativeBatch, status: str, at: float) -> None:
        """Write the output and error files and set the final status."""
        out: list[bytes] = []
        err: list[bytes] = []
        for run in batch.runs:
            (out if run.ok else err).append(orjson.dumps(result_line(run.custom_id, run)))
        end_error = _END_ERRORS.get(status)
        if end_error is not None:
            for line in batch.lines[len(batch.runs):]:
                err.append(orjson.dumps(result_line(line.custom_id, None, end_error)))
                self.stats.native_batch_failed_lines += 1
        if out:
            batch.output_file_id = self._result_file(f"{batch.id}_output.jsonl", out).id
        if err:
            batch.error_file_id = self._result_file(f"{batch.id}_error.jsonl", err).id
        batch.status, batch.ended_at = status, at

    def _result_file(self, filename: str, lines: list[bytes]) -> StoredFile:
        return self.add_file(filename, "batch_output", b"\n".join(lines) + b"\n")

    def listing(self, after: str | None, limit: int) -> tuple[list[NativeBatch], bool]:
        """A page of batches, newest first, starting after the batch ``after``; and whether more follow."""
        ordered = list(reversed(self.batches.values()))
        if after is not None:
            ids = [batch.id for batch in ordered]
            ordered = ordered[ids.index(after) + 1:] if after in ids else []
        page = ordered[:limit]
        for batch in page:
            self.advance(batch)
        return page, len(ordered) > limit
