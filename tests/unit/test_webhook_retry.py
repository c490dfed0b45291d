"""Webhook retry policy (schedule, jitter, Retry-After) and signing, checked against the official SDK."""

import random
import time
from email.utils import formatdate

import openai
import pytest

from broker.settings import DEFAULT_WEBHOOK_RETRY_SCHEDULE
from broker.webhooks.delivery import parse_retry_after
from broker.webhooks.outbox import MAX_RETRY_AFTER_SECONDS, RETRY_JITTER, retry_delay
from broker.webhooks.signing import new_secret, signed_headers


def test_schedule_steps_with_jitter_then_gives_up() -> None:
    rng = random.Random(7)
    schedule = DEFAULT_WEBHOOK_RETRY_SCHEDULE
    assert schedule == (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
    for attempts, step in enumerate(schedule, start=1):
        delays = [retry_delay(attempts, schedule, rng=rng) for _ in range(200)]
        assert all(d is not None and step * (1 - RETRY_JITTER) <= d <= step * (1 + RETRY_JITTER) for d in delays)
        if step:
            assert len({round(d or 0, 6) for d in delays}) > 100, "jitter must spread the retries"
    assert retry_delay(len(schedule) + 1, schedule) is None


def test_retry_after_wins_only_when_longer_and_is_capped() -> None:
    schedule = [5.0, 300.0]
    assert retry_delay(1, schedule, retry_after=60.0) == 60.0
    longer = retry_delay(2, schedule, retry_after=60.0)
    assert longer is not None and 270.0 <= longer <= 330.0
    assert retry_delay(1, schedule, retry_after=10 * 86_400.0) == MAX_RETRY_AFTER_SECONDS
    assert retry_delay(3, schedule, retry_after=1.0) is None


def test_retry_after_header_forms() -> None:
    assert parse_retry_after("120") == 120.0
    at = time.time()
    assert parse_retry_after(formatdate(at + 90, usegmt=True), at=at) == pytest.approx(90, abs=1)
    assert parse_retry_after(formatdate(at - 90, usegmt=True), at=at) == 0.0
    for bad in (None, "", "soon", "-5", "1.5"):
        assert parse_retry_after(bad) is None


def test_signature_verifies_with_the_official_sdk_and_binds_body_id_and_secret() -> None:
    secret = new_secret()
    body = '{"id":"evt_1","object":"event","type":"batch.completed","created_at":1,"data":{"id":"b"}}'
    assert secret.startswith("whsec_")
    headers = signed_headers(secret, "evt_1", body)
    sdk = openai.OpenAI(api_key="unused", base_url="http://127.0.0.1:9")
    event = sdk.webhooks.unwrap(body, headers, secret=secret)
    assert event.type == "batch.completed" and event.data.id == "b"
    for tampered_body, tampered_headers, key in (
        (body.replace("b\"}", "c\"}"), headers, secret),
        (body, {**headers, "webhook-id": "evt_2"}, secret),
        (body, headers, new_secret()),
    ):
        with pytest.raises(openai.InvalidWebhookSignatureError):
            sdk.webhooks.unwrap(tampered_body, tampered_headers, secret=key)
    stale = signed_headers(secret, "evt_1", body, at=time.time() - 3600)
    with pytest.raises(openai.InvalidWebhookSignatureError, match="too old"):
        sdk.webhooks.unwrap(body, stale, secret=secret)
