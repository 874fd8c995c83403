"""Alembic migration environment of the trial database (package so it ships in the wheel)."""
