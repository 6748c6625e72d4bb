"""Alerting: policy evaluation, the ``freshness.alerts`` outbox and delivery to the sinks.

:mod:`~streams.alerting.delivery` is the per-sink delivery queue; it drives any
:class:`streams.connectors.sink.Sink` and knows no peer.
"""
