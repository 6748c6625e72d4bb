"""One Apache Kafka broker (KRaft, broker and controller in one JVM) as a local process.

Everything the broker owns lives in its ``data_dir``: ``server.properties``, the KRaft log
directory ``log/``, the log file ``broker.log`` (previous run: ``broker.log.1``) and the pid
file ``broker.pid``. The pid file is what lets ``stop`` and ``status`` in a later process find
the broker; a pid is only trusted while that process still runs ``kafka.Kafka`` with this
``server.properties``, so a stale file or a reused pid is never mistaken for the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import time
from base64 import urlsafe_b64encode
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from streams.errors import BrokerError
from streams.topics import MESSAGE_MAX_BYTES

LOG_TAIL_LINES = 25
DEFAULT_JVM_OPTS: tuple[str, ...] = (
    "-Xms512m",
    "-Xmx1g",
    "-Djava.awt.headless=true",
    "-Dorg.slf4j.simpleLogger.showDateTime=true",
    "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSSZ",
)


SCRAM_MECHANISM = "SCRAM-SHA-512"


@dataclass(frozen=True, slots=True)
class SaslSslListener:
    """An extra ``SASL_SSL`` listener (SCRAM-SHA-512) beside the plaintext one.

    The plaintext listener stays the broker's bootstrap (readiness probes, inter-broker
    traffic); this one is what clients with security settings connect to. ``users`` get
    SCRAM-SHA-512 credentials when the storage is formatted (KRaft keeps them in the metadata
    log), so they exist from the broker's first start.
    """

    port: int
    keystore: Path
    """PKCS12 file with the broker's private key and certificate chain."""
    keystore_password: str
    users: tuple[tuple[str, str], ...]
    """``(name, password)`` pairs."""

    def scram_arguments(self) -> list[str]:
        """``kafka.tools.StorageTool format`` arguments creating every user."""
        args: list[str] = []
        for name, password in self.users:
            if any(c in f"{name}{password}" for c in ',[]="\n'):
                raise BrokerError(
                    f'SCRAM user {name!r}: names and passwords may not contain , [ ] = " or '
                    "a newline (StorageTool's --add-scram syntax); pick another"
                )
            args += ["--add-scram", f"{SCRAM_MECHANISM}=[name={name},password={password}]"]
        return args


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """Where one broker listens and keeps its files."""

    port: int
    controller_port: int
    data_dir: Path
    libs: Path
    host: str = "127.0.0.1"
    jvm_opts: tuple[str, ...] = DEFAULT_JVM_OPTS
    extra_properties: dict[str, str] = field(default_factory=dict)
    sasl_ssl: SaslSslListener | None = None
    """An optional SASL_SSL listener (tests of the clients' security settings)."""

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def sasl_ssl_bootstrap(self) -> str | None:
        return None if self.sasl_ssl is None else f"{self.host}:{self.sasl_ssl.port}"

    @property
    def properties_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log_dirs(self) -> Path:
        return self.data_dir / "log"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "broker.log"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def classpath(self) -> str:
        return f"{self.libs}/*"


def render_properties(config: BrokerConfig) -> str:
    """``server.properties`` of a single-node KRaft cluster with static controller voters."""
    h, p, c = config.host, config.port, config.controller_port
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{h}:{c}",
        "listeners": f"PLAINTEXT://{h}:{p},CONTROLLER://{h}:{c}",
        "advertised.listeners": f"PLAINTEXT://{h}:{p}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(config.log_dirs),
        "num.partitions": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "8",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        # A restarted broker cannot re-register until its previous session expires (default
        # 9 s); shorter sessions make `kafka stop && kafka start` quick on a dev machine.
        "broker.heartbeat.interval.ms": "1000",
        "broker.session.timeout.ms": "4000",
        # Topics are created on purpose (`freshness topics create`, ensure_topics, Faust's
        # own declarations); a typo in a topic name must fail, not create a 1-partition topic.
        "auto.create.topics.enable": "false",
        # Records over 1 MiB must reach the monitor so it can quarantine them (reason
        # too_large) instead of the producer failing: see topics.MESSAGE_MAX_BYTES.
        "message.max.bytes": str(MESSAGE_MAX_BYTES),
        "replica.fetch.max.bytes": str(MESSAGE_MAX_BYTES),
    }
    if config.sasl_ssl is not None:
        props.update(_sasl_ssl_properties(config.host, config.sasl_ssl, props))
    props.update(config.extra_properties)
    return "".join(f"{k}={v}\n" for k, v in props.items())


def _sasl_ssl_properties(
    host: str, listener: SaslSslListener, props: dict[str, str]
) -> dict[str, str]:
    """The listener added to ``props``' plaintext ones, its TLS keystore and SCRAM login."""
    url = f"SASL_SSL://{host}:{listener.port}"
    prefix = "listener.name.sasl_ssl."
    return {
        "listeners": f"{props['listeners']},{url}",
        "advertised.listeners": f"{props['advertised.listeners']},{url}",
        "listener.security.protocol.map": (
            f"{props['listener.security.protocol.map']},SASL_SSL:SASL_SSL"
        ),
        "sasl.enabled.mechanisms": SCRAM_MECHANISM,
        f"{prefix}scram-sha-512.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        ),
        f"{prefix}ssl.keystore.type": "PKCS12",
        f"{prefix}ssl.keystore.location": str(listener.keystore),
        f"{prefix}ssl.keystore.password": listener.keystore_password,
        f"{prefix}ssl.key.password": listener.keystore_password,
    }


def new_cluster_id() -> str:
    """A Kafka ``Uuid`` string (URL-safe base64 of 16 random bytes, no padding)."""
    while True:
        cid = urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")
        if not cid.startswith("-"):  # Kafka's Uuid.randomUuid() avoids these too
            return cid


def find_java() -> str:
    """Path of ``java``; raises :class:`BrokerError` saying how to install it."""
    java = shutil.which("java")
    if java is None:
        raise BrokerError(
            "Java is not on PATH; the embedded Kafka broker needs Java 17 or newer. "
            "Install it (Debian/Ubuntu: apt-get install openjdk-17-jre-headless; "
            "macOS: brew install openjdk@17) or put its bin directory on PATH."
        )
    return java


def port_in_use(host: str, port: int) -> bool:
    """True when something already listens on (or otherwise holds) ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise BrokerError(f"cannot bind {host}:{port}: {exc}") from None
    return False


LOWEST_FREE_PORT = 20_000


def ephemeral_range(path: Path = Path("/proc/sys/net/ipv4/ip_local_port_range")) -> range:
    """The ports the kernel hands out for outgoing connections (Linux; else IANA's)."""
    try:
        low, high = (int(x) for x in path.read_text().split())
    except (OSError, ValueError):
        low, high = 49152, 65535
    return range(low, high + 1)


def free_port(host: str = "127.0.0.1", rng: random.Random | None = None) -> int:
    """A port nobody holds right now, below the kernel's ephemeral range.

    Never one the kernel could also hand out as the local end of an outgoing connection: a
    client reconnecting fast to a stopped broker on an ephemeral port can connect to
    itself (TCP simultaneous open), and the broker then cannot start on that port again.
    """
    pick = rng or random.Random()
    top = min(ephemeral_range().start, 65_536)
    for _ in range(200):
        port = pick.randrange(LOWEST_FREE_PORT, top)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
        return port
    raise BrokerError(f"no free port on {host} between {LOWEST_FREE_PORT} and {top}")


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Silence a library logger while probing a broker that may not be up yet."""
    logger = logging.getLogger(logger_name)
    old = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(old)


async def probe(bootstrap: str, timeout_s: float = 5.0) -> bool:
    """True when ``bootstrap`` answers a Metadata request that lists at least one broker.

    Never raises for an unreachable or half-started broker; returns False instead.
    """
    from aiokafka import AIOKafkaClient

    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    try:
        with _quiet("aiokafka"):
            await asyncio.wait_for(client.bootstrap(), timeout_s)
            return bool(client.cluster.brokers())
    except Exception:  # any failure means "not ready yet", which is the answer
        return False
    finally:
        with _quiet("aiokafka"):
            await client.close()


def answers(bootstrap: str, timeout_s: float = 5.0) -> bool:
    """Blocking :func:`probe` for callers without an event loop."""
    host, _, port = bootstrap.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=min(timeout_s, 2.0)):
            pass
    except OSError:
        return False
    return asyncio.run(probe(bootstrap, timeout_s))


class EmbeddedBroker:
    """Start, find, probe and stop the broker described by a :class:`BrokerConfig`.

    ``start`` returns only once the broker answers a Metadata request (or raises
    :class:`BrokerError` with the tail of its log, leaving no process behind). ``stop`` is
    idempotent and returns only when the process is gone.
    """

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self._child: int | None = None  # pid, when this process spawned the broker

    # -- discovery ------------------------------------------------------------------------
    def pid(self) -> int | None:
        """Pid of this config's running broker, or None (a stale pid file is ignored)."""
        try:
            pid = int(self.config.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if self._is_our_broker(pid) else None

    def _is_our_broker(self, pid: int) -> bool:
        self._reap()
        cmdline = _cmdline(pid)
        if cmdline is None:
            return False
        return "kafka.Kafka" in cmdline and str(self.config.properties_file) in cmdline

    def _reap(self) -> None:
        """Collect our own exited child so it does not linger as a zombie."""
        if self._child is None:
            return
        try:
            done, _ = os.waitpid(self._child, os.WNOHANG)
        except ChildProcessError:
            done = self._child
        if done:
            self._child = None

    # -- lifecycle ------------------------------------------------------------------------
    def format_storage(self) -> bool:
        """Format the KRaft log directory unless it already is; True when it formatted."""
        cfg = self.config
        if (cfg.log_dirs / "meta.properties").is_file():
            return False
        java = find_java()
        cmd = [java, "-Xmx256m", "-cp", cfg.classpath, "kafka.tools.StorageTool", "format"]
        cmd += ["-t", new_cluster_id(), "-c", str(cfg.properties_file), "--ignore-formatted"]
        if cfg.sasl_ssl is not None:
            cmd += cfg.sasl_ssl.scram_arguments()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            raise BrokerError(
                f"formatting KRaft storage in {cfg.log_dirs} failed: "
                f"{(proc.stdout + proc.stderr).strip()[-2000:]}"
            )
        return True

    def start(self, *, timeout_s: float = 90.0, detach: bool = False) -> int:
        """Start the broker and wait until it answers; return its pid.

        ``detach`` puts the JVM in its own session so it outlives this process (the CLI);
        otherwise it shares the caller's session and is stopped by :meth:`stop`.
        Raises :class:`BrokerError` if it is already running, a port is taken, Java is
        missing, or it does not answer within ``timeout_s``.
        """
        cfg = self.config
        running = self.pid()
        if running is not None:
            raise BrokerError(f"a broker is already running (pid {running}) on {cfg.bootstrap}")
        java = find_java()
        extra = () if cfg.sasl_ssl is None else (cfg.sasl_ssl.port,)
        for port in (cfg.port, cfg.controller_port, *extra):
            if port_in_use(cfg.host, port):
                raise BrokerError(
                    f"{cfg.host}:{port} is already in use by another process; stop it, or pick "
                    "free ports with FRESHNESS_KAFKA_BOOTSTRAP=127.0.0.1:<port> "
                    "(the controller uses <port>+1)."
                )
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        cfg.properties_file.write_text(render_properties(cfg))
        self.format_storage()
        pid = self._spawn(java, detach=detach)
        try:
            self._wait_ready(pid, timeout_s)
        except BaseException:
            self.stop()
            raise
        return pid

    def _spawn(self, java: str, *, detach: bool) -> int:
        cfg = self.config
        if cfg.log_file.exists():
            cfg.log_file.replace(cfg.log_file.with_name(cfg.log_file.name + ".1"))
        argv = [java, *cfg.jvm_opts, "-cp", cfg.classpath, "kafka.Kafka", str(cfg.properties_file)]
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(cfg.log_file), flags, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ]
        pid = os.posix_spawn(java, argv, os.environ, file_actions=actions, setsid=detach)
        self._child = pid
        cfg.pid_file.write_text(f"{pid}\n")
        return pid

    def _wait_ready(self, pid: int, timeout_s: float) -> None:
        cfg = self.config
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self._alive(pid):
                raise BrokerError(
                    f"the broker exited while starting; its log {cfg.log_file} ends with:\n"
                    + log_tail(cfg.log_file)
                )
            if answers(cfg.bootstrap, timeout_s=3.0):
                return
            time.sleep(0.25)
        raise BrokerError(
            f"the broker did not answer on {cfg.bootstrap} within {timeout_s:.0f} s; "
            f"its log {cfg.log_file} ends with:\n{log_tail(cfg.log_file)}"
        )

    def _alive(self, pid: int) -> bool:
        self._reap()
        if pid == self._child:  # our child: exited means reaped, whatever /proc shows yet
            return True
        cmdline = _cmdline(pid)
        return cmdline is not None and "kafka.Kafka" in cmdline

    def stop(self, *, timeout_s: float = 30.0) -> int | None:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout_s``); return its pid.

        Returns None when nothing was running. Removes the pid file either way.
        """
        pid = self.pid()
        if pid is None and self._child is not None and self._alive(self._child):
            pid = self._child
        if pid is not None:
            self._signal(pid, signal.SIGTERM)
            if not self._wait_gone(pid, timeout_s):
                self._signal(pid, signal.SIGKILL)
                if not self._wait_gone(pid, 10.0):
                    raise BrokerError(f"broker pid {pid} survived SIGKILL; kill it by hand")
        self.config.pid_file.unlink(missing_ok=True)
        return pid

    @staticmethod
    def _signal(pid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)

    def _wait_gone(self, pid: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self._alive(pid):
                return True
            time.sleep(0.1)
        return not self._alive(pid)


def _cmdline(pid: int) -> str | None:
    """Command line of a live (non-zombie) process, or None."""
    proc = Path(f"/proc/{pid}")
    if Path("/proc/self").exists():
        try:
            raw = (proc / "cmdline").read_bytes()
        except OSError:
            return None
        return raw.replace(b"\0", b" ").decode(errors="replace") or None  # zombie: empty
    try:
        out = subprocess.run(
            ["ps", "-p", str(pid), "-o", "stat=,command="],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        return None
    if not out or out.startswith("Z"):
        return None
    return out
