"""Static checks of the production docker-compose.yaml (no Docker engine needed).

The file cannot be run here, so it is checked by construction: it parses; every service,
volume, variable, connection and host path it names exists; the image and Airflow
version agree with requirements.txt and the Dockerfile; every Airflow container shares
one environment (CeleryExecutor, one JWT secret); long-running services have health
checks; the staging profile holds Mailpit and the 1C emulator. Each check is a function
returning the problems it found, and `test_a_broken_copy_is_caught` feeds each one a
deliberately broken copy, so none of them can pass vacuously.
"""

from __future__ import annotations

import ast
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-worker", "airflow-triggerer", "airflow-init")
REQUIRED_SERVICES = ("postgres", "redis", *AIRFLOW_SERVICES, "mailpit", "onec-emulator")
STAGING_SERVICES = ("mailpit", "onec-emulator")
#: services that run once and exit: no health check expected
ONE_SHOT = ("airflow-init", "airflow-cli")
#: service keys of the Compose specification this file may use: compose rejects a typo
#: ("healtcheck") only when someone runs it, this catches it first
SERVICE_KEYS = {
    "build", "command", "container_name", "depends_on", "entrypoint", "env_file", "environment",
    "expose", "extra_hosts", "healthcheck", "hostname", "image", "init", "labels", "logging",
    "networks", "ports", "profiles", "restart", "stop_grace_period", "stop_signal", "user",
    "volumes", "working_dir", "deploy", "ulimits", "shm_size", "tmpfs", "secrets", "configs",
}
HEALTHCHECK_KEYS = {"test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"}
#: connection types the project expects, by connection id prefix
CONN_TYPES = {"onec_": "http", "smtp_": "smtp"}

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err}, ${VAR:+x}; $$ escapes.
_BRACED = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")
_BARE = re.compile(r"(?<!\$)\$([A-Za-z_][A-Za-z0-9_]*)")
_ENV_LINE = re.compile(r"^\s*(#\s*)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


@dataclass
class Project:
    """Everything the checks look at; tests mutate copies of it."""

    compose_text: str
    compose: dict[str, Any]
    env_example: str
    requirements: str
    dockerfile: str
    dockerignore: str
    conn_ids: set[str]
    root: Path = ROOT


# -- loading -------------------------------------------------------------------------------


def project_conn_ids(package: Path) -> set[str]:
    """Connection ids the package names: `*_CONN_ID = "..."` and `default_conn_name = "..."`."""
    ids: set[str] = set()
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            targets: list[ast.expr] = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                targets = [node.target]
            else:
                continue
            value = node.value
            if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
                continue
            for target in targets:
                name = target.id if isinstance(target, ast.Name) else getattr(target, "attr", "")
                if name.endswith("CONN_ID") or name == "default_conn_name":
                    ids.add(value.value)
    return ids


def load_project(root: Path = ROOT) -> Project:
    text = (root / "docker-compose.yaml").read_text(encoding="utf-8")
    return Project(
        compose_text=text,
        compose=yaml.safe_load(text),
        env_example=(root / ".env.example").read_text(encoding="utf-8"),
        requirements=(root / "requirements.txt").read_text(encoding="utf-8"),
        dockerfile=(root / "Dockerfile").read_text(encoding="utf-8"),
        dockerignore=(root / ".dockerignore").read_text(encoding="utf-8"),
        conn_ids=project_conn_ids(root / "plugins" / "receivables"),
        root=root,
    )


def with_compose(p: Project, compose: dict[str, Any] | None = None, text: str | None = None) -> Project:
    """A copy of `p` with another compose file (as data, or as text that is re-parsed)."""
    q = copy.deepcopy(p)
    if text is not None:
        q.compose_text, q.compose = text, yaml.safe_load(text)
    if compose is not None:
        q.compose = compose
    return q


# -- helpers -------------------------------------------------------------------------------


def services(p: Project) -> dict[str, dict[str, Any]]:
    return p.compose.get("services") or {}


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the KEY=VALUE list form
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def depends_on(service: dict[str, Any]) -> list[str]:
    deps = service.get("depends_on") or []
    return list(deps) if isinstance(deps, (list, dict)) else []


def mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of every volume entry, short or long syntax."""
    out = []
    for item in service.get("volumes") or []:
        if isinstance(item, dict):
            out.append((str(item.get("source", "")), str(item.get("target", ""))))
        else:
            parts = str(item).split(":")
            out.append((parts[0], parts[1] if len(parts) > 1 else parts[0]))
    return out


def is_bind(source: str) -> bool:
    return source.startswith((".", "/", "~", "$"))


def env_example_lines(text: str) -> list[tuple[bool, str, str]]:
    """(active, key, raw value) of every KEY=value line, commented-out examples included."""
    out = []
    for line in text.splitlines():
        m = _ENV_LINE.match(line)
        if m:
            out.append((m.group(1) is None, m.group(2), m.group(3).strip()))
    return out


def unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value.split(" #", 1)[0].strip()


def airflow_version(requirements: str) -> str | None:
    m = re.search(r"^apache-airflow==([0-9][^\s;#]*)", requirements, re.M)
    return m.group(1) if m else None


def project_image(p: Project) -> str:
    return str((p.compose.get("x-project-image") or {}).get("image", ""))


def placeholders(value: str) -> str:
    """Variables replaced by their default, or by `x`: `?` in `${VAR:?msg}` would end a URL."""
    return _BRACED.sub(lambda m: m.group(3) if m.group(2) in ("-", ":-") else "x", value)


def default_of(value: str) -> str:
    """`${VAR:-default}` -> default; anything else unchanged."""
    m = _BRACED.fullmatch(value)
    return m.group(3) if m and m.group(2) in ("-", ":-") else value


# -- checks --------------------------------------------------------------------------------


def check_parses(p: Project) -> list[str]:
    if not isinstance(p.compose, dict):
        return ["docker-compose.yaml is not a mapping"]
    problems = []
    if p.compose.get("name") != "receivables":
        problems.append("the project name is not `receivables`")
    if not isinstance(p.compose.get("services"), dict) or not p.compose["services"]:
        problems.append("no services")
    if "<<" in p.compose_text and "&airflow-common" not in p.compose_text:
        problems.append("merge keys without the x-airflow-common anchor")
    top = {"name", "services", "volumes", "networks", "secrets", "configs"}
    problems += [f"unknown top-level key {k!r}" for k in p.compose if k not in top and not k.startswith("x-")]
    for name, svc in services(p).items():
        problems += [f"{name}: unknown key {k!r}" for k in svc if k not in SERVICE_KEYS]
        problems += [f"{name}: unknown healthcheck key {k!r}"
                     for k in (svc.get("healthcheck") or {}) if k not in HEALTHCHECK_KEYS]
    return problems


def check_required_services(p: Project) -> list[str]:
    return [f"service {name} is missing" for name in REQUIRED_SERVICES if name not in services(p)]


def check_depends_on(p: Project) -> list[str]:
    problems = []
    svcs = services(p)
    for name, svc in svcs.items():
        deps = svc.get("depends_on") or {}
        for dep in depends_on(svc):
            if dep not in svcs:
                problems.append(f"{name} depends on {dep}, which is not a service")
                continue
            if not svc.get("profiles") and svcs[dep].get("profiles"):
                problems.append(f"{name} (always on) depends on {dep}, which only runs in a profile")
            if isinstance(deps, dict):
                cond = (deps[dep] or {}).get("condition", "service_started")
                if cond not in ("service_started", "service_healthy", "service_completed_successfully"):
                    problems.append(f"{name} depends on {dep} with an unknown condition {cond!r}")
                if cond == "service_healthy" and "healthcheck" not in svcs[dep]:
                    problems.append(f"{name} waits for {dep} to be healthy, but {dep} has no healthcheck")
    return problems


def check_volumes(p: Project) -> list[str]:
    declared = set((p.compose.get("volumes") or {}).keys())
    used: set[str] = set()
    problems = []
    for name, svc in services(p).items():
        for source, _ in mounts(svc):
            if is_bind(source):
                continue
            used.add(source)
            if source not in declared:
                problems.append(f"{name} mounts volume {source!r}, which is not declared")
    problems += [f"volume {v!r} is declared but never mounted" for v in sorted(declared - used)]
    return problems


def check_host_paths(p: Project) -> list[str]:
    problems = []
    for name, svc in services(p).items():
        for source, target in mounts(svc):
            if source.startswith("./") and not (p.root / source[2:]).exists():
                problems.append(f"{name} mounts {source} -> {target}, which is not in the repository")
            elif source.startswith(("/", "~", "$")):
                problems.append(f"{name} mounts {source}: bind mounts must be repository paths (./...)")
        build = svc.get("build")
        context = build.get("context", ".") if isinstance(build, dict) else build
        if context is not None and not (p.root / str(context) / "Dockerfile").is_file():
            problems.append(f"{name} builds {context}/Dockerfile, which does not exist")
    # The project's folders reach the Airflow containers where settings.py looks for them.
    common = (p.compose.get("x-airflow-common") or {})
    targets = {t.split(":")[0] for _, t in mounts(common)}
    for folder in ("dags", "plugins", "include", "sql", "logs", "data"):
        if f"/opt/airflow/{folder}" not in targets:
            problems.append(f"x-airflow-common does not mount /opt/airflow/{folder}")
    init_dirs = [s for svc in services(p).values() for s, t in mounts(svc)
                 if t.startswith("/docker-entrypoint-initdb.d") and s.startswith("./")]
    if not init_dirs:
        problems.append("postgres has no init folder mounted on /docker-entrypoint-initdb.d")
    for src in init_dirs:
        scripts = [f for f in (p.root / src[2:]).glob("*.sh") if os.access(f, os.X_OK)]
        if not scripts:
            problems.append(f"{src} holds no executable *.sh init script")
    return problems


def check_variables(p: Project) -> list[str]:
    """Every variable used without a default is set (possibly empty) in .env.example."""
    keys = {key for active, key, _ in env_example_lines(p.env_example) if active}
    needed = {m.group(1) for m in _BRACED.finditer(p.compose_text)
              if m.group(2) in (None, "?", ":?")}
    needed |= {m.group(1) for m in _BARE.finditer(p.compose_text)}
    return [f"${{{var}}} has no default and is not set in .env.example" for var in sorted(needed - keys)]


def check_env_example(p: Project) -> list[str]:
    """.env.example commits no secret, and its connections are the project's, well formed."""
    problems = []
    lines = env_example_lines(p.env_example)
    for active, key, value in lines:
        if active and re.search(r"PASSWORD|SECRET|FERNET|_KEY$", key) and unquote(value):
            problems.append(f".env.example sets the secret {key}: leave it empty")
    infobases: list[str] = []
    for _, key, value in lines:
        if key == "AIRFLOW_VAR_RECEIVABLES_INFOBASES":
            try:
                infobases = json.loads(unquote(value))
            except ValueError:
                problems.append("AIRFLOW_VAR_RECEIVABLES_INFOBASES is not a JSON list")
    conns = {key.removeprefix("AIRFLOW_CONN_").lower() for _, key, _ in lines if key.startswith("AIRFLOW_CONN_")}
    for conn_id in infobases:
        if conn_id not in conns and conn_id not in p.conn_ids:
            problems.append(f"receivables_infobases lists {conn_id}, which has no AIRFLOW_CONN_ line")
    for _, key, value in lines:
        if not key.startswith("AIRFLOW_CONN_"):
            continue
        conn_id = key.removeprefix("AIRFLOW_CONN_").lower()
        if conn_id not in p.conn_ids and conn_id not in infobases:
            problems.append(f"{key}: {conn_id} is not a connection the project uses")
        try:
            conn = json.loads(unquote(value))
        except ValueError:
            problems.append(f"{key} is not JSON in single quotes")
            continue
        expected = next((t for prefix, t in CONN_TYPES.items() if conn_id.startswith(prefix)), None)
        if expected and conn.get("conn_type") != expected:
            problems.append(f"{key}: conn_type {conn.get('conn_type')!r}, expected {expected!r}")
        extra = conn.get("extra") or {}
        if expected == "http" and not str(extra.get("base_path", "")).startswith("/"):
            problems.append(f"{key}: extra.base_path (the OData path) is missing")
        for flag in ("disable_tls", "disable_ssl"):
            if expected == "smtp" and not isinstance(extra.get(flag), bool):
                problems.append(f"{key}: extra.{flag} must be a JSON boolean")
    for conn_id in sorted(p.conn_ids):
        key = f"AIRFLOW_CONN_{conn_id.upper()}"
        in_env = any(active and k == key for active, k, _ in lines)
        in_compose = key in env_of(p.compose.get("x-airflow-common") or {})
        if not (in_env or in_compose):
            problems.append(f"connection {conn_id} is set neither in .env.example nor in compose")
    return problems


def check_images(p: Project) -> list[str]:
    problems = []
    version = airflow_version(p.requirements)
    if not version:
        return ["requirements.txt pins no apache-airflow=="]
    froms = re.findall(r"^FROM\s+(\S+)", p.dockerfile, re.M)
    if not froms or not re.fullmatch(rf"apache/airflow:{re.escape(version)}-python3\.\d+", froms[-1]):
        problems.append(f"Dockerfile FROM {froms[-1] if froms else None} is not apache/airflow:{version}-python3.x")
    if not re.search(r"pip install[^\n]*(\\\n[^\n]*)*-r \S*requirements\.txt\s+-c \S*constraints\.txt", p.dockerfile):
        problems.append("the Dockerfile does not install requirements.txt with constraints.txt")
    if not re.search(r"pip install[^\n]*--no-deps -e ", p.dockerfile):
        problems.append("the Dockerfile does not install the project (pip install --no-deps -e)")
    ignored = {line.strip() for line in p.dockerignore.splitlines() if line.strip() and not line.startswith("#")}
    for local in (".env", ".venv", ".airflow", ".demo"):
        if local not in ignored:
            problems.append(f".dockerignore does not keep {local} out of the image")
    for sources in re.findall(r"^COPY\s+(?:--\S+\s+)*(.+)\s+\S+$", p.dockerfile, re.M):
        for source in sources.split():
            if not (p.root / source).exists():
                problems.append(f"the Dockerfile copies {source}, which is not in the repository")
            elif source in ignored:
                problems.append(f"the Dockerfile copies {source}, which .dockerignore leaves out")
    image = default_of(project_image(p))
    if not image.endswith(f":{version}"):
        problems.append(f"the project image {image!r} is not tagged with Airflow {version}")
    for name, svc in services(p).items():
        img = str(svc.get("image", ""))
        if not img:
            problems.append(f"{name} has no image")
        elif img == project_image(p):
            if not svc.get("build"):
                problems.append(f"{name} uses the project image but does not build it")
        elif ":" not in img or img.endswith(":latest"):
            problems.append(f"{name}: image {img} is not pinned to a version")
    return problems


def check_airflow_env(p: Project) -> list[str]:
    problems = []
    common = p.compose.get("x-airflow-common") or {}
    env = env_of(common)
    svcs = services(p)
    if env.get("AIRFLOW__CORE__EXECUTOR") != "CeleryExecutor":
        problems.append("x-airflow-common: the executor is not CeleryExecutor")
    jwt = env.get("AIRFLOW__API_AUTH__JWT_SECRET", "")
    if not _BRACED.fullmatch(jwt):
        problems.append("x-airflow-common: AIRFLOW__API_AUTH__JWT_SECRET is not taken from a variable")
    if ".env" not in (common.get("env_file") or []):
        problems.append("x-airflow-common does not read .env (env_file)")
    api = urlsplit(placeholders(env.get("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "")))
    if api.hostname != "airflow-apiserver" or api.path != "/execution/":
        problems.append("AIRFLOW__CORE__EXECUTION_API_SERVER_URL does not point at airflow-apiserver/execution/")
    elif not any(str(port).endswith(f":{api.port}") for port in svcs.get("airflow-apiserver", {}).get("ports", [])):
        problems.append(f"airflow-apiserver does not serve port {api.port}")
    for var, host, path in (("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "postgres", "/airflow"),
                            ("AIRFLOW__CELERY__BROKER_URL", "redis", None),
                            ("AIRFLOW_CONN_RECEIVABLES_DB", "postgres", "/receivables")):
        url = urlsplit(placeholders(env.get(var, "")))
        if url.hostname != host or (path and url.path != path):
            problems.append(f"{var} does not point at {host}{path or ''}")
        elif host not in svcs:
            problems.append(f"{var} points at {host}, which is not a service")
    for name in [*AIRFLOW_SERVICES, "airflow-cli"]:
        if name not in svcs:
            continue
        have = env_of(svcs[name])
        for key, value in env.items():
            if have.get(key) != value:
                problems.append(f"{name} does not share x-airflow-common's {key}")
        if svcs[name].get("image") != project_image(p):
            problems.append(f"{name} does not run the project image")
    init = svcs.get("airflow-init", {})
    command = init.get("command")
    script = "\n".join(command) if isinstance(command, list) else str(command or "")
    if "receivables warehouse migrate" not in script:
        problems.append("airflow-init does not run `receivables warehouse migrate`")
    if env_of(init).get("_AIRFLOW_DB_MIGRATE") != "true":
        problems.append("airflow-init does not migrate Airflow's database (_AIRFLOW_DB_MIGRATE)")
    worker = svcs.get("airflow-worker", {})
    if "container_name" in worker or worker.get("ports"):
        problems.append("airflow-worker has a container_name or host ports: --scale would fail")
    return problems


def check_healthchecks(p: Project) -> list[str]:
    problems = []
    for name, svc in services(p).items():
        if name in ONE_SHOT:
            continue
        test = (svc.get("healthcheck") or {}).get("test")
        if not test or test == ["NONE"] or (svc.get("healthcheck") or {}).get("disable"):
            problems.append(f"{name} runs for good but has no healthcheck")
        if not svc.get("restart"):
            problems.append(f"{name} runs for good but has no restart policy")
    return problems


def check_staging(p: Project) -> list[str]:
    problems = []
    svcs = services(p)
    for name in STAGING_SERVICES:
        if "staging" not in (svcs.get(name, {}).get("profiles") or []):
            problems.append(f"{name} is not in the staging profile")
    for name, svc in svcs.items():
        if name not in STAGING_SERVICES and "staging" in (svc.get("profiles") or []):
            problems.append(f"{name} is in the staging profile unexpectedly")
    emulator = svcs.get("onec-emulator", {})
    command = [str(c) for c in emulator.get("command") or []]
    if command[:2] != ["receivables", "emulator"] or "0.0.0.0" not in command:
        problems.append("onec-emulator does not run `receivables emulator --host 0.0.0.0`")
    port = command[command.index("--port") + 1] if "--port" in command else "8081"
    # The staging connections of .env.example reach these services by name and port.
    staging = {key: json.loads(unquote(v)) for active, key, v in env_example_lines(p.env_example)
               if active and key in ("AIRFLOW_CONN_ONEC_DEFAULT", "AIRFLOW_CONN_SMTP_DEFAULT")}
    onec, smtp = staging.get("AIRFLOW_CONN_ONEC_DEFAULT", {}), staging.get("AIRFLOW_CONN_SMTP_DEFAULT", {})
    if onec.get("host") != "onec-emulator" or str(onec.get("port")) != port:
        problems.append(f".env.example's onec_default is not the emulator at onec-emulator:{port}")
    if smtp.get("host") != "mailpit" or str(smtp.get("port")) != "1025":
        problems.append(".env.example's smtp_default is not Mailpit at mailpit:1025")
    if "1025" not in [str(x) for x in svcs.get("mailpit", {}).get("expose", [])]:
        problems.append("mailpit does not expose SMTP port 1025")
    if port not in [str(x) for x in emulator.get("expose", [])]:
        problems.append(f"onec-emulator does not expose port {port}")
    return problems


CHECKS: dict[str, Callable[[Project], list[str]]] = {
    "parses": check_parses,
    "required services": check_required_services,
    "depends_on": check_depends_on,
    "volumes": check_volumes,
    "host paths": check_host_paths,
    "variables": check_variables,
    ".env.example": check_env_example,
    "images": check_images,
    "airflow env": check_airflow_env,
    "healthchecks": check_healthchecks,
    "staging": check_staging,
}


# -- tests ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def project() -> Project:
    return load_project()


@pytest.mark.parametrize("check", list(CHECKS))
def test_compose_file_passes(project: Project, check: str) -> None:
    assert CHECKS[check](copy.deepcopy(project)) == []


def test_the_project_uses_the_connections_the_compose_file_sets(project: Project) -> None:
    # The AST scan must find the fixed ids, or the .env.example check would check nothing.
    assert {"onec_default", "smtp_default", "receivables_db"} <= project.conn_ids


def test_commands_in_the_compose_file_exist_in_the_cli(project: Project) -> None:
    """`receivables warehouse migrate` (airflow-init) and the emulator's arguments parse."""
    from receivables.cli import build_parser

    parser = build_parser()
    parser.parse_args(["warehouse", "migrate"])
    command = [default_of(str(a)) for a in _svc(project, "onec-emulator")["command"]]
    args = parser.parse_args(command[1:])
    assert (args.host, args.port, args.scale) == ("0.0.0.0", 8081, 1.0)


@pytest.mark.postgres
def test_airflow_init_steps_on_postgresql(project: Project) -> None:
    """What postgres and airflow-init do, on the local server: the init script creates the
    warehouse database and owner (twice: idempotent), then `receivables warehouse migrate`
    through the compose file's receivables_db URI creates the schema as that owner."""
    from db_fixtures import PG_ADMIN_URL
    from sqlalchemy import create_engine, inspect, text

    if not shutil.which("psql"):
        pytest.fail("this test needs psql (postgresql-client) beside the PostgreSQL server", pytrace=False)
    tag = uuid.uuid4().hex[:12]
    db_name, db_user, password = f"receivables_test_{tag}", f"receivables_test_{tag}_owner", uuid.uuid4().hex
    script = ROOT / "deploy" / "postgres" / "init" / "10-receivables-warehouse.sh"
    env = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": "5432", "POSTGRES_USER": "postgres",
           "POSTGRES_DB": "postgres", "RECEIVABLES_DB_PASSWORD": password,
           "RECEIVABLES_DB_NAME": db_name, "RECEIVABLES_DB_USER": db_user}
    uri = env_of(project.compose["x-airflow-common"])["AIRFLOW_CONN_RECEIVABLES_DB"]
    uri = _BRACED.sub(password, uri).replace("receivables:", f"{db_user}:", 1)
    uri = uri.replace("@postgres:5432/receivables", f"@127.0.0.1:5432/{db_name}")
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        for _ in range(2):
            done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
            assert done.returncode == 0, done.stdout + done.stderr
        cli = Path(sys.executable).parent / "receivables"
        run_env = {**os.environ, "AIRFLOW_CONN_RECEIVABLES_DB": uri}
        migrate = subprocess.run([str(cli), "warehouse", "migrate"], env=run_env, capture_output=True, text=True)
        assert migrate.returncode == 0, migrate.stdout + migrate.stderr
        assert password not in migrate.stdout + migrate.stderr
        check = subprocess.run([str(cli), "warehouse", "check"], env=run_env, capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        owner_engine = create_engine(uri.replace("postgresql://", "postgresql+psycopg2://", 1))
        try:
            with owner_engine.connect() as conn:
                tables = set(inspect(conn).get_table_names())
                owners = set(conn.execute(text(
                    "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")).scalars())
        finally:
            owner_engine.dispose()
        assert {"aging_snapshot", "collection_register", "collection_log"} <= tables
        assert owners == {db_user}
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
            conn.execute(text(f'DROP ROLE IF EXISTS "{db_user}"'))
        admin.dispose()


def _svc(p: Project, name: str) -> dict[str, Any]:
    return p.compose["services"][name]


def _drop(d: dict[str, Any], key: str) -> dict[str, Any]:
    d.pop(key, None)
    return d


# A broken copy for every check, and the words of the problem it must produce.
BREAKAGES: list[tuple[str, str, Callable[[Project], Project], str]] = [
    ("parses", "no services", lambda p: with_compose(p, text="name: receivables\nservices: {}\n"), "no services"),
    ("parses", "a misspelt key",
     lambda p: with_compose(p, text=p.compose_text.replace("    healthcheck:\n      test: [\"CMD\", \"redis-cli\"",
                                                           "    healtcheck:\n      test: [\"CMD\", \"redis-cli\"")),
     "redis: unknown key 'healtcheck'"),
    ("required services", "worker removed",
     lambda p: (_svc(p, "airflow-worker") and p.compose["services"].pop("airflow-worker") and p),
     "airflow-worker is missing"),
    ("depends_on", "unknown dependency",
     lambda p: (_svc(p, "airflow-scheduler")["depends_on"].update({"airflow-db": {}}) or p),
     "depends on airflow-db"),
    ("depends_on", "always-on service waits for a staging one",
     lambda p: (_svc(p, "airflow-worker")["depends_on"].update(
         {"mailpit": {"condition": "service_healthy"}}) or p), "only runs in a profile"),
    ("volumes", "undeclared volume",
     lambda p: (p.compose["volumes"].pop("receivables-data") and p) or p, "receivables-data"),
    ("host paths", "mount of a missing folder",
     lambda p: (_svc(p, "airflow-scheduler").setdefault("volumes", []).append("./no-such-dir:/x") or p),
     "no-such-dir"),
    ("variables", "a new required variable",
     lambda p: with_compose(p, text=p.compose_text.replace(
         "redis://:@redis:6379/0", "redis://:${REDIS_PASSWORD}@redis:6379/0")), "REDIS_PASSWORD"),
    (".env.example", "a committed secret",
     lambda p: (setattr(p, "env_example", p.env_example.replace(
         "\nAIRFLOW_JWT_SECRET=\n", "\nAIRFLOW_JWT_SECRET=0123abcd\n")) or p), "AIRFLOW_JWT_SECRET"),
    (".env.example", "a connection the project does not use",
     lambda p: (setattr(p, "env_example", p.env_example + "\nAIRFLOW_CONN_ONEC_TYPO='{}'\n") or p), "onec_typo"),
    (".env.example", "a string where a JSON boolean belongs",
     lambda p: (setattr(p, "env_example", p.env_example.replace(
         '"disable_tls": true', '"disable_tls": "false"', 1)) or p), "disable_tls must be a JSON boolean"),
    ("images", "FROM another Airflow",
     lambda p: (setattr(p, "dockerfile", p.dockerfile.replace(
         "apache/airflow:3.3.2-", "apache/airflow:3.2.0-")) or p), "Dockerfile FROM"),
    ("images", "requirements moved on",
     lambda p: (setattr(p, "requirements", p.requirements.replace(
         "apache-airflow==3.3.2", "apache-airflow==3.4.0")) or p), "not tagged with Airflow 3.4.0"),
    ("images", "secrets in the build context",
     lambda p: (setattr(p, "dockerignore", p.dockerignore.replace("\n.env\n", "\n")) or p), "keep .env out"),
    ("images", "a copied folder that is not there",
     lambda p: (setattr(p, "dockerfile", p.dockerfile.replace("COPY --chown=airflow:0 sql ", "COPY --chown=airflow:0 sqlx ")) or p),
     "copies sqlx"),
    ("images", "unpinned image",
     lambda p: (_svc(p, "redis").update(image="redis:latest") or p), "not pinned"),
    ("airflow env", "a service with its own JWT secret",
     lambda p: (_svc(p, "airflow-worker")["environment"].update(AIRFLOW__API_AUTH__JWT_SECRET="other") or p),
     "airflow-worker does not share x-airflow-common's AIRFLOW__API_AUTH__JWT_SECRET"),
    ("airflow env", "LocalExecutor",
     lambda p: (p.compose["x-airflow-common"]["environment"].update(
         AIRFLOW__CORE__EXECUTOR="LocalExecutor") or p), "not CeleryExecutor"),
    ("airflow env", "no warehouse migration",
     lambda p: (_svc(p, "airflow-init").update(command=["-c", "airflow version"]) or p),
     "receivables warehouse migrate"),
    ("airflow env", "a worker with a fixed name",
     lambda p: (_svc(p, "airflow-worker").update(container_name="worker") or p), "--scale"),
    ("healthchecks", "scheduler without a healthcheck",
     lambda p: (_drop(_svc(p, "airflow-scheduler"), "healthcheck") and p), "airflow-scheduler runs for good"),
    ("staging", "mailpit always on",
     lambda p: (_drop(_svc(p, "mailpit"), "profiles") and p), "mailpit is not in the staging profile"),
    ("staging", "the emulator on another port",
     lambda p: (_svc(p, "onec-emulator").update(
         command=["receivables", "emulator", "--host", "0.0.0.0", "--port", "9000"]) or p), "onec-emulator:9000"),
]


@pytest.mark.parametrize(("check", "why", "breaker", "expected"), BREAKAGES,
                         ids=[f"{c}: {w}" for c, w, _, _ in BREAKAGES])
def test_a_broken_copy_is_caught(project: Project, check: str, why: str,
                                 breaker: Callable[[Project], Project], expected: str) -> None:
    broken = breaker(copy.deepcopy(project))
    problems = CHECKS[check](broken)
    assert any(expected in problem for problem in problems), problems


def test_every_check_has_a_broken_copy() -> None:
    assert {check for check, *_ in BREAKAGES} == set(CHECKS)


def test_image_only_pins_do_not_contradict_the_project_pins():
    """deploy/constraints-image.txt (fab provider and its dependencies) is resolved against
    constraints.txt: a package pinned in both must be pinned to the same version."""
    def pins(path):
        out = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if "==" in line:
                name, version = line.split("==", 1)
                out[name.strip().lower().replace("_", "-")] = version.strip()
        return out

    image, project = pins(ROOT / "deploy" / "constraints-image.txt"), pins(ROOT / "constraints.txt")
    assert "apache-airflow-providers-fab" in image
    clashes = {n: (v, project[n]) for n, v in image.items() if n in project and project[n] != v}
    assert clashes == {}
