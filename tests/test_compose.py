"""docker-compose.yml: two bot containers and PostgreSQL (issue 15).

Docker cannot run here (no daemon, no images: no internet), so the file is checked
as data: two bot services on one DATABASE_URL that points at the ``postgres``
service, PostgreSQL's ``pg_isready`` health check and the bots' ``daisybot
healthcheck``, the bots start only once PostgreSQL is healthy and are restarted
(exit 75 after a lost connection), and no secret is written in the file. Where
``docker compose`` works, ``docker compose config`` must accept the file too.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
# ${NAME}, ${NAME:?message}, ${NAME:-default}... : Compose substitutes it from .env
INTERPOLATION = re.compile(r"^\$\{([A-Z_][A-Z0-9_]*)(?:[:?\-+][^}]*)?\}$")
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|_KEY$|API_KEY|ENCRYPTION", re.I)


def load() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text("utf-8"))
    assert isinstance(data, dict)
    return data


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # ["NAME=value", ...]
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def bot_services(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run the bot: built from this repository's Dockerfile."""
    return {name: s for name, s in data["services"].items() if s.get("build") in (".", "./")
            or (isinstance(s.get("build"), dict) and s["build"].get("context") in (".", "./"))}


def test_two_bot_services_share_one_postgresql_database() -> None:
    data = load()
    bots = bot_services(data)
    assert len(bots) == 2, sorted(bots)
    urls = {environment(s).get("DATABASE_URL") for s in bots.values()}
    assert len(urls) == 1 and None not in urls, urls
    url = urls.pop()
    assert url is not None
    parts = urlsplit(url)
    assert parts.scheme in ("postgresql", "postgres")
    # the host is the compose service that runs PostgreSQL
    assert parts.hostname in data["services"], parts.hostname
    db = data["services"][parts.hostname]
    assert str(db["image"]).split(":")[0] in ("postgres", "docker.io/library/postgres")
    assert str(db["image"]).split(":")[1].startswith("15")
    # the password in the URL is the one the server is created with, both from .env
    password = INTERPOLATION.match(parts.password or "")
    assert password is not None, "the database password must come from .env"
    server = INTERPOLATION.match(environment(db)["POSTGRES_PASSWORD"])
    assert server is not None and server.group(1) == password.group(1)
    assert environment(db)["POSTGRES_USER"] == parts.username
    assert environment(db)["POSTGRES_DB"] == parts.path.lstrip("/")


def test_postgresql_keeps_its_data_and_reports_readiness() -> None:
    data = load()
    db = data["services"]["postgres"]
    test = db["healthcheck"]["test"]
    assert "pg_isready" in " ".join(test if isinstance(test, list) else [test])
    mounts = [str(v).split(":") for v in db.get("volumes", [])]
    assert any(m[0] in (data.get("volumes") or {}) and m[1] == "/var/lib/postgresql/data"
               for m in mounts), mounts


def test_bots_wait_for_postgresql_are_restarted_and_health_checked() -> None:
    data = load()
    for name, bot in bot_services(data).items():
        assert bot["depends_on"]["postgres"]["condition"] == "service_healthy", name
        # a crash, or exit 75 (the database connection was lost: the fence), restarts
        # the container, which comes back as the follower
        assert bot["restart"] in ("unless-stopped", "always"), name
        assert bot["healthcheck"]["test"] == ["CMD", "daisybot", "healthcheck"], name
        assert environment(bot).get("HEALTH_PORT", "").isdigit(), name
        env_file = bot.get("env_file")
        assert env_file == ".env" or (isinstance(env_file, list) and ".env" in env_file), name
        assert "command" not in bot or bot["command"] in (["run"], "run"), name


def test_no_secret_is_written_in_the_file() -> None:
    data = load()
    for name, service in data["services"].items():
        for key, value in environment(service).items():
            if SECRET_NAME.search(key):
                assert INTERPOLATION.match(value), f"{name}: {key} is written inline"
            if "://" in value:
                password = urlsplit(value).password
                assert password is None or INTERPOLATION.match(password), f"{name}: {key}"
    text = COMPOSE.read_text("utf-8")
    assert not re.search(r"\b\d{6,}:[A-Za-z0-9_-]{30,}\b", text), "a bot token"
    assert not re.search(r"\b[A-Za-z0-9_-]{43}=", text), "a Fernet key"


def test_the_image_brings_the_postgresql_driver() -> None:
    """The Dockerfile installs the wheel with its dependencies: asyncpg is one of them
    (the image keeps SQLite as its default database)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    assert any(re.match(r"asyncpg\b", d) for d in project["dependencies"])
    dockerfile = (ROOT / "Dockerfile").read_text("utf-8")
    assert "import asyncpg" in dockerfile  # the build fails without the driver
    assert "DATABASE_PATH=/data/" in dockerfile


def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker here")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("no docker compose here")
    (tmp_path / ".env").write_text("BOT_TOKEN=\n")  # env_file: .env must exist
    (tmp_path / "docker-compose.yml").write_text(COMPOSE.read_text("utf-8"))
    done = subprocess.run(
        [docker, "compose", "config", "--quiet"],
        capture_output=True, check=False, cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "POSTGRES_PASSWORD": "x" * 16},
    )
    assert done.returncode == 0, done.stderr.decode()
