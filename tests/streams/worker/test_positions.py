"""The seek after a rebalance runs with the consumer's flow stopped, so nothing fetched from
before it reaches the agent's buffer while it runs (no broker: the flow switches of Faust's
consumer, as ``faust.transport.consumer.Consumer`` has them). What this guards against is
shown on the real broker by ``tests/faults/test_kill9.py``."""

from __future__ import annotations

import pytest

from streams.worker.positions import seek_with_flow_stopped


class FlowConsumer:
    """Faust's ``stop_flow`` / ``resume_flow`` and a ``perform_seek`` that records the flow."""

    def __init__(self, active: bool = True, fail: bool = False) -> None:
        self.flow_active = active
        self.fail = fail
        self.flow_during_seek: list[bool] = []

    def stop_flow(self) -> None:
        self.flow_active = False

    def resume_flow(self) -> None:
        self.flow_active = True

    async def perform_seek(self) -> None:
        self.flow_during_seek.append(self.flow_active)
        if self.fail:
            raise TimeoutError("the coordinator did not answer")


async def test_the_seek_runs_with_the_flow_stopped_and_leaves_it_to_faust_to_resume() -> None:
    consumer = FlowConsumer()
    seek_with_flow_stopped(consumer)
    await consumer.perform_seek()
    assert consumer.flow_during_seek == [False]
    assert consumer.flow_active is False  # Faust resumes it right after, in every caller


async def test_a_failed_seek_gives_back_the_flow_it_found() -> None:
    running = FlowConsumer(fail=True)
    seek_with_flow_stopped(running)
    with pytest.raises(TimeoutError):
        await running.perform_seek()
    assert running.flow_active is True

    stopped = FlowConsumer(active=False, fail=True)
    seek_with_flow_stopped(stopped)
    with pytest.raises(TimeoutError):
        await stopped.perform_seek()
    assert stopped.flow_active is False
