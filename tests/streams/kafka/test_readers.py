"""Readers of the monitor's topics retry what Kafka calls retriable and stop on the rest
(the API's output reader and ``freshness score``), without a broker: their consumer fails."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError

import api.consumer
from api.consumer import OutputConsumer
from api.readmodel import ReadModel
from streams.flows.config import load_flows
from streams.kafka import KafkaConnection, KafkaFatalError
from streams.simulate import observe
from streams.simulate.truth import Truth


class FailingConsumer:
    """A consumer whose ``start`` raises the next of ``errors``; counts its starts."""

    def __init__(self, errors: list[BaseException]) -> None:
        self.errors = errors
        self.starts = 0

    def __call__(self, *args: Any, **kwargs: Any) -> FailingConsumer:
        return self

    async def start(self) -> None:
        self.starts += 1
        raise self.errors.pop(0) if len(self.errors) > 1 else self.errors[0]

    async def stop(self) -> None:
        return None


async def test_the_api_reader_retries_an_outage_and_stops_on_a_refusal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FailingConsumer([KafkaConnectionError("down"), TopicAuthorizationFailedError()])
    monkeypatch.setattr(api.consumer, "new_consumer", fake)
    model = ReadModel(load_flows(None))
    stopped: list[KafkaFatalError] = []
    reader = OutputConsumer(KafkaConnection("k:9092"), model, retry_ms=10, on_fatal=stopped.append)
    reader.start()
    assert reader._task is not None
    await asyncio.wait_for(reader._task, 5)
    assert fake.starts == 2
    assert reader.error is not None
    assert stopped == [reader.error]
    assert "TopicAuthorizationFailedError" in str(reader.error)
    assert not model.progress.ready
    assert model.progress.waiting_for == [str(reader.error)]
    await reader.stop()


async def test_the_api_reader_keeps_retrying_while_kafka_is_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FailingConsumer([KafkaConnectionError("down")])
    monkeypatch.setattr(api.consumer, "new_consumer", fake)
    model = ReadModel(load_flows(None))
    reader = OutputConsumer("k:9092", model, retry_ms=10)
    reader.start()
    while fake.starts < 5:
        await asyncio.sleep(0.01)
    assert reader.error is None
    assert model.progress.waiting_for == ["connection to Kafka at k:9092 (KafkaConnectionError)"]
    await reader.stop()


def _truth() -> Truth:
    header = {"run_id": "r", "key_prefix": "sim-r-", "started_at": 1_000, "flows": []}
    return Truth(header, [], [])


async def test_score_stops_with_one_line_on_a_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(observe, "new_consumer", FailingConsumer([TopicAuthorizationFailedError()]))
    with pytest.raises(KafkaFatalError, match=r"^freshness score stopped: TopicAuthorization"):
        await observe.read_outputs(KafkaConnection("k:9092"), _truth(), wait_s=0, settle_s=0)


async def test_score_retries_an_outage_until_it_must_judge(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FailingConsumer([KafkaConnectionError("down")])
    monkeypatch.setattr(observe, "new_consumer", fake)
    monkeypatch.setattr(observe, "RETRY_S", 0.01)
    monkeypatch.setattr(observe, "DEADLINE_MARGIN_MS", 100)
    reader, notes = await observe.read_outputs(
        KafkaConnection("k:9092"), _truth(), wait_s=0.1, settle_s=0
    )
    assert fake.starts > 2
    assert notes == ["judged while Kafka was unreachable (KafkaConnectionError)"]
    assert reader.obs.size() == 0
