"""Shared pytest fixtures (each area imports its own fixture module here)."""

from __future__ import annotations

from trial_postgres import postgres_server, trial_db_url  # noqa: F401  (trial tracker: SQLite + PostgreSQL)
