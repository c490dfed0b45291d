"""The hooks other parts call to count (the real-time gateway's interactive calls among them), read back through
the same exposition ``/metrics`` serves and prometheus-client's parser."""

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from broker import metrics
from broker.errors import RetryableUpstream, TerminalUpstream
from tests.scrape import Samples, delta, total


def _page() -> Samples:
    text = generate_latest(metrics.exposition()).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_an_interactive_call_is_counted_apart_from_batch_calls() -> None:
    before = _page()
    with metrics.in_flight("hooks", "m", metrics.INTERACTIVE):
        assert total(_page(), "broker_upstream_in_flight", provider="hooks", route="interactive") == 1
        metrics.record_call("hooks", "m", metrics.INTERACTIVE, 200, 0.3)
    metrics.record_usage("hooks", "m", metrics.INTERACTIVE, 10, 5, 0.002)
    metrics.record_call("hooks", "m", "realtime", metrics.call_code(RetryableUpstream("x", code="upstream_timeout")),
                        1.5)
    metrics.record_call("hooks", "m", "realtime", metrics.call_code(TerminalUpstream("x", code="e", status=400)), 0.1)

    got = delta(_page(), before)
    assert total(got, "broker_upstream_in_flight", provider="hooks") == 0
    assert total(got, "broker_upstream_calls_total", provider="hooks", route="interactive", code="200") == 1
    assert total(got, "broker_upstream_calls_total", provider="hooks", route="realtime", code="upstream_timeout") == 1
    assert total(got, "broker_upstream_calls_total", provider="hooks", route="realtime", code="400") == 1
    assert total(got, "broker_upstream_call_seconds_bucket", provider="hooks", route="interactive", le="0.5") == 1
    assert total(got, "broker_upstream_call_seconds_bucket", provider="hooks", route="interactive", le="0.25") == 0
    assert total(got, "broker_requests_total", provider="hooks", route="interactive") == 1
    assert total(got, "broker_tokens_total", provider="hooks", direction="input") == 10
    assert total(got, "broker_tokens_total", provider="hooks", direction="output") == 5
    assert total(got, "broker_cost_usd_total", provider="hooks") == 0.002
