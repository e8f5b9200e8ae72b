# syntax=docker/dockerfile:1
# DaisyBot: multi-stage, slim, non-root; the database lives on the /data volume.
#   docker build -t daisybot .
#   docker run --env-file .env -v daisybot:/data daisybot

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY storage ./storage
RUN python -m venv /opt/venv && /opt/venv/bin/pip install .

FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DATABASE_PATH=/data/daisybot.sqlite3 \
    HEALTH_PORT=8080
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin daisybot \
    && mkdir -p /data && chown daisybot:daisybot /data
COPY --from=build /opt/venv /opt/venv
USER daisybot
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["daisybot", "healthcheck"]
ENTRYPOINT ["daisybot"]
CMD ["run"]
