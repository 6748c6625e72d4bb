"""``alertmanager`` (session): a real Alertmanager (the binary ``make alertmanager`` builds)
on a free loopback port, with a null receiver, ``resolve_timeout: 1s``, a temporary storage
directory and clustering off; stopped at the end. When the binary is missing or it does not
become ready, every test that uses it fails with the reason: it never skips."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.testing.peers.alertmanager import VERSION, AlertmanagerProcess, binary_path

ROOT = Path(__file__).resolve().parents[3]
RESOLVE_TIMEOUT = "1s"


@pytest.fixture(scope="session")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlertmanagerProcess]:
    binary = binary_path(ROOT)
    if not binary.is_file():
        pytest.fail(
            f"Alertmanager {VERSION} is not built ({binary} is missing): run `make alertmanager`",
            pytrace=False,
        )
    workdir = tmp_path_factory.mktemp("alertmanager")
    process = AlertmanagerProcess(binary, workdir, resolve_timeout=RESOLVE_TIMEOUT)
    try:
        process.start()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield process
    finally:
        process.stop()
