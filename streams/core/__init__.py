"""The pure core: flow model, join state machine, lag math, deadlines and watermarks.

Nothing here imports Kafka, Faust or FastAPI, and the time is always an argument, so the
same code runs in the worker, in replay and in unit tests.
"""
