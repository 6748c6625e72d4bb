"""What the worker sets up around Faust for its throughput and memory (no broker)."""

from __future__ import annotations

import gc
from pathlib import Path

from streams.flows.config import load_flows
from streams.settings import Settings
from streams.worker.app import GC_THRESHOLDS, TABLE_NAME, build_worker, tune_gc

MiB = 1024 * 1024


def test_the_table_store_holds_a_few_mib_per_partition_not_faust_s_defaults(
    tmp_path: Path,
) -> None:
    worker = build_worker(Settings(home=tmp_path), load_flows(None))
    options = worker.app.tables[TABLE_NAME].data.rocksdb_options
    # Faust's defaults: 3 memtables of 64 MiB and a 2 GiB block cache per partition
    assert options.write_buffer_size * options.max_write_buffer_number <= 4 * MiB
    assert options.block_cache_size <= 8 * MiB


def test_tune_gc_collects_young_garbage_less_often_and_freezes_start_up() -> None:
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert GC_THRESHOLDS[0] >= 50_000
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
