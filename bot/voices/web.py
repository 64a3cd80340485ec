"""``GET /clips/{id}.wav?exp=…&sig=…``: the bot's HTTP server hands saved clips to the provider.

``clip_app(...)`` is an ``aiohttp.web.Application`` meant to be mounted by the bot's HTTP server
(``bot.web``): ``app.add_subapp("/clips", clip_app(library, signer))``. Every refusal is a bare
404 (no hint whether the voice exists, the signature was wrong or the link expired), so the
endpoint tells a stranger nothing; the log says which. The clip is at most ~470 KB and already
in memory once read from the database, so it is sent in one piece.
"""

from __future__ import annotations

import logging
import re

from aiohttp import web

from bot.voices.library import VoiceLibrary
from bot.voices.urls import ClipSigner

log = logging.getLogger(__name__)

_PATH = re.compile(r"([0-9a-f]{32})\.wav")
_SIG = re.compile(r"[0-9a-f]{64}")
LIBRARY_KEY = web.AppKey("voice_library", VoiceLibrary)
SIGNER_KEY = web.AppKey("clip_signer", ClipSigner)


async def serve_clip(request: web.Request) -> web.Response:
    match = _PATH.fullmatch(request.match_info["name"])
    exp_raw, sig = request.query.get("exp", ""), request.query.get("sig", "")
    if match is None or not exp_raw.isdigit() or not _SIG.fullmatch(sig):
        raise web.HTTPNotFound()
    voice_id = match.group(1)
    if not await request.app[SIGNER_KEY].verify(voice_id, int(exp_raw), sig):
        log.info("clip %s: refused a bad or expired signature", voice_id)
        raise web.HTTPNotFound()
    clip = await request.app[LIBRARY_KEY].clip(voice_id)
    if clip is None:
        log.info("clip %s: refused (deleted or revoked)", voice_id)
        raise web.HTTPNotFound()
    return web.Response(body=clip, content_type="audio/wav", headers={"Cache-Control": "private, no-store"})


def clip_app(library: VoiceLibrary, signer: ClipSigner) -> web.Application:
    """The ``/clips`` sub-application (mount it at ``/clips``)."""
    app = web.Application()
    app[LIBRARY_KEY] = library
    app[SIGNER_KEY] = signer
    app.router.add_get("/{name}", serve_clip)
    return app
