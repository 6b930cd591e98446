"""Prefect flows around the pure stage functions in ``components/``, plus the CLI and tracking."""
