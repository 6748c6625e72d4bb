"""Contenders of other stacks that the benchmarks run side by side with the worker."""
