# Chatterbox TTS for Discord — the bot in one image.
#
# Layers, from least to most often changed: Debian packages, the locked dependencies and build
# tools (rebuilt only when requirements.lock or requirements-build.lock changes), then the
# project's own code, built with those pinned tools (no build isolation, nothing fetched).
# FFmpeg is Debian's (transcoding to fit upload limits, Opus for voice chat); the pip-packaged
# FFmpeg (the `ffmpeg` extra) is not installed here. libopus0 and libsodium23 are what
# discord.py's voice stack (PyNaCl, DAVE via davey) loads; tini is PID 1, so SIGTERM from
# `docker stop` reaches the bot and zombie processes (FFmpeg) are reaped.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HTTP_HOST=0.0.0.0

# Versions are not pinned: bookworm's stable archive only takes security fixes, which we want.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg libopus0 libsodium23 ca-certificates tini \
    && rm -rf /var/lib/apt/lists/*

# The working directory holds nothing but data: the default DATABASE_URL
# (sqlite+aiosqlite:///./data/chatterbox.db) lands in the /app/data volume without any setting,
# so no line of an --env-file can point the bot at a directory it cannot write.
RUN groupadd --gid 10001 chatterbox \
    && useradd --create-home --uid 10001 --gid 10001 chatterbox \
    && mkdir -p /app/data \
    && chown 10001:10001 /app/data

COPY requirements.lock requirements-build.lock /tmp/
RUN pip install --no-cache-dir --require-hashes --no-deps \
        -r /tmp/requirements.lock -r /tmp/requirements-build.lock \
    && rm /tmp/requirements.lock /tmp/requirements-build.lock

COPY pyproject.toml README.md LICENSE /tmp/src/
COPY bot /tmp/src/bot
COPY cogs /tmp/src/cogs
RUN pip install --no-cache-dir --no-deps --no-build-isolation /tmp/src \
    && pip check \
    && rm -rf /tmp/src

WORKDIR /app
USER 10001:10001
VOLUME ["/app/data"]
# The bot's HTTP server (provider callbacks, /healthz, /metrics); HTTP_PORT=0 turns it off.
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "bot.healthcheck"]
ENTRYPOINT ["/usr/bin/tini", "--", "chatterbox-bot"]
CMD ["run"]
