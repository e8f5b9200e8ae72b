# syntax=docker/dockerfile:1
# DaisyBot: multi-stage, slim, non-root; the database lives on the /data volume.
#   docker build -t daisybot .
#   docker run -d --name daisybot --restart unless-stopped --env-file .env -v daisybot:/data daisybot
# Settings come from the environment (see .env.example). Webhook mode: set WEBHOOK_URL
# (and WEBHOOK_SECRET) and publish WEBHOOK_PORT, e.g. -p 8443:8443.

# ---------------------------------------------------------------- build: a venv with the app
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Only what the package needs (never .env, .venv, playground-data, tests). The test
# stand-ins (bot/sandbox) are kept out twice: .dockerignore leaves them out of the
# build context, and the wheel excludes them (pyproject.toml).
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY storage ./storage
# A wheel, installed (not editable): the image runs what the wheel carries, with its
# dependencies (asyncpg too: DATABASE_URL=postgresql://... works; SQLite stays the default).
RUN pip wheel --no-deps --wheel-dir /wheels . \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install /wheels/daisybot-*.whl \
    && cd / && /opt/venv/bin/python -c "import importlib.util as u, sys; \
sys.exit('test stand-ins in the image' if u.find_spec('bot.sandbox') else 0)" \
    && /opt/venv/bin/python -c "import asyncpg"

# ---------------------------------------------------------------- runtime
FROM python:3.11-slim-bookworm AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DATABASE_PATH=/data/daisybot.sqlite3 \
    HEALTH_PORT=8080
RUN groupadd --system --gid 10001 daisybot \
    && useradd --system --no-log-init --uid 10001 --gid 10001 --home-dir /data \
       --shell /usr/sbin/nologin daisybot \
    && mkdir -p /data && chown 10001:10001 /data
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
# Webhook mode only (WEBHOOK_PORT); /healthz (HEALTH_PORT) answers inside the container.
EXPOSE 8443
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["daisybot", "healthcheck"]
ENTRYPOINT ["daisybot"]
CMD ["run"]
