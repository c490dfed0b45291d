"""The provider simulator: an OpenAI-compatible HTTP server standing in for an upstream provider.

Deterministic bodies with realistic usage, lognormal latency, RPM/TPM limits answered with OpenAI's 429s and
``x-ratelimit-*`` headers, and injected failures (500/503, hangs, dropped connections), all tunable live.
"""

from simulator.app import SimulatorApp, create_app
from simulator.config import SimulatorConfig
from simulator.server import SimulatorServer, serve
from simulator.stats import SimulatorStats

__all__ = ["SimulatorApp", "SimulatorConfig", "SimulatorServer", "SimulatorStats", "create_app", "serve"]
