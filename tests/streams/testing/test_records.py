"""valid_record: what it builds, the decoder accepts as an event of that flow, and only that."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from streams.core.model import Flow
from streams.flows.config import load_flows
from streams.pipeline.decoder import Decoder
from streams.testing.records import valid_record

T0 = 1_776_941_217_000


def _events(flows: tuple[Flow, ...], topic: str, rec: dict[str, object]) -> list[tuple[str, str]]:
    return [(e.flow, e.side) for e in Decoder(flows).decode(topic, 0, 0, orjson.dumps(rec))]


@pytest.mark.parametrize("side", ["start", "end"])
def test_every_default_flow_gets_a_record_the_decoder_maps_to_it(side: str) -> None:
    flows = load_flows(None)
    for flow in flows:
        topic = flow.start_topic if side == "start" else flow.end_topic
        rec = valid_record(flow, side, "k-1", "e-1", T0)
        assert _events(flows, topic, rec) == [(flow.name, side)], rec
        (ev,) = Decoder(flows).decode(topic, 3, 9, orjson.dumps(rec))
        assert (ev.key, ev.event_id, ev.occurred_at) == ("k-1", "e-1", T0)


def test_extra_fields_come_last_and_win() -> None:
    (retry,) = [f for f in load_flows(None) if f.end_topic == "funnel.dlq.retry_attempted"]
    rec = valid_record(retry, "end", "k", "e", "2026-04-23T10:46:57.123Z", attempt=2, note="x")
    assert (rec["attempt"], rec["note"]) == (2, "x")
    assert rec["occurred_at"] == "2026-04-23T10:46:57.123Z"


@pytest.mark.parametrize(
    "condition", ['kind in ["paid", "refunded"]', 'kind != "draft"', 'kind == "paid"']
)
def test_completions_pass_every_kind_of_filter(tmp_path: Path, condition: str) -> None:
    path = tmp_path / "flows.yaml"
    path.write_text(
        "flows:\n  - name: f\n    start: {topic: a, key: id.value, time: at}\n"
        f"    completion: {{topic: b, key: ref, filter: '{condition}'}}\n    target: 1s\n"
    )
    flows = load_flows(path)
    assert _events(flows, "a", valid_record(flows[0], "start", "k", "s", T0)) == [("f", "start")]
    assert _events(flows, "b", valid_record(flows[0], "end", "k", "c", T0)) == [("f", "end")]
