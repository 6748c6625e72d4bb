"""The Faust worker: the Faust app, the input reader, and the producer and table adapters.

The logic it runs (decode, validate, quarantine, repartition, join, sweep, stats) is the
Faust-free :mod:`streams.pipeline`, which replay runs too. :mod:`streams.worker.app` wires
it into an aiokafka input reader (:mod:`streams.worker.reader`), a Faust agent, a timer and
a RocksDB-backed table (:mod:`streams.worker.adapters`); :mod:`streams.worker.runner` is
``freshness worker``.
"""
