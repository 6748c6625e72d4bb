"""The Faust-free pipeline the worker and replay both run.

* :mod:`~streams.pipeline.decoder` and :mod:`~streams.pipeline.quarantine`: one raw input
  record in, flow events or a quarantine reason out;
* :mod:`~streams.pipeline.ingest`: batches of input records in, flow-event batches per join
  partition and quarantine records out, with the partition clock that makes watermarks;
* :mod:`~streams.pipeline.join`: flow-events messages in, state writes and output records
  out, over one :class:`~streams.core.join.JoinCore` per join partition;
* :mod:`~streams.pipeline.codec`: every wire format inside the worker (flow-events batches,
  ticks, table keys and state values), one encoder and one decoder each.

Nothing here imports Faust or a Kafka client: the worker drives it from Faust agents and an
aiokafka reader, replay drives it from records it reads itself.
"""
