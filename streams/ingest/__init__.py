"""Ingest: turn raw input records into flow events, or into quarantine records."""
