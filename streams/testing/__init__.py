"""Helpers shared openly by tests, the simulator and the benchmarks (record builders,
scripted scenarios, process runners, local HTTP peers). Product code never imports it."""
