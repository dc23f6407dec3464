"""Each process sees only its own tables in PostgreSQL (issue 14, A8; deploy/postgres/, docs/deploy.md).

Offline: grants.sql names every table our models define, each under the part of the code that owns it.
With TEST_DATABASE_URL (a superuser, e.g. postgresql://postgres@127.0.0.1:5432/test): a throwaway
database gets the roles (roles.sql, with role names of its own), the migrations as the owner, Rasa's
`events` made by Rasa's own tracker store as the Rasa role, and the grants (grants.sql); then each role
tries what it may and may not do. The database and the roles are dropped at the end.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import errors, sql
from sqlalchemy.engine import make_url

import bot.models  # noqa: F401 - the case tables join the shared metadata
from actions.db import upgrade
from actions.models import Base
from scripts.stack import RASA, ROOT

ROLES_SQL = ROOT / "deploy" / "postgres" / "roles.sql"
GRANTS_SQL = ROOT / "deploy" / "postgres" / "grants.sql"
PASSWORD_SETTINGS = ("OWNER_DB_PASSWORD", "RASA_DB_PASSWORD", "ACTIONS_DB_PASSWORD", "ADAPTER_DB_PASSWORD")


def tables_of(module: str) -> set[str]:
    """Return the tables the models of one module define."""
    return {str(m.class_.__tablename__) for m in Base.registry.mappers if m.class_.__module__ == module}


def granted(to: str) -> set[str]:
    """Return the tables grants.sql lists in its GRANT ... ON TABLE ... TO :"<to>" statement."""
    text = re.sub(r"--.*", "", GRANTS_SQL.read_text(encoding="utf-8"))
    found = re.findall(rf"GRANT [A-Z, ]+ ON TABLE\s+([\w,\s]+?)\s+TO :\"{to}\";", text)
    assert len(found) == 1, f"grants.sql should give {to} one list of tables"
    return {name.strip() for name in found[0].split(",")}


def test_grants_give_the_action_server_the_directory_and_the_adapter_the_case_tables() -> None:
    directory, cases = tables_of("actions.models"), tables_of("bot.models")
    assert directory and cases and directory | cases == set(Base.metadata.tables)
    assert granted("actions_role") == directory
    assert granted("adapter_role") == cases
    text = GRANTS_SQL.read_text(encoding="utf-8")
    sequences = re.search(r"FROM unnest\(ARRAY\[(.*?)\]\)", text, re.DOTALL)
    assert sequences and set(re.findall(r"'(\w+)'", sequences.group(1))) == cases
    assert "events" not in text.replace("`events`", "")  # Rasa's table: roles.sql covers it


def test_roles_sql_reads_every_password_from_the_environment() -> None:
    text = ROLES_SQL.read_text(encoding="utf-8")
    for setting in PASSWORD_SETTINGS:
        assert re.search(rf"^\\getenv \w+ {setting}$", text, re.MULTILINE), setting
    assert "PASSWORD '" not in text  # no password is written into the file


# ---------------------------------------------------------------- against PostgreSQL


@dataclass(frozen=True)
class Roles:
    """A throwaway database with the four roles, migrated, with Rasa's table and the grants."""

    server: str  # a superuser URL (libpq form) for the new database
    names: dict[str, str]  # owner, rasa, actions, adapter -> role name

    def url(self, role: str) -> str:
        """A libpq URL for the database as one of the roles (the server trusts local connections)."""
        url = make_url(self.server).set(username=self.names[role], password=f"pw-{role}")
        return url.render_as_string(hide_password=False)

    def run(self, role: str, statement: str | sql.Composed) -> list[tuple[object, ...]]:
        """Run one statement as the role; return its rows."""
        query = statement if isinstance(statement, sql.Composed) else sql.SQL(statement)
        with psycopg.connect(self.url(role), autocommit=True) as connection:
            cursor = connection.execute(query)
            return cursor.fetchall() if cursor.description else []


def count(table: str) -> sql.Composed:
    """SELECT count(*) FROM the table."""
    return sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))


def psql(url: str, script: Path, variables: dict[str, str], env: dict[str, str] | None = None) -> None:
    """Run a script with psql as the container (and a host's operator) does; fail with its output."""
    program = shutil.which("psql")
    assert program is not None
    args = [arg for name, value in variables.items() for arg in ("-v", f"{name}={value}")]
    done = subprocess.run(
        [program, "-X", "-q", "-v", "ON_ERROR_STOP=1", *args, "-f", str(script), url],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def make_events_as_rasa(url: str) -> None:
    """Start Rasa's own SQL tracker store once as Rasa's role: it creates `events`, as on its first start."""
    python = RASA.with_name("python")
    script = (
        "import sys\n"
        "from rasa.core.tracker_store import SQLTrackerStore\n"
        "SQLTrackerStore(dialect='postgresql', host=sys.argv[1])\n"
    )
    done = subprocess.run(
        [str(python), "-c", script, url],
        cwd=ROOT,
        env={**os.environ, "SQLALCHEMY_SILENCE_UBER_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def roles() -> Iterator[Roles]:
    server = os.environ.get("TEST_DATABASE_URL")
    if not server:
        pytest.skip("TEST_DATABASE_URL is not set: the role test needs a PostgreSQL superuser")
    if shutil.which("psql") is None:
        pytest.skip("psql is not installed: roles.sql and grants.sql are psql scripts")
    if not RASA.with_name("python").exists():
        pytest.skip("no Rasa environment: run `make setup` (Rasa's own tracker store makes `events`)")
    admin = make_url(server).set(drivername="postgresql")
    tag = uuid.uuid4().hex[:10]
    database = f"signpost_roles_{tag}"
    names = {role: f"t{tag}_{role}" for role in ("owner", "rasa", "actions", "adapter")}
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    made = Roles(admin.set(database=database).render_as_string(hide_password=False), names)
    try:
        passwords = {f"{role.upper()}_DB_PASSWORD": f"pw-{role}" for role in names}
        psql(made.server, ROLES_SQL, {f"{role}_role": name for role, name in names.items()}, passwords)
        owner = make_url(made.url("owner")).set(drivername="postgresql+psycopg")
        upgrade(owner.render_as_string(hide_password=False))
        make_events_as_rasa(made.url("rasa"))
        grant_vars = {"actions_role": names["actions"], "adapter_role": names["adapter"]}
        psql(made.url("owner"), GRANTS_SQL, grant_vars)
        psql(made.url("owner"), GRANTS_SQL, grant_vars)  # after every migration: a second run is harmless
        made.run(
            "owner",
            "INSERT INTO organization (id, name, extra) VALUES ('org-1', 'Childline', '{}')",
        )
        made.run(
            "rasa",
            "INSERT INTO events (sender_id, type_name, timestamp, data) "
            "VALUES ('ref-1', 'user', 1, '{\"text\": \"what a person wrote\"}')",
        )
        yield made
    finally:
        with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as connection:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            connection.execute(drop.format(sql.Identifier(database)))
            for name in names.values():
                connection.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def denied(roles: Roles, role: str, statement: str | sql.Composed) -> None:
    with pytest.raises(errors.InsufficientPrivilege, match="permission denied"):
        roles.run(role, statement)


def test_the_action_server_reads_the_directory_and_nothing_else(roles: Roles) -> None:
    assert roles.run("actions", "SELECT name FROM organization") == [("Childline",)]
    assert roles.run("actions", "SELECT count(*) FROM service_at_location") == [(0,)]
    denied(roles, "actions", "SELECT count(*) FROM events")
    for table in sorted(tables_of("bot.models")):
        denied(roles, "actions", count(table))
    denied(roles, "actions", "UPDATE organization SET name = 'changed'")
    denied(roles, "actions", "DELETE FROM organization")
    denied(roles, "actions", "CREATE TABLE mine (id int)")


def test_rasa_owns_events_and_sees_none_of_our_tables(roles: Roles) -> None:
    assert roles.run("rasa", "SELECT count(*) FROM events") == [(1,)]
    for table in sorted(tables_of("actions.models") | tables_of("bot.models")):
        denied(roles, "rasa", count(table))


def test_the_adapter_owns_the_case_tables_and_only_reads_and_deletes_rasas_events(roles: Roles) -> None:
    for table in sorted(tables_of("bot.models")):
        assert roles.run("adapter", count(table)) == [(0,)]
    roles.run("adapter", "SELECT nextval(pg_get_serial_sequence('handover_case', 'id'))")  # it may insert
    denied(roles, "adapter", "SELECT count(*) FROM organization")
    denied(roles, "adapter", "UPDATE events SET data = ''")
    denied(roles, "adapter", "INSERT INTO events (sender_id, type_name) VALUES ('x', 'user')")
    assert roles.run("adapter", "SELECT count(*) FROM events WHERE sender_id = 'ref-1'") == [(1,)]
    roles.run("adapter", "DELETE FROM events WHERE sender_id = 'ref-1'")  # /forget
    assert roles.run("rasa", "SELECT count(*) FROM events") == [(0,)]


def test_the_owner_who_migrates_cannot_read_rasas_conversations(roles: Roles) -> None:
    denied(roles, "owner", "SELECT count(*) FROM events")
