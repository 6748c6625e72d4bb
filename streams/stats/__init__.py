"""Per-flow statistics: mergeable lag sketches and counters published by workers."""
