"""The Docker files do what the README says, checked without a Docker engine.

No engine runs here, so these tests read the Dockerfile, .dockerignore and .env.example the way
Docker does (instructions in order; ``--env-file`` lines taken literally) and check the promises
that broke before: ``docker run --env-file .env`` with .env.example as shipped overrides none of
the image's settings, the default database lands in the image's volume, dependencies are a
layer of their own built from the lock file, and only Debian's FFmpeg is in the image.
`make lint` adds hadolint and `docker compose config`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

from bot.config import DEFAULT_DATABASE_URL, Settings

ROOT = Path(__file__).resolve().parents[2]


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    result = []
    for line in logical:
        word, _, rest = line.partition(" ")
        result.append((word.upper(), rest.strip()))
    return result


def _docker_env_file(path: Path) -> dict[str, str]:
    """An env file as `docker run --env-file` reads it: '#' lines skipped, values literal."""
    env: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep, f"{raw!r}: without '=' Docker would copy the variable from the host"
        assert not re.search(r"\s", name), f"{raw!r}: Docker refuses whitespace in a name"
        env[name] = value
    return env


def _image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for word, args in _instructions():
        if word == "ENV":
            for name, value in re.findall(r"(\w+)=(\S+)", args):
                env[name] = value
    return env


def test_env_example_overrides_none_of_the_images_settings() -> None:
    shipped = _docker_env_file(ROOT / ".env.example")
    assert set(shipped) == {"DISCORD_TOKEN", "CHATTERBOX_API_KEY"}
    assert not set(shipped) & set(_image_env())
    # The data path comes from WORKDIR, not from an ENV that a .env line could replace.
    assert "DATABASE_URL" not in _image_env()


def test_default_database_lands_in_the_images_volume() -> None:
    instructions = _instructions()
    workdir = [args for word, args in instructions if word == "WORKDIR"][-1]
    volumes = [json.loads(args) for word, args in instructions if word == "VOLUME"]
    relative = DEFAULT_DATABASE_URL.split(":///", 1)[1]
    assert relative.startswith("./"), "the default is relative to the working directory"
    database = PurePosixPath(workdir) / relative
    assert any(database.parent == PurePosixPath(v) for vs in volumes for v in vs), (database, volumes)
    owner = [args for word, args in instructions if word == "USER"][-1]
    assert owner.split(":")[0] not in ("root", "0")
    chown = [args for word, args in instructions if word == "RUN" and "chown" in args]
    assert chown and str(database.parent) in chown[0] and owner.split(":")[0] in chown[0]


def test_settings_from_env_example_as_docker_passes_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in (_docker_env_file(ROOT / ".env.example") | _image_env()).items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # no .env here
    settings = Settings()
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.ffmpeg_path is None


def test_unfilled_env_file_stops_with_one_line_not_a_traceback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    env |= _docker_env_file(ROOT / ".env.example") | _image_env()
    done = subprocess.run(
        [sys.executable, "-m", "bot", "run"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("chatterbox-bot: DISCORD_TOKEN is not set")
    assert len(done.stderr.strip().splitlines()) == 1


def test_dependencies_are_a_layer_built_from_the_lock_before_the_code() -> None:
    instructions = _instructions()
    copies = [(i, args) for i, (word, args) in enumerate(instructions) if word == "COPY"]
    lock_copy = next(i for i, args in copies if args.split()[0] == "requirements.lock")
    code_copy = next(i for i, args in copies if args.split()[0] in ("bot", "cogs", "."))
    installs = [i for i, (word, args) in enumerate(instructions) if word == "RUN" and "pip install" in args]
    locked = [i for i in installs if "--require-hashes" in instructions[i][1]]
    assert locked and lock_copy < locked[0] < code_copy
    project = [i for i in installs if i > code_copy]
    assert project, "the project is installed after its code is copied"
    assert all("--no-deps" in instructions[i][1] for i in project), "the code layer adds no packages"
    # The build tools are locked too: installed with the dependencies, and the project is built
    # with them rather than with whatever setuptools is newest (build isolation would fetch it).
    assert "requirements-build.lock" in instructions[locked[0]][1]
    assert all("--no-build-isolation" in instructions[i][1] for i in project)
    build_lock = (ROOT / "requirements-build.lock").read_text()
    assert re.search(r"^setuptools==", build_lock, re.MULTILINE) and "--hash=sha256:" in build_lock


def test_only_debians_ffmpeg_and_an_init() -> None:
    instructions = _instructions()
    text = " ".join(args for _, args in instructions)
    assert "apt-get install" in text and " ffmpeg " in text and " tini" in text
    assert "imageio" not in text and "[ffmpeg]" not in text
    lock = (ROOT / "requirements.lock").read_text()
    assert "imageio-ffmpeg" not in lock, "the image installs requirements.lock: no pip FFmpeg there"
    assert "imageio-ffmpeg==" in (ROOT / "requirements-dev.lock").read_text(), "tests need an FFmpeg anywhere"
    entrypoint = json.loads([args for word, args in instructions if word == "ENTRYPOINT"][-1])
    assert entrypoint[:2] == ["/usr/bin/tini", "--"]
    healthcheck = [args for word, args in instructions if word == "HEALTHCHECK"][-1]
    assert '"python", "-m", "bot.healthcheck"' in healthcheck


def test_build_context_holds_only_what_the_image_copies() -> None:
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "*", "everything is excluded first (.venv, .env, data, .git never enter)"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    sources = set()
    for word, args in _instructions():
        if word == "COPY":
            sources.update(args.split()[:-1])
    assert sources <= allowed, sources - allowed
    assert not allowed & {".env", ".venv", "data", ".git"}


def test_every_file_compose_mounts_from_the_repository_exists() -> None:
    """A bind mount of a missing file makes Docker create an empty directory in its place
    (Caddy then starts without its configuration): every ``./path`` mount must be in the repo."""
    compose = (ROOT / "docker-compose.yml").read_text()
    sources = re.findall(r"^\s*-\s*(\./[^:\s]+):", compose, re.MULTILINE)
    assert "./deploy/Caddyfile" in sources
    missing = [source for source in sources if not (ROOT / source).exists()]
    assert missing == []
