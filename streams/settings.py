"""One frozen settings object per process, read from ``FRESHNESS_*`` environment variables.

Build it once at the edge (the CLI, an app factory) with :func:`load_settings` and pass it
down; nothing deeper reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
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
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """How every client connects (managed clusters: usually ``SASL_SSL``)."""
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    """SASL mechanism; required with ``SASL_SSL`` and ``SASL_PLAINTEXT``."""
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    """PEM file of the CA that signed the brokers' certificates (unset: the system's CAs)."""
    kafka_ssl_certfile: Path | None = None
    """PEM client certificate (mutual TLS); may hold the key too."""
    kafka_ssl_keyfile: Path | None = None
    """PEM private key of ``FRESHNESS_KAFKA_SSL_CERTFILE`` when it is a file of its own."""
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
    env: Literal["development", "production"] = "development"
    """``production`` refuses placeholder and short API secrets (``FRESHNESS_API_TOKEN``,
    ``FRESHNESS_INGEST_TOKEN``, ``FRESHNESS_WEBHOOK_INGEST_SECRET``) when settings are read;
    ``development`` (the default) accepts them and ``freshness api`` warns at start-up."""
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    api_token: SecretStr | None = None
    """When set, ``/v1`` and ``/metrics`` require ``Authorization: Bearer <token>``."""
    api_timeline_entities: int = Field(default=100_000, ge=0)
    """Entities whose measurements the API keeps for timelines (LRU; breaches are all kept)."""
    ingest_token: SecretStr | None = None
    """Enables ``POST /v1/events/{topic}``: writers send ``Authorization: Bearer <token>``
    (a token of its own: the read token ``FRESHNESS_API_TOKEN`` cannot write)."""
    webhook_ingest_secret: SecretStr | None = None
    """Enables ``POST /v1/webhooks/posthog``: PostHog's webhook destination sends it in the
    ``X-Freshness-Webhook-Secret`` header."""
    ingest_max_records: int = Field(default=1000, ge=1, le=100_000)
    """Most records in one ``POST /v1/events/{topic}`` (more: 413)."""
    ingest_max_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    """Largest request body of a receiver, in bytes (larger: 413)."""
    ingest_ack_timeout_ms: int = Field(default=5000, ge=100)
    """How long a receiver waits for Kafka to acknowledge a write before answering 503."""
    api_public_url: str | None = None
    """The API's URL as people reach it (e.g. ``https://freshness.example.com``); when set,
    alerts link to their flow's view there."""
    pagerduty_routing_key: SecretStr | None = None
    """Enables the PagerDuty sink: the 32-character Events API v2 integration key."""
    pagerduty_url: str = "https://events.pagerduty.com/v2/enqueue"
    alertmanager_url: str | None = None
    """Enables the Alertmanager sink: its base URL (alerts go to ``<url>/api/v2/alerts``)."""
    alertmanager_resend_ms: int = Field(default=60_000, ge=1000)
    """How often firing alerts are sent to Alertmanager again to stay active."""
    webhook_url: str | None = None
    """Enables the signed-webhook sink (needs ``FRESHNESS_WEBHOOK_SECRET``)."""
    webhook_secret: SecretStr | None = Field(default=None, validate_default=True)
    """The webhook's signing secret (``whsec_<base64>`` or at least 24 bytes of text)."""
    alert_eval_ms: int = Field(default=1000, ge=50)
    """How often the alerter evaluates every flow's alert policy."""
    alert_session_timeout_ms: int = Field(default=10_000, ge=500)
    """How long the alerter replicas' group waits for a silent leader before a standby
    takes over (the broker's ``group.min.session.timeout.ms``, 6000 by default, is the
    least it accepts)."""

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_needs_secret(cls, value: SecretStr | None, info: ValidationInfo) -> object:
        if info.data.get("webhook_url") and value is None:
            raise ValueError(
                "FRESHNESS_WEBHOOK_URL is set but FRESHNESS_WEBHOOK_SECRET is not; webhooks "
                "are only sent signed: set a secret (e.g. whsec_ + 32 random bytes in base64)"
            )
        return value

    @model_validator(mode="after")
    def _api_secrets_fit(self) -> Self:
        clash = api_tokens_clash(self)
        if clash:
            raise ValueError(clash)
        weak = weak_api_secrets(self)
        if weak and self.env == "production":
            raise ValueError("; ".join(weak))
        return self

    @model_validator(mode="after")
    def _kafka_security_fits(self) -> Self:
        problem = kafka_security_problem(self)
        if problem:
            raise ValueError(problem)
        return self

    @property
    def state_dir(self) -> Path:
        return self.home / "state"

    @property
    def kafka_dir(self) -> Path:
        return self.home / "kafka"


API_SECRETS: tuple[tuple[str, str], ...] = (
    ("api_token", "FRESHNESS_API_TOKEN"),
    ("ingest_token", "FRESHNESS_INGEST_TOKEN"),
    ("webhook_ingest_secret", "FRESHNESS_WEBHOOK_INGEST_SECRET"),
)
"""The API's own secrets: (field, variable)."""
MIN_SECRET_CHARS = 16
"""Shortest API secret ``FRESHNESS_ENV=production`` accepts (``secrets.token_urlsafe(16)``
gives 22 characters)."""
PLACEHOLDER_SECRETS: frozenset[str] = frozenset(
    {
        "changeme", "changeit", "replaceme", "secret", "mysecret", "token", "mytoken",
        "apitoken", "readtoken", "ingesttoken", "webhooksecret", "password", "passw0rd",
        "admin", "test", "testing", "example", "default", "demo", "dev", "development",
        "placeholder", "todo", "none", "null", "xxx", "xxxx", "yourtoken", "yoursecret",
        "letmein", "123456", "12345678", "1234567890", "qwerty",
    }
)  # fmt: skip
"""Values (lower case, letters and digits only) that a person typed as a stand-in; docs and
compose examples use ``...`` or ``<token>``, which reduce to nothing and are refused too."""


def api_tokens_clash(s: Settings) -> str | None:
    """Why the read and the ingest token may not be the same value (the read token would
    then write), or None. Checked in every environment."""
    read, ingest = s.api_token, s.ingest_token
    if read is None or ingest is None or not read.get_secret_value():
        return None
    if read.get_secret_value() == ingest.get_secret_value():
        return (
            "FRESHNESS_API_TOKEN and FRESHNESS_INGEST_TOKEN are the same value, so whoever may "
            "read could also write: give each its own secret"
        )
    return None


def weak_api_secrets(s: Settings) -> list[str]:
    """One line per API secret that is a placeholder or shorter than
    :data:`MIN_SECRET_CHARS` (refused in production, a start-up warning in development)."""
    lines = []
    for name, variable in API_SECRETS:
        secret: SecretStr | None = getattr(s, name)
        value = "" if secret is None else secret.get_secret_value()
        if not value:
            continue
        reduced = "".join(ch for ch in value.lower() if ch.isalnum())
        if reduced in PLACEHOLDER_SECRETS or not reduced or len(set(value)) == 1:
            problem = "is a placeholder"
        elif len(value) < MIN_SECRET_CHARS:
            problem = f"has {len(value)} characters (at least {MIN_SECRET_CHARS})"
        else:
            continue
        lines.append(
            f"{variable} {problem}: set a random secret, e.g. "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return lines


def kafka_security_problem(s: Settings) -> str | None:
    """What is wrong with the combination of ``FRESHNESS_KAFKA_SECURITY_PROTOCOL`` and the
    ``_SASL_*`` / ``_SSL_*`` settings, or None (the one place these are checked)."""
    protocol = s.kafka_security_protocol
    p = f"FRESHNESS_KAFKA_SECURITY_PROTOCOL={protocol}"
    sasl = {
        "FRESHNESS_KAFKA_SASL_MECHANISM": s.kafka_sasl_mechanism,
        "FRESHNESS_KAFKA_SASL_USERNAME": s.kafka_sasl_username,
        "FRESHNESS_KAFKA_SASL_PASSWORD": s.kafka_sasl_password,
    }
    ssl = {
        "FRESHNESS_KAFKA_SSL_CAFILE": s.kafka_ssl_cafile,
        "FRESHNESS_KAFKA_SSL_CERTFILE": s.kafka_ssl_certfile,
        "FRESHNESS_KAFKA_SSL_KEYFILE": s.kafka_ssl_keyfile,
    }
    if protocol.startswith("SASL_"):
        missing = [name for name, value in sasl.items() if not value]
        if missing:
            return (
                f"{p} needs {', '.join(missing)} (mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)"
            )
    elif set_ := [name for name, value in sasl.items() if value]:
        return (
            f"{', '.join(set_)} set but {p} does not use SASL: use SASL_SSL "
            "(or SASL_PLAINTEXT), or unset them"
        )
    if not protocol.endswith("SSL") and (set_ := [n for n, v in ssl.items() if v]):
        return f"{', '.join(set_)} set but {p} does not use TLS: use SSL or SASL_SSL, or unset them"
    if s.kafka_ssl_keyfile and not s.kafka_ssl_certfile:
        return (
            "FRESHNESS_KAFKA_SSL_KEYFILE is set without FRESHNESS_KAFKA_SSL_CERTFILE: set the "
            "client certificate too, or unset the key"
        )
    for name, path in ssl.items():
        if path is not None and not path.is_file():
            return f"{name}={path} is not a readable file: fix the path or unset it"
    return None


def load_settings(**overrides: object) -> Settings:
    """Read the environment (plus explicit overrides) into a frozen :class:`Settings`.

    Raises :class:`ConfigError` naming each bad variable.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = [
            f"FRESHNESS_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            if err["loc"]
            else str(err["msg"]).removeprefix("Value error, ")
            for err in exc.errors()
        ]
        raise ConfigError("invalid settings: " + "; ".join(lines)) from None
