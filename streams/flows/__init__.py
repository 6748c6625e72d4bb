"""Flow definitions: the YAML file of flows and its packaged default (``default.yaml``)."""

from streams.flows.config import flow_topics, load_flows, parse_duration, parse_flows

__all__ = ["flow_topics", "load_flows", "parse_duration", "parse_flows"]
