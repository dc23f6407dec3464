-- Who may use which of our tables (docs/deploy.md, "Database roles"). Run as signpost_owner (or a
-- superuser) after every `python -m actions.directory ready`, since a migration may add a table;
-- running it again changes nothing. The compose file's `grants` service does; on a host:
--
--   psql -v ON_ERROR_STOP=1 "postgresql://signpost_owner:PASSWORD@db.internal:5432/signpost" -f deploy/postgres/grants.sql
--
-- Each table is listed by the part of the code that owns it (tests/test_deploy.py checks the lists
-- against actions/models.py and bot/models.py), so a new table gets no rights until it is added here.
-- Rasa's `events` is not here: roles.sql gave the adapter its rights on it, Rasa owns it.

\if :{?actions_role}
\else
  \set actions_role signpost_actions
\endif
\if :{?adapter_role}
\else
  \set adapter_role signpost_adapter
\endif

BEGIN;

-- The directory (actions/models.py): the action server only reads it; the owner imports it.
GRANT SELECT ON TABLE
    attribute,
    location,
    organization,
    phone,
    schedule,
    service,
    service_area,
    service_at_location,
    taxonomy_term
TO :"actions_role";

-- The cases (bot/models.py): the adapter's alone.
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE
    case_event,
    case_message,
    chat_trail,
    handled_update,
    handover_case,
    moderator_action,
    relay_message,
    user_block
TO :"adapter_role";

-- The case tables' id sequences, so the adapter can insert.
SELECT format('GRANT USAGE ON SEQUENCE %s TO %I', sequence, :'adapter_role')
FROM unnest(ARRAY[
    'case_event', 'case_message', 'chat_trail', 'handled_update',
    'handover_case', 'moderator_action', 'relay_message', 'user_block'
]) AS owned(name)
CROSS JOIN LATERAL (
    SELECT pg_get_serial_sequence(quote_ident(owned.name), attname) AS sequence
    FROM pg_attribute
    WHERE attrelid = quote_ident(owned.name)::regclass AND attnum > 0 AND NOT attisdropped
) AS found
WHERE sequence IS NOT NULL
\gexec

-- Which migration the database is at: both may check it at start-up.
GRANT SELECT ON TABLE alembic_version TO :"actions_role", :"adapter_role";

COMMIT;
