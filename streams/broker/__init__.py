"""The embedded dev broker: Apache Kafka fetched as jars (``jars``), run as a local KRaft
process (``process``), driven by ``freshness kafka`` (``commands``) and the test suite."""

from streams.broker.process import BrokerConfig, EmbeddedBroker, free_port, port_in_use, probe

__all__ = ["BrokerConfig", "EmbeddedBroker", "free_port", "port_in_use", "probe"]
