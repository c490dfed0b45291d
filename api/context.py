"""What the API needs from its process: the Core and a hook to wake an in-process planner."""

from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client.registry import Collector

from broker.core import Core


def _nothing() -> None:
    return None


@dataclass
class ApiContext:
    core: Core
    #: called after a batch was created or changed, so an in-process planner can tick at once
    wake_planner: Callable[[], None] = field(default=_nothing)
    #: scrape-time gauges of the process' other roles, served on /metrics too (queue depth where a planner runs)
    collectors: tuple[Collector, ...] = ()
