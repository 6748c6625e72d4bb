"""Helpers shared openly by tests, the simulator and the benchmarks: record builders,
scripted scenarios, process runners, local HTTP peers. The monitor itself (worker, API,
alerter, replay) never imports it."""
