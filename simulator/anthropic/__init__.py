"""The simulator's Anthropic side: ``POST /v1/messages`` and the Message Batches API, served by the same app.

Messages share the OpenAI endpoints' pipeline (rate limits, injected failures, latency, stats) through
:class:`MessagesDialect`, which validates, answers and words errors and headers as Anthropic does
(:mod:`.messages`). Message Batches run on the native batch store's timing, turnaround, expiry and injected
failures (:mod:`.batches`).
"""

from simulator.anthropic.batches import BATCHES_PATH, MessageBatchApi, MessageBatchStore
from simulator.anthropic.messages import MESSAGES_PATH, MessagesDialect, anthropic_error

__all__ = ["BATCHES_PATH", "MESSAGES_PATH", "MessageBatchApi", "MessageBatchStore", "MessagesDialect",
           "anthropic_error"]
