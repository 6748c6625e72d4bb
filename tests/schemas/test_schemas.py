"""The schemas are valid draft 2020-12, agree with the code, and the docs' examples meet them."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import fastjsonschema
import jsonschema
import orjson
import pytest

from streams.core.model import Breach, Measurement
from streams.flows import load_flows
from streams.pipeline.decoder import Decoder
from streams.pipeline.quarantine import REASONS
from streams.schemas import load_schema, schema_dir
from streams.topics import INPUT_TOPICS

ROOT = Path(__file__).resolve().parents[2]
EVENTS_MD = ROOT / "docs" / "events.md"
SCHEMA_FILES = sorted(str(p.relative_to(schema_dir())) for p in schema_dir().rglob("*.json"))
_EXAMPLE = re.compile(r"<!-- schema: (?P<schema>\S+) -->\n```json\n(?P<body>.*?)\n```", re.DOTALL)


def _validator(rel: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        load_schema(rel), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def _examples() -> list[tuple[str, dict[str, Any]]]:
    text = EVENTS_MD.read_text(encoding="utf-8")
    found = [(m["schema"], orjson.loads(m["body"])) for m in _EXAMPLE.finditer(text)]
    assert len(found) == text.count("```json"), "every json block needs a schema comment above it"
    return found


EXAMPLES = _examples()


def test_schema_dir_is_the_repository_one() -> None:
    assert schema_dir() == ROOT / "schemas"


@pytest.mark.parametrize("rel", SCHEMA_FILES)
def test_schema_is_valid_2020_12_and_compiles(rel: str) -> None:
    schema = load_schema(rel)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith("/" + rel)
    jsonschema.Draft202012Validator.check_schema(schema)
    fastjsonschema.compile(schema, use_formats=False)


def test_every_input_topic_has_a_schema_requiring_its_key() -> None:
    for topic in INPUT_TOPICS:
        assert f"input/{topic}.schema.json" in SCHEMA_FILES
    for flow in load_flows(None):
        for topic, key in ((flow.start_topic, flow.start_key), (flow.end_topic, flow.end_key)):
            required = load_schema(f"input/{topic}.schema.json")["required"]
            assert {"event_id", "occurred_at", key[0]} <= set(required)


@pytest.mark.parametrize(
    ("rel", "model"),
    [("output/measurement.schema.json", Measurement), ("output/breach.schema.json", Breach)],
)
def test_output_schema_matches_the_model_fields(rel: str, model: type) -> None:
    schema = load_schema(rel)
    fields = dataclasses.fields(model)
    without_default = {f.name for f in fields if f.default is dataclasses.MISSING}
    assert set(schema["required"]) == without_default
    assert set(schema["properties"]) == {f.name for f in fields}


def test_quarantine_reasons_match_the_code() -> None:
    enum = load_schema("output/quarantine.schema.json")["properties"]["reason"]["enum"]
    assert set(enum) == set(REASONS)


def test_every_schema_has_an_example_in_the_docs() -> None:
    documented = {rel for rel, _ in EXAMPLES}
    assert documented == set(SCHEMA_FILES) - {"common/event.schema.json"}


@pytest.mark.parametrize(("rel", "example"), EXAMPLES, ids=[r for r, _ in EXAMPLES])
def test_docs_example_validates(rel: str, example: dict[str, Any]) -> None:
    _validator(rel).validate(example)
    fastjsonschema.compile(load_schema(rel), use_formats=False)(example)
    if rel.startswith("input/"):
        _validator("common/event.schema.json").validate(example)
        topic = rel.removeprefix("input/").removesuffix(".schema.json")
        events = Decoder(load_flows(None)).decode(topic, 0, 0, orjson.dumps(example))
        assert len(events) == 1


def test_docs_list_every_reason_code() -> None:
    text = EVENTS_MD.read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `([a-z_]+)` +\|", text, re.MULTILINE)) & set(REASONS)
    assert listed == set(REASONS)


_BREACH = {
    "breach_id": "f:k",
    "flow": "f",
    "key": "k",
    "kind": "overdue",
    "status": "open",
    "started_at": 1,
    "deadline": 2,
    "detected_at": 3,
    "completed_at": None,
    "lag_ms": None,
    "target_ms": 1,
    "start_event_id": "e",
}


@pytest.mark.parametrize(
    ("rel", "record"),
    [
        ("output/breach.schema.json", {**_BREACH, "status": "closed"}),
        ("output/breach.schema.json", {**_BREACH, "kind": "late", "status": "closed"}),
        ("output/breach.schema.json", {**_BREACH, "kind": "lost", "status": "open"}),
        ("output/breach.schema.json", {**_BREACH, "kind": "lost", "status": "closed", "lag_ms": 1}),
        ("output/breach.schema.json", {**_BREACH, "extra": 1}),
        ("output/breach.schema.json", {**_BREACH, "start_source": {"topic": "t"}}),
        ("output/stats.schema.json", {"kind": "other"}),
        (
            "input/funnel.lead.captured.schema.json",
            {"event_id": "e", "occurred_at": "2026-04-23T10:46:57", "lead_id": "L"},
        ),
        (
            "input/funnel.lead.captured.schema.json",
            {"event_id": "e", "occurred_at": -1, "lead_id": "L"},
        ),
        (
            "input/funnel.lead.captured.schema.json",
            {"event_id": "e", "occurred_at": 1, "lead_id": 5},
        ),
    ],
)
def test_both_validators_refuse(rel: str, record: dict[str, Any]) -> None:
    assert not _validator(rel).is_valid(record)
    with pytest.raises(fastjsonschema.JsonSchemaException):
        fastjsonschema.compile(load_schema(rel), use_formats=False)(record)


def test_late_and_lost_breaches_are_valid() -> None:
    validator = _validator("output/breach.schema.json")
    validator.validate(
        {**_BREACH, "kind": "late", "status": "closed", "completed_at": 9, "lag_ms": 8}
    )
    validator.validate({**_BREACH, "kind": "lost", "status": "closed"})
