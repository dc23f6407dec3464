"""handover_case: a case number is never used twice (SQLite AUTOINCREMENT; PostgreSQL's sequence already)

Without AUTOINCREMENT, SQLite gives a new row the largest id + 1, so after /forget deleted the newest case
the next case got its number again. SQLite cannot add AUTOINCREMENT to a table, so batch mode rebuilds it
(env.py turns foreign keys off meanwhile, so the cases' events and lines stay).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 06:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return  # PostgreSQL: the id's sequence never hands a number out twice
    with op.batch_alter_table(
        "handover_case", recreate="always", table_kwargs={"sqlite_autoincrement": True}
    ):
        pass


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("handover_case", recreate="always"):
        pass
