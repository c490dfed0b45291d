"""Reading a Prometheus ``/metrics`` page the way Prometheus does: prometheus-client's own text parser."""

from collections.abc import Iterable

import httpx
from prometheus_client.parser import text_string_to_metric_families

#: (sample name, sorted label pairs) -> value
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    """Every sample of the page at ``url`` (which must parse, and declare each family once)."""
    resp = httpx.get(url, timeout=10.0, trust_env=False)
    resp.raise_for_status()
    assert resp.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    names: list[str] = []
    for family in text_string_to_metric_families(resp.text):
        names.append(family.name)
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in samples, f"sample {key} exposed twice"
            samples[key] = s.value
    assert len(names) == len(set(names)), f"a family is declared twice: {sorted(names)}"
    return samples


SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "summary": ("_count", "_sum")}


def series_names(url: str) -> set[str]:
    """Names of every series the page declares, samples or not yet (a labelled counter nobody incremented)."""
    resp = httpx.get(url, timeout=10.0, trust_env=False)
    resp.raise_for_status()
    return {family.name + suffix for family in text_string_to_metric_families(resp.text)
            for suffix in SUFFIXES.get(family.type, ("",))}


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of ``name``'s samples whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, pairs), v in samples.items() if n == name and want <= set(pairs))


def summed(pages: Iterable[Samples]) -> Samples:
    """Samples of several processes added up, as ``sum`` over instances does in PromQL."""
    out: Samples = {}
    for page in pages:
        for key, value in page.items():
            out[key] = out.get(key, 0.0) + value
    return out


def delta(after: Samples, before: Samples) -> Samples:
    """What counters gained between two scrapes of one process (prometheus-client's registry is per process, so
    tests that ran earlier in this process have counted too)."""
    return {key: value - before.get(key, 0.0) for key, value in after.items()}
