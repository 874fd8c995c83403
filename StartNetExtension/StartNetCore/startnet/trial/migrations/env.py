"""Alembic environment of the trial database (run by :func:`startnet.trial.db.upgrade`).

The caller passes an open connection in ``config.attributes["connection"]`` (so the migration
runs in the caller's transaction and lock); with only a URL (``alembic -x url=...``) it makes
its own engine.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from startnet.trial.models import Base

config = context.config


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    engine = create_engine(url)
    with engine.connect() as conn:
        _run(conn)


if context.is_offline_mode():
    raise SystemExit("startnet trial migrations run online only (give a database connection)")
run_migrations_online()
