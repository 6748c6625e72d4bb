"""Funnel traffic with known truth, and the judge of what the monitor made of it.

* :mod:`~streams.simulate.scenario`: a scripted scenario with the expected outcome of every
  entity (the integration tests replay it);
* :mod:`~streams.simulate.traffic` (pure planner), :mod:`~streams.simulate.scheduler` and
  :mod:`~streams.simulate.runner`: ``freshness simulate``, live traffic with injected
  faults and a ground-truth file (:mod:`~streams.simulate.truth`);
* :mod:`~streams.simulate.observe` and :mod:`~streams.simulate.score`: ``freshness score``,
  the monitor's output topics judged against that truth;
* :mod:`~streams.simulate.percentile`: the nearest-rank percentile of score, simulate and
  the benchmarks.
"""
