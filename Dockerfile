# Chatterbox TTS for Discord — the bot in one image.
# FFmpeg comes from the distribution (transcoding to fit upload limits, Opus for voice chat);
# libopus0 and libsodium23 are what discord.py's voice stack (PyNaCl, DAVE via davey) loads.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DATABASE_URL=sqlite+aiosqlite:////data/chatterbox.db \
    FFMPEG_PATH=/usr/bin/ffmpeg

RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg libopus0 libsodium23 ca-certificates \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 chatterbox \
    && mkdir -p /data && chown chatterbox:chatterbox /data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY cogs ./cogs
RUN pip install .

USER chatterbox
VOLUME ["/data"]
ENTRYPOINT ["chatterbox-bot"]
CMD ["run"]
