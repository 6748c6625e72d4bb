"""The Faust worker: ingest (decode, validate, quarantine, repartition), join, sweep, stats.

The processors in :mod:`streams.pipeline.ingest` and :mod:`streams.pipeline.join` hold the
logic and are driven by tests without Faust; :mod:`streams.worker.app` wires them into
Faust agents, a timer and a RocksDB-backed table.
"""
