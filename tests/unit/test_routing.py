"""Route choice: the cheapest deployment and route that fit the window; real time first at equal price."""

import pytest

from broker.catalogue import Catalogue, ModelSpec, NativeBatchConfig, OffPeakWindow, ProviderConfig
from broker.errors import InvalidRequest
from broker.routing import RoutingRequest, plan_model

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 100}
START, DAY = 1_795_600_000.0, 86_400.0  # a Wednesday, 09:46 UTC


def catalogue(**providers: dict[str, object]) -> Catalogue:
    return Catalogue(providers={name: ProviderConfig(base_url="http://x/v1", **fields)  # type: ignore[arg-type]
                                for name, fields in providers.items()})


def plan(cat: Catalogue, route: str = "auto", window: float = DAY, **req: object) -> tuple[str, str]:
    chosen = plan_model(cat, "m", BODY, RoutingRequest("/v1/chat/completions", route, start=START,
                                                        expires_at=START + window, **req))  # type: ignore[arg-type]
    return chosen.provider, chosen.route


def test_the_cheapest_deployment_and_route_wins() -> None:
    cat = catalogue(a={"models": {"m": ModelSpec(input=1, output=1)}, "native_batch": NativeBatchConfig(discount=0.5)},
                    b={"models": {"m": ModelSpec(input=0.6, output=0.6)}})
    assert plan(cat) == ("a", "native_batch")  # 0.5 of 1 beats 0.6
    assert plan(cat, window=6 * 3600) == ("b", "realtime")  # the batch API's 12 h does not fit 6 h
    assert plan(cat, route="realtime") == ("a", "realtime")  # forced real time: the first deployment
    assert plan(cat, providers=["b"]) == ("b", "realtime")


def test_at_equal_price_real_time_wins() -> None:
    cat = catalogue(a={"models": {"m": ModelSpec(input=1, output=1, batch_discount=0.0)},
                       "native_batch": NativeBatchConfig()})
    assert plan(cat) == ("a", "realtime")


def test_off_peak_waits_for_a_window_that_opens_in_time() -> None:
    tonight = OffPeakWindow(start="22:00", end="06:00", multiplier=0.3)
    cat = catalogue(a={"models": {"m": ModelSpec(input=1, output=1)}, "off_peak": [tonight]})
    chosen = plan_model(cat, "m", BODY, RoutingRequest("/v1/chat/completions", start=START, expires_at=START + DAY))
    assert (chosen.route, chosen.price_factor) == ("off_peak", 0.3) and chosen.not_before > START
    assert plan(cat, window=3600) == ("a", "realtime")  # tonight is too late for a 1 h window
    with pytest.raises(InvalidRequest) as refused:
        plan(cat, route="off_peak", window=3600)
    assert refused.value.code == "route_infeasible"


def test_constraints_that_leave_no_deployment_say_what_serves_the_model() -> None:
    cat = catalogue(us={"models": {"m": ModelSpec()}, "regions": ["us"]})
    with pytest.raises(InvalidRequest) as refused:
        plan(cat, regions=["eu"])
    assert refused.value.code == "no_eligible_deployment" and "us (regions: us)" in refused.value.message
