"""The simulator's native batch API: OpenAI-shaped Files and Batches endpoints over in-memory state.

A batch's lines are answered exactly as the real-time endpoints would answer them, after a configurable
turnaround (``SimulatorConfig.batch_turnaround_seconds``), with injected per-line failures (``error_rate``)
in the error file and an optional expiry (``batch_expire_after_seconds``) that fails unrun lines with
``batch_expired``. See :mod:`.store` for the lifecycle and :mod:`.routes` for the endpoints.
"""

from simulator.native_batch.lines import MAX_BATCH_LINES, InputLine, LineProblem, LineRun, RunSettings
from simulator.native_batch.routes import NativeBatchApi
from simulator.native_batch.store import NativeBatch, NativeBatchStore, StoredFile

__all__ = [
    "MAX_BATCH_LINES",
    "InputLine",
    "LineProblem",
    "LineRun",
    "NativeBatch",
    "NativeBatchApi",
    "NativeBatchStore",
    "RunSettings",
    "StoredFile",
]
