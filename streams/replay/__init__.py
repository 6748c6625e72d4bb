"""Replay and explain (DESIGN section 10): the worker's pipeline over any time range of the
input topics, in memory, and one entity's story from the raw topics.

Pure (no Kafka): :mod:`~streams.replay.timespec` (TIME and duration arguments),
:mod:`~streams.replay.merge` (records of many partitions back in Kafka-time order),
:mod:`~streams.replay.engine` (the worker's Ingest, JoinCore and WatermarkBoard driven over
a range), :mod:`~streams.replay.summary`, :mod:`~streams.replay.output` (``--output``),
:mod:`~streams.replay.diff` (``--diff``), :mod:`~streams.replay.explain` (the verdict's
arithmetic and the lag decomposition).

Adapters: :mod:`~streams.replay.source` (reading offset ranges, group-less),
:mod:`~streams.replay.live` (the live output topics), :mod:`~streams.replay.lookup` (one
entity's records), :mod:`~streams.replay.console` (rich tables and progress bars),
:mod:`~streams.replay.replay_command` and :mod:`~streams.replay.explain_command`.
Nothing here writes to Kafka. See docs/replay.md.
"""
