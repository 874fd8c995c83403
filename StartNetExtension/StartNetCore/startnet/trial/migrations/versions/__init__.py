"""Alembic revisions of the trial database."""
