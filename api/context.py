"""What the API needs from its process: the Core, a hook to wake an in-process planner, and the gateway."""

from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client.registry import Collector

from broker.core import Core
from providers.circuit import Circuits
from providers.gateway import Gateway
from providers.limits import Limiter


def _nothing() -> None:
    return None


@dataclass
class ApiContext:
    core: Core
    #: called after a batch was created or changed, so an in-process planner can tick at once
    wake_planner: Callable[[], None] = field(default=_nothing)
    #: scrape-time gauges of the process' other roles, served on /metrics too (queue depth where a planner runs)
    collectors: tuple[Collector, ...] = ()
    #: the limiter the process' workers use (embedded mode), so interactive calls share their buckets
    limiter: Limiter | None = None
    #: the circuit breakers the process' workers use (embedded mode), so both paths of a process skip a failing provider
    circuits: Circuits | None = None
    _gateway: Gateway | None = None
    #: Authorization header -> (project id, key id, when read): interactive calls skip the key lookup for a few seconds
    projects_by_key: dict[str, tuple[str, str | None, float]] = field(default_factory=dict)

    def gateway(self) -> Gateway:
        """The process' gateway, made on first use (on the loop serving the API)."""
        if self._gateway is None:
            self._gateway = Gateway.for_process(self.core, self.limiter, self.circuits)
        return self._gateway

    def forget_keys(self) -> None:
        """A key was revoked or a project archived through this process: its next call looks the key up again
        (other API processes do within the gateway's KEY_TTL_SECONDS)."""
        self.projects_by_key.clear()

    def close(self) -> None:
        """The API has stopped serving: write what its gateway has not written yet."""
        if self._gateway is not None:
            self._gateway.slots.flush()
