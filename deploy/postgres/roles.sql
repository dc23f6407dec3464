-- Signpost's database roles (docs/deploy.md, "Database roles"). Run once, as a superuser, in the
-- database the processes share, before anything else connects: the postgres image runs it from
-- /docker-entrypoint-initdb.d when it creates the database; on a host, run it with psql 15 or newer:
--
--   OWNER_DB_PASSWORD=... RASA_DB_PASSWORD=... ACTIONS_DB_PASSWORD=... ADAPTER_DB_PASSWORD=... \
--     psql -v ON_ERROR_STOP=1 -d signpost -f deploy/postgres/roles.sql
--
-- Four roles, one per process, each with its own password (from the environment, never in this file):
--   signpost_owner    owns our tables: the migrations (`python -m actions.directory ready`) run as it,
--                     and deploy/postgres/grants.sql, run after them, hands out the rights below.
--   signpost_rasa     Rasa's tracker store: creates and owns `events` on its first start, sees nothing else.
--   signpost_actions  the action server: reads the directory tables, nothing else.
--   signpost_adapter  the Telegram adapter: reads and writes the case tables, and reads and deletes
--                     Rasa's `events` (/forget and the retention purge), never changes them otherwise.
-- The names can be changed with psql variables (-v owner_role=... etc.); the tests do, in a database
-- of their own.

\if :{?owner_role}
\else
  \set owner_role signpost_owner
\endif
\if :{?rasa_role}
\else
  \set rasa_role signpost_rasa
\endif
\if :{?actions_role}
\else
  \set actions_role signpost_actions
\endif
\if :{?adapter_role}
\else
  \set adapter_role signpost_adapter
\endif

\getenv owner_password OWNER_DB_PASSWORD
\getenv rasa_password RASA_DB_PASSWORD
\getenv actions_password ACTIONS_DB_PASSWORD
\getenv adapter_password ADAPTER_DB_PASSWORD
\if :{?owner_password}
\else
  \warn 'Set OWNER_DB_PASSWORD, RASA_DB_PASSWORD, ACTIONS_DB_PASSWORD and ADAPTER_DB_PASSWORD.'
  SELECT 'a password is missing'::int;
\endif
\if :{?rasa_password}
\else
  \warn 'Set RASA_DB_PASSWORD.'
  SELECT 'a password is missing'::int;
\endif
\if :{?actions_password}
\else
  \warn 'Set ACTIONS_DB_PASSWORD.'
  SELECT 'a password is missing'::int;
\endif
\if :{?adapter_password}
\else
  \warn 'Set ADAPTER_DB_PASSWORD.'
  SELECT 'a password is missing'::int;
\endif

BEGIN;

CREATE ROLE :"owner_role" LOGIN PASSWORD :'owner_password';
CREATE ROLE :"rasa_role" LOGIN PASSWORD :'rasa_password';
CREATE ROLE :"actions_role" LOGIN PASSWORD :'actions_password';
CREATE ROLE :"adapter_role" LOGIN PASSWORD :'adapter_password';

-- Only these four (and superusers) connect; nobody else gets anything by default.
SELECT current_database() AS database \gset
REVOKE ALL ON DATABASE :"database" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"database" TO :"owner_role", :"rasa_role", :"actions_role", :"adapter_role";

-- The schema: the owner creates our tables (the migrations), Rasa creates `events` (its tracker
-- store makes the table on its first start, as it does with no roles); the others only look up names.
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO :"owner_role", :"rasa_role";
GRANT USAGE ON SCHEMA public TO :"actions_role", :"adapter_role";

-- What Rasa creates (`events` and its id sequence) the adapter may read and delete, from the moment
-- Rasa creates it; grants.sql cannot do that, as it may run before Rasa's first start.
ALTER DEFAULT PRIVILEGES FOR ROLE :"rasa_role" IN SCHEMA public GRANT SELECT, DELETE ON TABLES TO :"adapter_role";

COMMIT;
