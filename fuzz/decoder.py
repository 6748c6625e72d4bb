"""Coverage-guided fuzz target of the input decoder, through :class:`Ingest` (atheris).

One input is one Kafka record of a topic the first byte picks, read at a fixed wall clock
(``fuzz/seeds.py``: the format and the seed corpus). A crash is any exception escaping
``Ingest.process`` or a failed check: the record ends in exactly one place (flow events,
one quarantine record with a documented reason, or unmatched), and every forwarded event
has a non-empty key of at most 256 characters and a time within 1970..9999 and not beyond
the future-time allowance.

Bounded in ``make test`` (``tests/streams/pipeline/test_decoder_fuzz.py``); unbounded by
hand, see ``fuzz/README.md``.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["streams"]):
    from seeds import FLOWS, NOW, SKEW, record_of

    from streams.core.timeparse import MAX_EPOCH_MS
    from streams.pipeline.decoder import MAX_KEY_CHARS, Decoder
    from streams.pipeline.ingest import Ingest
    from streams.pipeline.quarantine import REASONS

INGEST = Ingest(Decoder(FLOWS), 8, max_future_skew_ms=SKEW)
LATEST = min(MAX_EPOCH_MS, NOW + SKEW)


def test_one_input(data: bytes) -> None:
    """Judge one record; raise on anything the decoder's guarantees exclude."""
    topic, raw = record_of(data)
    result = INGEST.process([(topic, 0, 7, NOW, raw)], NOW)
    events = [ev for batch in result.batches.values() for ev in batch]
    places = (1 if events else 0) + len(result.quarantine) + result.unmatched
    if places != 1 or len(result.read) != 1:
        raise AssertionError(f"the record ended in {places} places: {result}")
    for _, rec in result.quarantine:
        if rec["reason"] not in REASONS or (rec["topic"], rec["offset"]) != (topic, 7):
            raise AssertionError(f"bad quarantine record {rec}")
    for ev in events:
        if not 0 < len(ev.key) <= MAX_KEY_CHARS or not 0 <= ev.occurred_at <= LATEST:
            raise AssertionError(f"bad event {ev}")


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
