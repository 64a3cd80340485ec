"""``python -m bot.healthcheck``: the Docker image's HEALTHCHECK, one GET of the bot's ``/healthz``.

Exit 0 when the bot's HTTP server answers ``/healthz`` with 200, 1 otherwise (503 = up but not
healthy: Discord not connected, database unreachable; or no answer at all). One line goes to
stdout, which Docker keeps in ``docker inspect`` under ``State.Health``.

Why a separate module with the standard library: it runs every 30 s in a fresh process next
to the bot, so it must start fast, import nothing heavy and depend on no setting but the two
it reads from the environment the image sets (``HTTP_HOST``, ``HTTP_PORT``; defaults
``127.0.0.1`` and ``8080``, as the bot's own). A wildcard ``HTTP_HOST`` (``0.0.0.0``, ``::``)
is reached through loopback. ``HTTP_PORT=0`` means the operator turned the HTTP server off:
there is nothing to ask, so the check reports that and passes rather than marking a working
bot unhealthy forever.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

TIMEOUT_SECONDS = 4.0  # under the image's HEALTHCHECK --timeout=5s, so we report, not Docker


def healthz_url(environ: dict[str, str]) -> str | None:
    """The address of ``/healthz`` for these settings, or None when the server is off."""
    port = environ.get("HTTP_PORT", "").strip() or "8080"
    if port == "0":
        return None
    host = environ.get("HTTP_HOST", "").strip() or "127.0.0.1"
    if host in ("0.0.0.0", "*"):
        host = "127.0.0.1"
    elif host in ("::", "[::]"):
        host = "[::1]"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}/healthz"


def check(environ: dict[str, str]) -> tuple[int, str]:
    """(exit status, one line saying why)."""
    url = healthz_url(environ)
    if url is None:
        return 0, "the HTTP server is off (HTTP_PORT=0): health is not checked"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            body = response.read(2048).decode("utf-8", "replace").strip()
            return 0, f"healthy: {body}"
    except urllib.error.HTTPError as exc:
        body = exc.read(2048).decode("utf-8", "replace").strip()
        return 1, f"unhealthy ({exc.code}): {body}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return 1, f"no answer from {url}: {reason}"


def main() -> int:
    status, line = check(dict(os.environ))
    print(line)
    return status


if __name__ == "__main__":
    sys.exit(main())
