"""Per-flow statistics: the one owner of the ``freshness.stats`` contract.

* :mod:`streams.stats.records`: the window and gauge records, their keys, encoder, decoder
  and retention (imported by the worker that writes them and the API that reads them);
* :mod:`streams.stats.sketch`: the mergeable lag sketch inside a window record;
* :mod:`streams.stats.windows`: windows and never-decreasing totals over the records (the
  API's read model, and the alerter's burn-rate windows).

Pure: no Kafka, Faust or FastAPI import.
"""
