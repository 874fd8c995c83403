"""Alembic migrations of the trial database (a package so that they ship in the wheel).

``startnet trial init`` (:func:`startnet.trial.db.upgrade`) runs ``upgrade head``; the schema
is never created any other way, and a test checks that the migrated schema equals the ORM
metadata (so a model change without a migration fails the suite). To add a revision after
changing :mod:`startnet.trial.models`::

    from alembic import command
    from sqlalchemy import create_engine
    from startnet.trial.db import alembic_config, upgrade

    engine = create_engine("sqlite:////tmp/scratch.db")
    upgrade(engine)                      # scratch database at the current head
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.revision(cfg, message="what changed", autogenerate=True)

then review the generated file in ``versions/`` (SQLite alterations run as batch operations).
"""
