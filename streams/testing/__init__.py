"""Helpers shared openly by tests, the simulator and the benchmarks: the valid-record
builder (:mod:`~streams.testing.records`) and local HTTP peers (``peers/``). The monitor
itself (worker, API, alerter, replay) never imports it. Helpers the product uses too live in
product modules: the process runner in :mod:`streams.process`, the percentile in
:mod:`streams.simulate.percentile`, Kafka clients in :mod:`streams.kafka`."""
