"""The production profile's reference files (deploy/, docs/deploy.md) stay true to the code.

Offline: the compose file, the Dockerfile, nginx.conf, the systemd units and the deploy page are
parsed and checked against what the code reads (bot/settings.py, actions/settings.py, the migrations,
endpoints.prod.yml, .env.example) and against how the Makefile builds and runs things.
`systemd-analyze verify` runs where it is installed.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from actions.directory import parser as directory_parser
from actions.settings import load_settings as load_action_settings
from bot.app import CHECK_WAITING_SECONDS, MAX_UPDATE_BYTES, PURGE_SECONDS
from bot.settings import load_settings as load_adapter_settings
from bot.web.app import FORM_WAITS_SECONDS, HEARTBEAT_SECONDS, MAX_BODY_BYTES, POLL_SECONDS
from bot.web.sessions import COOKIE

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
NGINX = DEPLOY / "nginx.conf"
UNITS = DEPLOY / "systemd"
DOC = ROOT / "docs" / "deploy.md"
MAKEFILE = ROOT / "Makefile"
INSTALL_DIR = "/opt/signpost/"

ENV_NAME = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b")
READ_FROM_ENV = re.compile(r"(?:env|environ)(?:\.get\(\s*|\[|,\s*)\"([A-Z][A-Z0-9_]+)\"")

# Settings of the programs we run rather than of our code, each checked against that program's
# source where its environment is installed (test_other_programs_settings_are_real).
RASA_OWN = {
    "RASA_TELEMETRY_ENABLED": "rasa/telemetry.py",
    "SQL_POOL_SIZE": "rasa/core/constants.py",
    "SQL_MAX_OVERFLOW": "rasa/core/constants.py",
    "SANIC_WORKERS": "rasa/constants.py",  # worker processes on one port (needs a shared lock store)
}
RASA_SDK_OWN = {"SANIC_HOST": "rasa_sdk/endpoint.py"}
POSTGRES_IMAGE = {"POSTGRES_USER", "POSTGRES_DB", "POSTGRES_PASSWORD"}
# Each process's database role's password (deploy/postgres/roles.sql reads them on the first start).
ROLE_PASSWORDS = {"OWNER_DB_PASSWORD", "RASA_DB_PASSWORD", "ACTIONS_DB_PASSWORD", "ADAPTER_DB_PASSWORD"}
# The role each process connects as (deploy/postgres/roles.sql).
ROLE_OF = {
    "migrate": "signpost_owner",
    "rasa": "signpost_rasa",
    "actions": "signpost_actions",
    "adapter": "signpost_adapter",
}
# Not a setting of any program: systemd units give each process a home in its state directory.
HOME = {"HOME"}

# The adapter refuses to start without these in webhook mode (bot/settings.py) ...
ADAPTER_REFUSES_WITHOUT = {
    "TELEGRAM_BOT_TOKEN",
    "MODERATOR_CHAT_ID",
    "MODERATOR_USER_IDS",
    "PSEUDONYM_KEY",
    "TRANSCRIPT_KEYS",
    "WEBHOOK_URL",
    "WEBHOOK_SECRET",
}
# ... and would quietly use a local SQLite file or localhost without these.
ADAPTER_DEFAULTS_WRONG_IN_PRODUCTION = {"DATABASE_URL", "TRACKER_STORE_URL", "RASA_URL"}
ADAPTER_REQUIRED = ADAPTER_REFUSES_WITHOUT | ADAPTER_DEFAULTS_WRONG_IN_PRODUCTION
SECRETS = {"TELEGRAM_BOT_TOKEN", "PSEUDONYM_KEY", "TRANSCRIPT_KEYS", "WEBHOOK_SECRET"}
FAKE_SECRETS = {
    "TELEGRAM_BOT_TOKEN": "123456:fake-token",
    "PSEUDONYM_KEY": "k" * 64,
    "TRANSCRIPT_KEYS": "A" * 43 + "=",
    "WEBHOOK_SECRET": "s" * 64,
}
FAKE_TELEGRAM = {
    "MODERATOR_CHAT_ID": "-1001234567890",
    "MODERATOR_USER_IDS": "11111111",
    "WEBHOOK_URL": "https://bot.example.org/telegram",
}
FAKE_INTERPOLATION = {name: f"pw-{name.lower()}" for name in {"POSTGRES_PASSWORD"} | ROLE_PASSWORDS}


# ---------------------------------------------------------------- what the code reads


def reads(*paths: Path) -> set[str]:
    """Return the environment variables these modules read."""
    return {name for path in paths for name in READ_FROM_ENV.findall(path.read_text(encoding="utf-8"))}


def endpoint_variables(path: Path) -> set[str]:
    """Return the ${VARIABLES} an endpoints file makes Rasa read."""
    return set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)\}", path.read_text(encoding="utf-8")))


def makefile() -> str:
    return MAKEFILE.read_text(encoding="utf-8")


def make_exports() -> set[str]:
    """Return what the Makefile exports to every process it starts."""
    return set(re.findall(r"^\s*export ([A-Z][A-Z0-9_]*)\s*:?=", makefile(), re.MULTILINE))


def make_variable(name: str) -> str:
    """Return a simple `NAME := value` of the Makefile."""
    match = re.search(rf"^{name} := (.+)$", makefile(), re.MULTILINE)
    assert match, f"the Makefile no longer defines {name}"
    return match.group(1).strip()


def expand_make(text: str) -> str:
    """Replace $(VARIABLE) with the Makefile's value and $$ with $."""
    expanded = re.sub(r"\$\(([A-Z_]+)\)", lambda m: make_variable(m.group(1)), text)
    return expanded.replace("$$", "$")


def recipe_line(marker: str) -> str:
    """Return the Makefile recipe line (continuations joined) that contains `marker`."""
    joined = re.sub(r"\\\n\s*", " ", makefile())
    lines = [line.strip() for line in joined.splitlines() if marker in line]
    assert lines, f"the Makefile has no line with {marker!r}"
    return lines[0]


PROD_ENDPOINTS = endpoint_variables(ROOT / "endpoints.prod.yml")
EXAMPLE = {
    m.group(1): m.group(2)
    for m in re.finditer(r"^([A-Z][A-Z0-9_]*)=(.*)$", (ROOT / ".env.example").read_text(), re.MULTILINE)
}
ADAPTER_READS = reads(ROOT / "bot" / "settings.py", ROOT / "actions" / "settings.py")
ACTIONS_READS = reads(ROOT / "actions" / "settings.py")
MIGRATIONS_READ = reads(ROOT / "actions" / "settings.py", *sorted((ROOT / "migrations").rglob("*.py")))
TESTS_READ = reads(*(p for p in (ROOT / "tests").rglob("*.py") if p.name != "test_deploy.py"))
# What the Makefile exports to every process, less the settings it only gives a default.
EVERYWHERE = (make_exports() - set(EXAMPLE)) | HOME
PROCESS_READS = {
    "rasa": PROD_ENDPOINTS | set(RASA_OWN) | EVERYWHERE,
    "actions": ACTIONS_READS | set(RASA_SDK_OWN) | EVERYWHERE,
    "adapter": ADAPTER_READS | EVERYWHERE,
    "migrate": MIGRATIONS_READ | EVERYWHERE,
}
ALL_KNOWN = (
    set().union(*PROCESS_READS.values())
    | set(EXAMPLE)
    | endpoint_variables(ROOT / "endpoints.yml")
    | POSTGRES_IMAGE
    | ROLE_PASSWORDS
    | TESTS_READ  # the deploy page says which tests need which services
)


def test_the_settings_scraped_from_the_code_include_the_known_ones() -> None:
    assert {
        "PSEUDONYM_KEY",
        "TRANSCRIPT_KEYS",
        "WEBHOOK_SECRET",
        "RASA_URL",
        "TRACKER_STORE_URL",
    } <= ADAPTER_READS
    assert {"DATABASE_URL"} == ACTIONS_READS
    assert "TRANSCRIPT_KEYS" in MIGRATIONS_READ
    assert {
        "ACTION_ENDPOINT_URL",
        "TRACKER_STORE_URL",
        "REDIS_HOST",
        "REDIS_PORT",
        "REDIS_DB",
    } == PROD_ENDPOINTS
    assert {"HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"} <= make_exports()
    assert ADAPTER_REQUIRED <= ADAPTER_READS and set(EXAMPLE) >= ADAPTER_REQUIRED


def site_packages(venv: str) -> Path | None:
    found = sorted((ROOT / venv).glob("lib/python3*/site-packages"))
    return found[0] if found else None


@pytest.mark.parametrize(("venv", "names"), [(".venv-rasa", RASA_OWN), (".venv", RASA_SDK_OWN)])
def test_other_programs_settings_are_real(venv: str, names: dict[str, str]) -> None:
    packages = site_packages(venv)
    if packages is None:
        pytest.skip(f"no {venv}: run `make setup`")
    for name, module in names.items():
        assert f'"{name}"' in (packages / module).read_text(encoding="utf-8"), f"{name} not in {module}"


# ---------------------------------------------------------------- commands


def is_port(value: str) -> bool:
    """A port number, or a systemd template's instance name (which is the port)."""
    return value.isdigit() or value == "%i"


def check_command(argv: list[str]) -> None:
    """Fail unless argv runs one of our modules, rasa-sdk or Rasa the way the Makefile does."""
    program = Path(argv[0]).name
    if program == "python":
        assert argv[1] == "-m", argv
        check_python_module(argv[2], argv[3:])
    elif program == "rasa":
        check_rasa(argv[1], argv[2:])
    else:
        raise AssertionError(f"unexpected program in {argv}")


def check_python_module(module: str, args: list[str]) -> None:
    if module == "rasa_sdk":
        assert "rasa-sdk==" in (ROOT / "requirements" / "app.txt").read_text()
        makes = shlex.split(expand_make(recipe_line("-m rasa_sdk")))
        assert set(flag for flag in args if flag.startswith("--")) <= set(makes), args
        package = args[args.index("--actions") + 1]
        assert (ROOT / package / "__init__.py").is_file()
        assert is_port(args[args.index("--port") + 1])
        return
    path = ROOT / Path(*module.split("."))
    assert (path / "__main__.py").is_file() or path.with_suffix(".py").is_file(), f"no module {module}"
    if module == "actions.directory":
        directory_parser().parse_args(args)  # exits (fails the test) on an unknown command
    else:
        assert not args, f"{module} takes no arguments here: {args}"


def check_rasa(command: str, args: list[str]) -> None:
    assert "rasa==" in (ROOT / "requirements" / "rasa.txt").read_text()
    if command == "train":
        made = shlex.split(expand_make(recipe_line("$(RASA) train").split("||")[0]))
        assert args == made[made.index("train") + 1 :], "train the way `make train` does"
        return
    assert command == "run", command
    runs = shlex.split(expand_make(recipe_line("$(RASA) run")))
    assert {a for a in args if a.startswith("--")} <= {a for a in runs if a.startswith("--")}, args
    option = dict(zip(args[::2], args[1::2], strict=False))
    assert option["--model"] == make_variable("MODEL")
    assert option["--endpoints"] == "endpoints.prod.yml"
    assert (ROOT / option["--credentials"]).is_file()
    assert is_port(option["--port"])


# ---------------------------------------------------------------- compose


def interpolate(value: str) -> str:
    """Replace compose's ${NAME}, ${NAME:?message} and ${NAME:-default} with test values."""
    return re.sub(r"\$\{(\w+)[^}]*\}", lambda m: FAKE_INTERPOLATION[m.group(1)], value)


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def environment(service: str) -> dict[str, str]:
    return {k: interpolate(str(v)) for k, v in (services()[service].get("environment") or {}).items()}


def process_of(service: str) -> str:
    """Return which of our processes a compose service runs."""
    known = {"train": "rasa", "lb": "nginx", "postgres": "postgres", "redis": "redis", "grants": "psql"}
    return known.get(service, service)


def env_file_values() -> dict[str, str]:
    """What the adapter's env file holds once filled in: .env.example plus the secrets and ids."""
    return {**EXAMPLE, **FAKE_SECRETS, **FAKE_TELEGRAM}


def test_the_compose_file_interpolates_only_the_database_passwords() -> None:
    assert set(re.findall(r"\$\{(\w+)", COMPOSE.read_text())) == {"POSTGRES_PASSWORD"} | ROLE_PASSWORDS


def test_every_setting_in_the_compose_file_is_one_its_process_reads() -> None:
    for name, service in services().items():
        given = set(service.get("environment") or {})
        process = process_of(name)
        if process == "postgres":
            assert given <= POSTGRES_IMAGE | ROLE_PASSWORDS
        elif process in PROCESS_READS:
            assert given <= PROCESS_READS[process], f"{name}: {given - PROCESS_READS[process]}"
        else:
            assert not given, name


def test_rasa_gets_every_setting_endpoints_prod_reads() -> None:
    env = environment("rasa")
    assert env.keys() >= PROD_ENDPOINTS
    assert env["RASA_TELEMETRY_ENABLED"] == "false"
    assert env["REDIS_HOST"] == "redis" and env["REDIS_PORT"].isdigit() and env["REDIS_DB"].isdigit()
    assert urlparse(env["TRACKER_STORE_URL"]).hostname == "postgres"


def test_secrets_come_from_the_env_file_never_from_the_compose_file() -> None:
    for name in ("adapter", "migrate"):
        assert services()[name]["env_file"] == ["../.env"]
    for name in services():
        assert not SECRETS & set(services()[name].get("environment") or {}), name
    assert set(EXAMPLE) >= SECRETS  # scripts/env-file writes them into .env


def test_the_adapter_in_compose_starts_in_webhook_mode_on_postgresql_behind_nginx() -> None:
    settings = load_adapter_settings({**env_file_values(), **environment("adapter")})
    assert settings.webhook_url == FAKE_TELEGRAM["WEBHOOK_URL"]
    assert settings.webhook_listen == "0.0.0.0"  # noqa: S104 - inside its container, for nginx to reach
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert settings.tracker_store_url.startswith("postgresql+psycopg://")
    rasa_url = environment("rasa")["TRACKER_STORE_URL"]
    # /forget deletes where Rasa writes: the same database, as the adapter's own role
    assert database_of(environment("adapter")["TRACKER_STORE_URL"]) == database_of(rasa_url)
    assert urlparse(settings.rasa_url).hostname == "lb"


def test_the_adapters_share_the_web_chats_address_limit_in_redis_apart_from_rasas_locks() -> None:
    """Several adapters run, so the per-address limit is in Redis (bot/web/addresses.py), in a database
    of its own: Rasa's lock store is REDIS_DB."""
    adapter = urlparse(load_adapter_settings({**env_file_values(), **environment("adapter")}).redis_url or "")
    rasa = environment("rasa")
    assert adapter.scheme == "redis" and adapter.hostname == rasa["REDIS_HOST"] == "redis"
    assert adapter.path.strip("/") != rasa["REDIS_DB"]
    assert services()["adapter"]["depends_on"]["redis"] == {"condition": "service_healthy"}
    assert "backend" in services()["adapter"]["networks"]  # where Redis is
    blocks = env_blocks()
    on_hosts = urlparse(blocks["/etc/signpost/adapter.env"]["REDIS_URL"])
    assert on_hosts.hostname == blocks["/etc/signpost/rasa.env"]["REDIS_HOST"]
    assert on_hosts.path.strip("/") != blocks["/etc/signpost/rasa.env"]["REDIS_DB"]


def test_the_action_servers_and_migrations_use_postgresql() -> None:
    for name in ("actions", "migrate"):
        url = load_action_settings(environment(name)).database_url
        assert url.startswith("postgresql+psycopg://") and urlparse(url).hostname == "postgres", name
    urls = [environment(name)["DATABASE_URL"] for name in ("migrate", "actions", "adapter")]
    urls.append(environment("rasa")["TRACKER_STORE_URL"])
    assert len({database_of(url) for url in urls}) == 1  # one database, each process as its own role


def database_of(url: str) -> tuple[str | None, int | None, str]:
    """Return which database a URL names: host, port and name, whoever connects."""
    parsed = urlparse(url)
    return parsed.hostname, parsed.port, parsed.path


def test_each_process_in_compose_connects_as_its_own_role_with_its_own_password() -> None:
    urls = {name: environment(name)["DATABASE_URL"] for name in ("migrate", "actions", "adapter")}
    urls["rasa"] = environment("rasa")["TRACKER_STORE_URL"]
    urls["adapter tracker store"] = environment("adapter")["TRACKER_STORE_URL"]
    for name, url in urls.items():
        parsed, process = urlparse(url), name.split()[0]
        assert parsed.username == ROLE_OF[process], name
        password = FAKE_INTERPOLATION[f"{process.upper()}_DB_PASSWORD".replace("MIGRATE", "OWNER")]
        assert parsed.password == password, name
    postgres = services()["postgres"]
    assert set(postgres["environment"]) >= ROLE_PASSWORDS  # roles.sql reads them on the first start
    assert "./postgres/roles.sql:/docker-entrypoint-initdb.d/10-roles.sql:ro" in postgres["volumes"]
    grants = services()["grants"]
    assert grants["image"] == postgres["image"]
    assert "./postgres/grants.sql:/grants.sql:ro" in grants["volumes"]
    command = [interpolate(part) for part in grants["command"]]
    assert command[:5] == ["psql", "-v", "ON_ERROR_STOP=1", "-f", "/grants.sql"]
    assert urlparse(command[5]).username == ROLE_OF["migrate"]  # the owner of the tables grants
    assert grants["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
    for name in ("actions", "adapter"):  # both start only with their rights in place
        assert services()[name]["depends_on"]["grants"] == {"condition": "service_completed_successfully"}


def test_each_compose_command_runs_a_real_module_or_rasa_command() -> None:
    commands = {name: s["command"] for name, s in services().items() if process_of(name) in PROCESS_READS}
    assert commands.keys() == {"migrate", "actions", "rasa", "train", "adapter"}
    for argv in commands.values():
        check_command(argv)
    assert commands["migrate"][2:] == ["actions.directory", "ready"]
    assert commands["adapter"] == ["python", "-m", "bot"]


def test_services_start_in_order_and_have_health_checks() -> None:
    found = services()
    for name, service in found.items():
        for needed, how in (service.get("depends_on") or {}).items():
            assert needed in found, f"{name} depends on unknown {needed}"
            one_shot = needed in {"migrate", "grants"}
            expected = "service_completed_successfully" if one_shot else "service_healthy"
            assert how["condition"] == expected, (name, needed)
            assert "healthcheck" in found[needed] or one_shot
        if name not in {"migrate", "grants", "train"}:
            assert "healthcheck" in service, f"{name} has no health check"
    for name in ("actions", "adapter"):
        assert "migrate" in found[name]["depends_on"]
    assert found["train"]["profiles"] == ["tools"] and found["train"]["network_mode"] == "none"
    assert any(v.endswith(":ro") for v in found["rasa"]["volumes"])  # one model, read-only
    assert found["train"]["volumes"][0].split(":")[:2] == found["rasa"]["volumes"][0].split(":")[:2]


def listening_port(service: str) -> int:
    """Return the port a compose service's process listens on."""
    if service == "adapter":
        return int(environment("adapter")["WEBHOOK_PORT"])
    argv = services()[service]["command"]
    return int(argv[argv.index("--port") + 1])


def test_health_checks_ask_the_port_each_process_listens_on() -> None:
    for name in ("rasa", "actions", "adapter"):
        check = " ".join(services()[name]["healthcheck"]["test"])
        # The adapter's /healthz is answered by its event loop on a port of its own (bot/health.py).
        port = environment("adapter")["HEALTH_PORT"] if name == "adapter" else listening_port(name)
        assert re.search(rf"127\.0\.0\.1(?::|', ){port}\b", check), name
    assert "/healthz" in " ".join(services()["adapter"]["healthcheck"]["test"])


def test_only_the_tls_proxy_is_published_and_only_it_and_the_adapters_reach_out() -> None:
    found = services()
    assert {name for name, s in found.items() if s.get("ports")} == {"lb"}
    assert found["lb"]["ports"] == ["80:80", "443:443"]  # :80 only sends browsers to https:// (nginx.conf)
    assert compose()["networks"]["backend"]["internal"] is True
    outside = {name for name, s in found.items() if "edge" in (s.get("networks") or [])}
    assert outside == {"lb", "adapter"}


# ---------------------------------------------------------------- Dockerfile


def dockerfile_stages() -> dict[str, str]:
    """Return each stage's instructions (continuations joined), by stage name."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text(encoding="utf-8"))
    stages: dict[str, str] = {}
    name = None
    for line in text.splitlines():
        match = re.match(r"FROM (\S+) AS (\S+)", line)
        if match:
            name = match.group(2)
            stages[name] = line + "\n"
        elif name and line.strip() and not line.lstrip().startswith("#"):
            stages[name] += line.strip() + "\n"
    return stages


def base_image(stages: dict[str, str], name: str) -> str:
    """Return the image a stage is built on in the end, following FROM through the other stages."""
    parent = stages[name].split()[1]
    return base_image(stages, parent) if parent in stages else parent


def test_rasa_is_on_python_310_ours_on_the_newer_python_and_compose_builds_their_targets() -> None:
    stages = dockerfile_stages()
    newest = make_variable("APP_PYTHONS").split()[0]
    assert base_image(stages, "rasa") == "python:3.10-slim"
    assert base_image(stages, "app") == f"python:{newest}-slim"
    assert base_image(stages, "rasa-env") == "python:3.10-slim"  # the environment is built where it runs
    assert base_image(stages, "app-env") == f"python:{newest}-slim"
    for name, service in services().items():
        if "build" in service:
            assert service["build"]["dockerfile"] == "deploy/Dockerfile"
            assert service["build"]["target"] in stages, name
    assert {"rasa", "app"} <= stages.keys()


def test_the_environments_are_installed_the_way_make_setup_installs_them() -> None:
    text = "".join(dockerfile_stages().values())
    venvs = {"$(RASA_VENV)": ".venv-rasa", "$(APP_VENV)": ".venv"}
    for make_venv, venv in venvs.items():
        for line in re.findall(rf"^\t{re.escape(make_venv)}/bin/pip install (.+)$", makefile(), re.MULTILINE):
            args = expand_make(line.replace("--disable-pip-version-check ", ""))  # PIP_DISABLE_PIP_…
            args = args.replace("requirements/dev.txt", "requirements/app.txt")  # no test tools
            assert f"{venv}/bin/pip install {args}" in text, f"missing: {venv}/bin/pip install {args}"
    assert "PIP_DISABLE_PIP_VERSION_CHECK=1" in text
    assert ".venv/bin/pip install --quiet --require-hashes -r requirements/app.txt" in text


def test_the_build_steps_of_make_setup_are_in_the_images() -> None:
    text = "".join(dockerfile_stages().values())
    for target in ("$(GEO):", "$(SPACY_MODEL)/meta.json:"):
        step = re.search(rf"^{re.escape(target)}.*\n\t(.+)$", makefile(), re.MULTILINE)
        assert step, target
        assert expand_make(step.group(1)) in text, expand_make(step.group(1))
    link = re.search(r'ln -sfn "(\$\$\(.+\))" \$\(MINILM\)', makefile())
    assert link
    assert f'ln -sfn "{expand_make(link.group(1))}" {make_variable("MINILM")}' in dockerfile_stages()["rasa"]


def test_every_file_the_dockerfile_copies_exists() -> None:
    for stage in dockerfile_stages().values():
        for line in stage.splitlines():
            if line.startswith("COPY ") and "--from=" not in line:
                *sources, _target = shlex.split(line)[1:]
                for source in sources:
                    assert (ROOT / source).exists(), f"COPY {source}: no such file"


def copied(stage: str) -> list[str]:
    """Return the destinations a stage copies into /opt/signpost (sources for ./ copies)."""
    found = []
    for line in dockerfile_stages()[stage].splitlines():
        if line.startswith("COPY "):
            *sources, target = [a for a in shlex.split(line)[1:] if not a.startswith("--")]
            found += sources if target == "./" else [target.rstrip("/")]
    return found


def test_the_rasa_image_holds_what_config_and_endpoints_name_and_runs_offline() -> None:
    stage = dockerfile_stages()["rasa"]
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        assert f"{variable}=1" in stage
    loaded = ("config.yml", "endpoints.prod.yml", "credentials.yml")  # Rasa loads what these name
    names = "".join((ROOT / name).read_text() for name in loaded)
    modules = set(re.findall(r"\b(rasa_addons\.\w+)\.\w+", names))
    assert {"rasa_addons.channels", "rasa_addons.tracker_store", "rasa_addons.lock_store"} <= modules
    for module in modules:
        assert (ROOT / (module.replace(".", "/") + ".py")).is_file()
        assert "rasa_addons" in copied("rasa")
    for path in re.findall(r"^\s+(?:model|model_weights): (\S+)$", (ROOT / "config.yml").read_text(), re.M):
        assert path.startswith("build/") and "COPY --from=data /opt/signpost/build build" in stage, path
    for needed in ("config.yml", "domain.yml", "credentials.yml", "endpoints.prod.yml", "nlu", "stories"):
        assert needed in copied("rasa"), needed


def test_the_app_image_holds_every_file_our_code_reads() -> None:
    read = set()
    for path in [*(ROOT / "actions").glob("*.py"), *(ROOT / "bot").rglob("*.py")]:
        text = path.read_text(encoding="utf-8")
        read |= set(re.findall(r'(?:ROOT|parent\.parent) / "([^"]+)"', text))
    # var/ is the SQLite default, unused here; .env is local configuration (containers get the environment).
    read = {name for name in read if name not in {"var", ".env"}}
    assert {"domain.yml", "data", "build", "alembic.ini", "migrations"} <= read
    have = copied("app")
    for name in read:
        assert any(c == name or c.startswith(name + "/") for c in have), f"the app image lacks {name}"
    assert {"actions", "bot"} <= set(have)


# ---------------------------------------------------------------- nginx


def nginx() -> str:
    return NGINX.read_text(encoding="utf-8")


def upstreams() -> dict[str, list[tuple[str, int]]]:
    return {
        name: [(host, int(port)) for host, port in re.findall(r"server ([\w.-]+):(\d+)", body)]
        for name, body in re.findall(r"upstream (\w+) \{(.*?)\}", nginx(), re.DOTALL)
    }


def server_blocks() -> dict[tuple[int, str], str]:
    """Return each nginx server block by its port and server_name ('' without one)."""
    found = {}
    for block in re.split(r"\n    server \{", nginx())[1:]:
        block = block.split("\n    }\n", 1)[0]
        port = re.search(r"listen (?:[\d.]+:)?(\d+)", block)
        name = re.search(r"server_name ([\w.-]+);", block)
        assert port, block
        key = (int(port.group(1)), name.group(1) if name else "")
        assert key not in found, f"two nginx servers for {key}"
        found[key] = block
    return found


def servers() -> dict[int, str]:
    """Return which upstream each nginx port passes to ('' for a server that answers itself), the
    port's first server (its default) where several share it."""
    found: dict[int, str] = {}
    for (port, _name), block in server_blocks().items():
        target = re.search(r"proxy_pass http://(\w+);", block)
        found.setdefault(port, target.group(1) if target else "")
    return found


def locations(block: str) -> dict[str, str]:
    """Return a server block's locations by their match (`= /events`, `/`)."""
    return dict(re.findall(r"location ([^{]+?) \{(.*?)\n        \}", block, re.DOTALL))


def directive(block: str, name: str) -> list[str]:
    """Return the values of a directive in a block (without the name and the semicolon)."""
    return re.findall(rf"^\s*{name} ([^;]+);", block, re.MULTILINE)


def test_nginx_config_is_balanced_and_every_directive_ends() -> None:
    text = re.sub(r"#.*", "", nginx())
    assert text.count("{") == text.count("}")
    for line in text.splitlines():
        line = line.strip()
        assert not line or line[-1] in ";{}", f"unterminated directive: {line}"


def test_nginx_balances_each_kind_of_process_on_the_port_it_listens_on() -> None:
    found, listening = upstreams(), servers()
    rasa_url = urlparse(environment("adapter")["RASA_URL"])
    action_url = urlparse(environment("rasa")["ACTION_ENDPOINT_URL"])
    assert rasa_url.hostname == action_url.hostname == "lb"
    assert action_url.path == "/webhook"
    for port, service in ((rasa_url.port, "rasa"), (action_url.port, "actions"), (443, "adapter")):
        assert port in listening, f"nginx does not listen on {port}"
        assert found[listening[port]] == [(service, listening_port(service))], service
    assert "listen 443 ssl;" in nginx()
    assert "limit_except POST" in nginx()
    health = " ".join(services()["lb"]["healthcheck"]["test"])
    port = re.search(r"127\.0\.0\.1:(\d+)/healthz", health)
    assert port and listening[int(port.group(1))] == ""


def size_in_bytes(value: str) -> int:
    """nginx's size: 16k, 1m, or bytes."""
    units = {"k": 1024, "m": 1024 * 1024}
    return int(value[:-1]) * units[value[-1]] if value[-1] in units else int(value)


def seconds(value: str) -> float:
    return float(value.removesuffix("s"))


def web_chat_server() -> tuple[str, str]:
    """Return the web chat's host name and server block: the :443 server that passes to web_chat."""
    [(name, block)] = [
        (name, block)
        for (port, name), block in server_blocks().items()
        if port == 443 and "proxy_pass http://web_chat;" in block
    ]
    return name, block


def test_nginx_routes_the_web_chat_over_tls_to_the_adapters_web_port() -> None:
    settings = load_adapter_settings({**env_file_values(), **environment("adapter")})
    assert upstreams()["web_chat"] == [("adapter", settings.web_port)]
    assert settings.web_host == "0.0.0.0"  # noqa: S104 - inside its container, for nginx to reach
    name, block = web_chat_server()
    webhook_host = urlparse(FAKE_TELEGRAM["WEBHOOK_URL"]).hostname
    assert name != webhook_host and (443, webhook_host) in server_blocks()  # a host name each
    assert "listen 443 ssl;" in block and directive(block, "http2") == ["on"]
    assert directive(block, "ssl_protocols") == ["TLSv1.2 TLSv1.3"]
    assert directive(block, "ssl_certificate") and directive(block, "ssl_certificate_key")
    assert any(h.startswith("Strict-Transport-Security") for h in directive(block, "add_header"))
    # The session cookie's Secure flag and the POST's Origin check need the browser's Host; the
    # per-address limit needs the browser's address, set (never appended: a client can't choose it) ...
    headers = dict(h.split(" ", 1) for h in directive(block, "proxy_set_header"))
    assert headers["Host"] == "$http_host" and headers["X-Forwarded-For"] == "$remote_addr"
    assert headers["Connection"] == '""'  # keepalive to the adapters (the http block's is dropped here)
    # ... and the adapter believes it only from the proxy.
    assert settings.forwarded_allow_ips == environment("adapter")["FORWARDED_ALLOW_IPS"] == "*"
    assert not services()["adapter"].get("ports")  # so only the compose networks reach the adapter
    redirect = server_blocks()[(80, name)]
    assert directive(redirect, "return") == ["301 https://$host$request_uri"]


def test_nginx_passes_the_live_feed_unbuffered_and_waits_longer_than_the_adapter() -> None:
    _name, block = web_chat_server()
    found = locations(block)
    assert set(found) == {"= /events", "= /poll", "/"}
    events, poll, rest = found["= /events"], found["= /poll"], found["/"]
    assert directive(events, "proxy_buffering") == ["off"] and directive(events, "gzip") == ["off"]
    # A heartbeat comes every HEARTBEAT_SECONDS; a long poll is held POLL_SECONDS; a form post without
    # JavaScript waits FORM_WAITS_SECONDS for the answer.
    assert seconds(directive(events, "proxy_read_timeout")[0]) >= 2 * HEARTBEAT_SECONDS
    assert seconds(directive(poll, "proxy_read_timeout")[0]) > POLL_SECONDS
    assert seconds(directive(rest, "proxy_read_timeout")[0]) > FORM_WAITS_SECONDS
    assert all(directive(body, "proxy_pass") == ["http://web_chat"] for body in found.values())
    assert size_in_bytes(directive(block, "client_max_body_size")[0]) == MAX_BODY_BYTES
    webhook = server_blocks()[(443, urlparse(FAKE_TELEGRAM["WEBHOOK_URL"]).hostname or "")]
    assert size_in_bytes(directive(webhook, "client_max_body_size")[0]) == MAX_UPDATE_BYTES


def test_one_browser_stays_with_one_adapter_by_its_session_cookie_never_its_address() -> None:
    body = re.search(r"upstream web_chat \{(.*?)\}", nginx(), re.DOTALL)
    assert body and directive(body.group(1), "hash") == [f"$cookie_{COOKIE} consistent"]
    assert "$remote_addr" not in body.group(1) and "ip_hash" not in body.group(1)


# What an nginx log line must never hold: the address, the query string, the body, cookies, user agent.
LOG_LEAKS = (
    "$remote_addr",
    "$binary_remote_addr",
    "$http_x_forwarded_for",
    "$proxy_add_x_forwarded_for",
    "$request ",  # the request line, query string included ($request_method and $uri are fine)
    '$request"',
    "$request_uri",
    "$args",
    "$query_string",
    "$request_body",
    "$http_cookie",
    "$cookie_",
    "$http_user_agent",
    "$http_referer",
    "$remote_user",
)


def test_nginx_writes_no_address_or_body_to_any_log() -> None:
    text = re.sub(r"#.*", "", nginx())
    formats = dict(re.findall(r"log_format (\w+) '([^']*)';", text))
    assert formats, "no log_format: nginx's default (combined) writes the address"
    for fields in formats.values():
        for leaks in LOG_LEAKS:
            assert leaks not in fields + " ", leaks
    access = re.findall(r"access_log ([^;]+);", text)
    assert access and all(line == "off" or line.split()[-1] in formats for line in access)
    for (_port, name), block in server_blocks().items():
        if name == web_chat_server()[0]:  # a request's error lines name its client's address
            assert directive(block, "error_log") == ["/var/log/nginx/error.log emerg"], name
    assert "limit_req" not in text  # nginx logs the address of each request it limits


# ---------------------------------------------------------------- systemd


def unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Return a unit file's sections as (key, value) lists (keys may repeat)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            assert line.endswith("]"), line
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None and "=" in line, f"{path.name}: {line}"
        key, value = line.split("=", 1)
        current.append((key, value))
    return sections


def values(sections: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [v for k, v in sections.get(section, []) if k == key]


SERVICE_UNITS = sorted(UNITS.glob("*.service"))
PROCESS_OF_UNIT = {
    "rasa@.service": "rasa",
    "actions@.service": "actions",
    "adapter@.service": "adapter",
    "signpost-migrate.service": "migrate",
}


def test_there_is_a_unit_for_each_process_and_a_target() -> None:
    assert {p.name for p in SERVICE_UNITS} == set(PROCESS_OF_UNIT)
    assert values(unit(UNITS / "signpost.target"), "Install", "WantedBy") == ["multi-user.target"]


@pytest.mark.parametrize("path", SERVICE_UNITS, ids=lambda p: p.name)
def test_each_unit_runs_hardened_from_the_install_directory(path: Path) -> None:
    sections = unit(path)
    assert values(sections, "Unit", "Description")
    service = dict(sections["Service"])
    assert service["User"] == "signpost"
    assert service["WorkingDirectory"] == INSTALL_DIR.rstrip("/")
    assert values(sections, "Service", "EnvironmentFile")
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes"}.items():
        assert service.get(key) == value, f"{path.name}: {key}"
    assert service.get("ReadWritePaths") == "/var/lib/signpost"
    assert service.get("StateDirectory") == "signpost"
    if service.get("Type") == "oneshot":
        return
    assert service["Restart"] == "on-failure"
    assert values(sections, "Install", "WantedBy") == ["signpost.target"]
    assert values(sections, "Unit", "PartOf") == ["signpost.target"]
    if "@" in path.name:
        assert "%i" in service["ExecStart"], "a template's instance name is its port"
    if PROCESS_OF_UNIT[path.name] in {"actions", "adapter"}:  # the database is migrated first
        assert values(sections, "Unit", "Requires") == ["signpost-migrate.service"]
        assert "signpost-migrate.service" in values(sections, "Unit", "After")[0].split()


def exec_start(path: Path) -> tuple[dict[str, str], list[str]]:
    """Return the settings an ExecStart gives through /usr/bin/env, and the command it runs."""
    argv = shlex.split(dict(unit(path)["Service"])["ExecStart"])
    given = {}
    if argv[0] == "/usr/bin/env":
        argv = argv[1:]
        while "=" in argv[0]:
            key, value = argv.pop(0).split("=", 1)
            given[key] = value
    return given, argv


@pytest.mark.parametrize("path", SERVICE_UNITS, ids=lambda p: p.name)
def test_each_unit_runs_a_real_command_from_the_makefiles_environments(path: Path) -> None:
    given, argv = exec_start(path)
    assert argv[0].startswith(INSTALL_DIR)
    program = argv[0].removeprefix(INSTALL_DIR)
    assert program in {expand_make(make_variable("PY")), expand_make(make_variable("RASA"))}, program
    check_command(argv)
    process = PROCESS_OF_UNIT[path.name]
    settings = set(given)
    for line in values(unit(path), "Service", "Environment"):
        settings |= {pair.split("=", 1)[0] for pair in shlex.split(line)}
    assert settings <= PROCESS_READS[process], f"{path.name}: {settings - PROCESS_READS[process]}"
    if process == "rasa":
        assert "RASA_TELEMETRY_ENABLED=false" in " ".join(values(unit(path), "Service", "Environment"))
    if process == "adapter":
        # One port an instance: the web chat's server takes Telegram's posts too (bot.app.with_webhook).
        assert given == {"WEBHOOK_PORT": "%i", "WEB_PORT": "%i"}
        on_port = {name: "8443" for name in given}
        settings = load_adapter_settings(
            {**env_blocks()["/etc/signpost/adapter.env"], **FAKE_SECRETS, **on_port}
        )
        assert settings.web_port == settings.webhook_port and settings.web_host == settings.webhook_listen


def test_systemd_analyze_verifies_the_units(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # The programs don't exist under /opt/signpost here: point ExecStart at stand-ins.
    root = tmp_path / "root"
    for program in (expand_make(make_variable("PY")), expand_make(make_variable("RASA"))):
        stand_in = root / program
        stand_in.parent.mkdir(parents=True, exist_ok=True)
        stand_in.write_text("#!/bin/sh\n")
        stand_in.chmod(0o755)
    units = tmp_path / "units"
    units.mkdir()
    for path in UNITS.iterdir():
        text = path.read_text(encoding="utf-8").replace(f" {INSTALL_DIR}", f" {root}/")
        text = text.replace(f"ExecStart={INSTALL_DIR}", f"ExecStart={root}/")
        (units / path.name).write_text(text)
    names = []
    for path in sorted(units.iterdir()):
        if "@" in path.name:
            instance = units / path.name.replace("@", "@1234")
            instance.symlink_to(path.name)
            path = instance
        names.append(f"./{path.name}")
    done = subprocess.run(
        [analyze, "verify", "--man=no", *names],
        cwd=units,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    ours = [
        line for line in output.splitlines() if str(units) in line or "@1234" in line or "signpost" in line
    ]
    assert done.returncode == 0 and not ours, output


# ---------------------------------------------------------------- the deploy page


def doc() -> str:
    return DOC.read_text(encoding="utf-8")


def env_blocks() -> dict[str, dict[str, str]]:
    """Return the env files the deploy page shows (a block starting `# /etc/signpost/NAME.env`)."""
    blocks = {}
    for body in re.findall(r"```sh\n(.*?)```", doc(), re.DOTALL):
        lines = [line.strip() for line in body.splitlines()]
        name = re.match(r"# (/etc/signpost/\S+\.env)", lines[0])
        if name:
            pairs = [line.split("=", 1) for line in lines if line and not line.startswith("#")]
            blocks[name.group(1)] = {key: value for key, value in pairs}
    return blocks


def test_every_setting_the_deploy_page_names_is_one_the_code_reads() -> None:
    named = set(ENV_NAME.findall(doc()))
    assert named <= ALL_KNOWN, f"not read by anything: {named - ALL_KNOWN}"
    assert ADAPTER_REQUIRED | PROD_ENDPOINTS | {"DATABASE_URL"} <= named


def test_the_env_files_on_the_deploy_page_give_each_process_what_it_needs() -> None:
    blocks = env_blocks()
    files = {path.name: values(unit(path), "Service", "EnvironmentFile") for path in SERVICE_UNITS}
    assert {f for found in files.values() for f in found} == set(blocks)
    for file, settings in blocks.items():
        readers = [PROCESS_OF_UNIT[name] for name, found in files.items() if file in found]
        allowed = set().union(*(PROCESS_READS[process] for process in readers))
        assert set(settings) <= allowed, f"{file}: {set(settings) - allowed}"
    rasa, actions, adapter = (blocks[f"/etc/signpost/{n}.env"] for n in ("rasa", "actions", "adapter"))
    assert set(rasa) == PROD_ENDPOINTS
    assert load_action_settings(actions).database_url.startswith("postgresql+psycopg://")
    assert set(adapter) >= ADAPTER_REQUIRED
    settings = load_adapter_settings({**adapter, **FAKE_SECRETS, "WEBHOOK_PORT": "8443"})
    assert settings.webhook_url and settings.tracker_store_url.startswith("postgresql+psycopg://")
    # /forget deletes where Rasa writes, each process as its own role.
    assert database_of(adapter["TRACKER_STORE_URL"]) == database_of(rasa["TRACKER_STORE_URL"])
    migrate = blocks["/etc/signpost/migrate.env"]
    urls = {
        "rasa": rasa["TRACKER_STORE_URL"],
        "actions": actions["DATABASE_URL"],
        "adapter": adapter["DATABASE_URL"],
        "migrate": migrate["DATABASE_URL"],
    }
    assert urlparse(adapter["TRACKER_STORE_URL"]).username == ROLE_OF["adapter"]
    for process, url in urls.items():
        assert urlparse(url).username == ROLE_OF[process], process
        assert database_of(url) == database_of(rasa["TRACKER_STORE_URL"]), process
    assert len({urlparse(url).password for url in urls.values()}) == len(urls)
    migrate_unit = values(unit(UNITS / "signpost-migrate.service"), "Service", "EnvironmentFile")
    assert migrate_unit[-1] == "/etc/signpost/migrate.env"  # read last: the owner's DATABASE_URL wins
    grants = values(unit(UNITS / "signpost-migrate.service"), "Service", "ExecStartPost")
    assert grants and f"-f {INSTALL_DIR}deploy/postgres/grants.sql ${{DATABASE_URL}}" in grants[0]


def test_the_deploy_page_points_at_files_tests_and_commands_that_exist() -> None:
    text = doc()
    operator_made = {"deploy/.env", "deploy/tls/fullchain.pem", "deploy/tls/privkey.pem"}
    for path in re.findall(
        r"`((?:deploy|docs|tests|rasa_addons|scripts|bot|actions|requirements)/[^`\s]*)`", text
    ):
        if path not in operator_made:
            assert (ROOT / path).exists(), path
    for link in re.findall(r"\]\((\.\./[^)#]+|[\w.]+\.md)(?:#[^)]*)?\)", text):
        assert (DOC.parent / link).resolve().exists(), link
    tests = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").rglob("test_*.py"))
    for name in re.findall(r"`(test_\w+)`", text):
        assert f"def {name}(" in tests, name
    for module, command in re.findall(r"python -m ([\w.]+)(?: ([\w-]+))?", text):
        path = ROOT / Path(*module.split("."))
        if module == "rasa_sdk":
            continue
        assert path.with_suffix(".py").is_file() or (path / "__main__.py").is_file(), module
        if command:
            assert f'add_parser("{command}"' in path.with_suffix(".py").read_text(), f"{module} {command}"
    for target in re.findall(r"`make (\w[\w-]*)", text):
        assert re.search(rf"^{target}:", makefile(), re.MULTILINE), f"make {target}"


def test_the_deploy_page_gives_the_intervals_the_code_uses() -> None:
    text = " ".join(doc().split())
    # Every "every N s" on the page is the waiting check's interval (blocks reach other instances then).
    assert set(re.findall(r"every (\d+) s\b", text)) == {str(CHECK_WAITING_SECONDS)}
    assert f"within {CHECK_WAITING_SECONDS} s" in text
    assert PURGE_SECONDS == 3600 and "hourly" in text
    assert re.search(
        r"run_repeating\(_job\(Relay\.purge\), PURGE_SECONDS, first=60\)",
        (ROOT / "bot" / "app.py").read_text(),
    )
    assert "60 s after it starts" in text
    wait = re.search(r"^WAIT_SECONDS = ([\d.]+)", (ROOT / "rasa_addons" / "lock_store.py").read_text(), re.M)
    assert wait and f"every {round(float(wait.group(1)) * 1000)} ms" in text
