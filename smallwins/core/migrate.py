"""Run the Alembic migrations shipped inside the package against an engine."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Engine

from smallwins.core.store import WRITE_OPTION

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


#: Key of the PostgreSQL advisory lock held while migrating ("smallwins" in ASCII, as a bigint).
MIGRATION_LOCK = 0x736D616C6C77696E


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``; a no-op on an up-to-date database.

    Several workers may start at once on a fresh database: on PostgreSQL they take turns under
    an advisory lock (the first migrates, the others then find nothing to do). On SQLite the
    migration runs in a writing transaction (BEGIN IMMEDIATE): it takes the file's write lock
    before it reads the schema version, so the others wait for it (busy timeout) and then read
    the version it wrote. A deferred BEGIN would let them all read "empty" and collide.
    """
    if engine.dialect.name != "postgresql":
        command.upgrade(alembic_config(engine.execution_options(**{WRITE_OPTION: True})), revision)
        return
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
        try:
            command.upgrade(alembic_config(engine), revision)
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
            connection.commit()
