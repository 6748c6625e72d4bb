"""Dotted paths into JSON objects."""

from __future__ import annotations

import pytest

from streams.core.paths import get_path, set_path


def test_set_then_get_round_trips_and_creates_objects() -> None:
    obj: dict[str, object] = {"a": 1}
    set_path(obj, ("payload", "lead", "id"), "L-1")
    assert obj == {"a": 1, "payload": {"lead": {"id": "L-1"}}}
    assert get_path(obj, ("payload", "lead", "id")) == "L-1"


def test_get_of_a_missing_or_non_object_step_is_none() -> None:
    obj = {"a": {"b": 1}, "s": "text"}
    assert get_path(obj, ("a", "x")) is None
    assert get_path(obj, ("s", "x")) is None
    assert get_path(obj, ("a", "b", "c")) is None


def test_set_through_a_non_object_is_refused() -> None:
    with pytest.raises(ValueError, match="'s' is not an object"):
        set_path({"s": "text"}, ("s", "x"), 1)
