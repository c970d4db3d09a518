"""Alembic environment: the engine comes from smallwins (``config.attributes['engine']``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from smallwins.core.store import Base

config = context.config
engine = config.attributes.get("engine")
if engine is None:  # the plain `alembic` command line: take the URL from alembic.ini
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "sqlite:///smallwins.db")

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        # SQLite runs DDL in transactions too: all revisions in one, so a process that waited for
        # the write lock reads the version the first one finished with, not one half-way
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
