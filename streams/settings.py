"""One frozen settings object per process, read from ``FRESHNESS_*`` environment variables.

Build it once at the edge (the CLI, an app factory) with :func:`load_settings` and pass it
down; nothing deeper reads the environment.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.errors import ConfigError

DEFAULT_HOME = Path.home() / ".cache" / "funnel-freshness"


class Settings(BaseSettings):
    """Process-wide configuration. Durations end in ``_ms``."""

    model_config = SettingsConfigDict(env_prefix="FRESHNESS_", frozen=True, extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:9092"
    """Kafka bootstrap servers, ``host:port[,host:port]``."""
    kafka_version: str = "4.0.2"
    """Apache Kafka version of the embedded dev broker (jars from Maven Central)."""
    home: Path = DEFAULT_HOME
    """Cache and state root: broker jars, broker data and logs, worker RocksDB state."""
    partitions: int = Field(default=8, ge=1, le=1024)
    """Partition count of every topic ``freshness topics create`` makes."""
    replication_factor: int = Field(default=1, ge=1)
    flows: Path | None = None
    """YAML file of flow definitions; ``None`` uses the packaged default (four flows)."""
    app_id: str = "funnel-freshness"
    """Kafka consumer group / Faust app id of the worker."""
    tick_interval_ms: int = Field(default=200, ge=10)
    """How often a worker publishes watermarks and sweeps for overdue and lost starts."""
    watermark_grace_ms: int = Field(default=200, ge=0)
    """A caught-up input partition's watermark is the wall clock minus this grace (how late a
    producer may deliver a record that already happened without a false overdue)."""
    max_future_skew_ms: int = Field(default=300_000, ge=0)
    """How far ahead of its Kafka timestamp an input record's event time may lie; beyond it
    the record is quarantined as ``future_time`` and moves no watermark (5 min)."""
    stats_interval_ms: int = Field(default=2000, ge=100)
    """How often a worker publishes per-flow statistics."""
    ingest_batch: int = Field(default=2000, ge=1, le=65_535)
    """Most input records decoded together before they are repartitioned."""
    session_timeout_ms: int = Field(default=10_000, ge=6_000)
    """How long the group waits for a silent worker before its partitions move (failover)."""
    log_level: str = "warn"
    """Worker log level: crit, error, warn, info or debug."""
    worker_id: str = "0"
    """Names this worker's RocksDB directory; give each worker process on one machine its own."""
    done_retention_ms: int = Field(default=3_600_000, ge=0)
    """How long (event time) a decided entity is kept to swallow late duplicates."""
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    api_token: SecretStr | None = None
    """When set, ``/v1`` and ``/metrics`` require ``Authorization: Bearer <token>``."""
    api_timeline_entities: int = Field(default=100_000, ge=0)
    """Entities whose measurements the API keeps for timelines (LRU; breaches are all kept)."""

    @property
    def state_dir(self) -> Path:
        return self.home / "state"

    @property
    def kafka_dir(self) -> Path:
        return self.home / "kafka"


def load_settings(**overrides: object) -> Settings:
    """Read the environment (plus explicit overrides) into a frozen :class:`Settings`.

    Raises :class:`ConfigError` naming each bad variable.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = [
            f"FRESHNESS_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        ]
        raise ConfigError("invalid settings: " + "; ".join(lines)) from None
