"""PromQL helpers for the dashboard and rule tests: what an expression selects, and what the
API exports.

:func:`selected_metrics` parses with ``promql-parser`` (the Rust implementation of
Prometheus' grammar) and walks the tree, so a name inside a string, a label matcher, a
``by (...)`` list or a function call is never mistaken for a metric.
:func:`exported_metrics` scrapes ``/metrics`` of the API over the seeded demo read model and
lists every series name a Prometheus server would store (``_total`` for counters,
``_bucket``/``_count``/``_sum`` for histograms), families without samples included.
"""

from __future__ import annotations

from functools import cache

import promql_parser
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from api import demo
from api.metrics import registry_for
from streams.flows.config import load_config
from streams.settings import Settings

GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("_count", "_sum"),
}


def expand_grafana(expr: str, variables: dict[str, str]) -> str:
    """``expr`` with Grafana's built-in and the dashboard's template variables replaced."""
    for name, value in sorted(
        {**GRAFANA_VARIABLES, **variables}.items(), key=lambda kv: -len(kv[0])
    ):
        expr = expr.replace(name, value)
    return expr


def selected_metrics(expr: str) -> set[str]:
    """The metric names ``expr`` selects; :class:`ValueError` if it does not parse."""
    names: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name is None:
                raise ValueError(f"a selector without a metric name in {expr!r}")
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


@cache
def exported_metrics() -> frozenset[str]:
    """Every series name ``/metrics`` of the API exposes (seeded demo read model)."""
    settings = Settings()
    model = demo.build(settings, now_ms=1_767_225_600_000, breaches=200)
    registry = registry_for(model, load_config(settings.flows).policies)
    text = generate_latest(registry).decode()
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        suffixes = _SUFFIXES.get(family.type, ("",))
        names.update(family.name + s for s in suffixes)
        names.update(sample.name for sample in family.samples)
    return frozenset(names)
