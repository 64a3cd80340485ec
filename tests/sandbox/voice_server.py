"""A Discord voice server on loopback: the voice websocket (TLS) and the UDP media socket.

The unmodified ``discord.VoiceClient`` connects to it exactly as to Discord: the sandbox's
gateway answers op 4 with ``VOICE_STATE_UPDATE`` and ``VOICE_SERVER_UPDATE`` whose endpoint
is this server; discord.py dials ``wss://<endpoint>/?v=8`` (TLS with a test CA the bot's
connector trusts, see ``VoiceTls``), sends IDENTIFY, gets READY (ssrc, UDP port, modes),
does IP discovery over UDP, SELECT_PROTOCOL, gets SESSION_DESCRIPTION with a real random
secret key, and then sends RTP. Each packet is decrypted (``aead_xchacha20_poly1305_rtpsize``
through PyNaCl, the header as associated data) and Opus-decoded (discord.py's own libopus
bindings), so a test asserts what a listener in the channel hears (``Listening``).

Design decisions:
- **Sessions are authenticated** against what the gateway handed out: IDENTIFY must carry
  the token of the last ``VOICE_SERVER_UPDATE`` and the session id of the bot's gateway
  session, else 4004; an unknown opcode is 4001; a mode that was not offered is 4016.
- **DAVE**: discord.py 2.7 always offers ``max_dave_protocol_version`` 1 (it needs
  ``davey``). The server cannot be the MLS external sender (nothing on PyPI implements
  that side), so by default it answers ``dave_protocol_version: 0``: transport encryption
  only, which discord.py accepts. ``dave="announce"`` answers version 1 and records the
  client's MLS key package (binary op 26), proving the client takes part; frames then stay
  in DAVE passthrough because no group is ever formed. ``refuse_with=4017`` closes the
  handshake as Discord does when it requires DAVE and the client cannot do it.
- **Failure knobs** per server: ``refuse_with`` (close code right after IDENTIFY),
  ``silent`` (accept the websocket, never answer), ``drop_discovery`` (no UDP reply),
  ``VoiceSession.close(code)`` and ``VoiceSession.drop()`` (a network failure: the TCP
  connection is cut without a close frame) on demand.
- **Packets after a session ended are lost** (counted in ``lost``, never heard): what
  discord.py sends while it has not noticed a drop does not reach listeners on Discord either.
- **libopus is needed only to listen**: ``start`` does not load it, so every Discord test
  runs where it is missing; decoding loads it (``ensure_opus``), and tests that listen take
  the ``libopus`` fixture, which skips them with the reason (fails them under ``CI=true``).
- Everything runs on the test's loop; ``changed`` wakes waiters (no sleeps).
"""

from __future__ import annotations

import asyncio
import ctypes.util
import json
import logging
import secrets
import ssl
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import discord.opus
import nacl.bindings
from aiohttp import WSMsgType, web

_log = logging.getLogger(__name__)

# Voice gateway opcodes (v8).
IDENTIFY = 0
SELECT_PROTOCOL = 1
READY = 2
HEARTBEAT = 3
SESSION_DESCRIPTION = 4
SPEAKING = 5
HEARTBEAT_ACK = 6
RESUME = 7
HELLO = 8
RESUMED = 9
CLIENT_DISCONNECT = 13
MLS_KEY_PACKAGE = 26

HEARTBEAT_INTERVAL_MS = 13750
MODE = "aead_xchacha20_poly1305_rtpsize"
#: What Discord offers today, in its order; discord.py picks the first it supports.
OFFERED_MODES = ["aead_aes256_gcm_rtpsize", MODE]
#: discord.py's (and Discord's) 20 ms Opus silence frame.
OPUS_SILENCE = b"\xf8\xff\xfe"
SAMPLE_RATE = 48000
FRAME_SAMPLES = 960


# -- libopus ---------------------------------------------------------------------------------


def ensure_opus() -> None:
    """Load libopus into discord.py's bindings: the system's, else the one the
    ``opuslib-next-bundled`` wheel ships (a dev dependency on Linux x86_64 only, so a fresh
    clone elsewhere needs the system's). Raises ``RuntimeError`` saying what to install.

    Only decoding what was heard needs it (``VoiceSession.receive``): a sandbox starts, and
    tests that never listen run, without libopus. Tests that listen take the ``libopus``
    fixture (``tests/conftest.py``), which skips them with this reason, or fails under CI."""
    if discord.opus.is_loaded():
        return
    candidates: list[str] = []
    system = ctypes.util.find_library("opus")
    if system:
        candidates.append(system)
    try:
        import opuslib_next  # type: ignore[import-not-found]

        bundled = Path(opuslib_next.__file__).parent / "_native" / "libopus.so"
        if bundled.exists():
            candidates.append(str(bundled))
    except ImportError:
        pass
    for name in candidates:
        try:
            discord.opus.load_opus(name)
            return
        except OSError:
            continue
    raise RuntimeError(
        "libopus not found: install the dev extra (pip install -e '.[dev]'; its bundled libopus is "
        "for Linux x86_64 only) or the system's libopus (apt install libopus0, brew install opus)"
    )


_opus_missing: str | None = None


def opus_problem() -> str | None:
    """None when libopus loads, else why not (the ``ensure_opus`` message; looked up once)."""
    global _opus_missing
    if _opus_missing is None:
        try:
            ensure_opus()
        except RuntimeError as exc:
            _opus_missing = str(exc)
    return _opus_missing


# -- TLS -------------------------------------------------------------------------------------


class VoiceTls:
    """A throwaway CA (``trustme``) and a certificate for 127.0.0.1, made once per process."""

    _instance: VoiceTls | None = None

    def __init__(self) -> None:
        import trustme

        self.ca = trustme.CA()
        self.cert = self.ca.issue_cert("127.0.0.1")

    @classmethod
    def get(cls) -> VoiceTls:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.cert.configure_cert(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self.ca.configure_trust(context)
        return context


# -- what was heard --------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """One RTP packet as a listener got it."""

    sequence: int
    timestamp: int
    ssrc: int
    opus: bytes
    #: Decoded samples per channel (960 for 20 ms at 48 kHz).
    samples: int
    #: Peak absolute sample value of the decoded PCM (0 for digital silence).
    peak: int
    channel_id: int | None
    #: Order of arrival across all sessions of the server.
    arrival: int

    @property
    def silence(self) -> bool:
        """discord.py's silence frame (sent after a clip, and by the bot while it waits for
        audio). Encoded audio, even a quiet stretch, is never this 3-byte packet."""
        return self.opus == OPUS_SILENCE


@dataclass
class Listening:
    """Frames heard, in arrival order, with the questions tests ask."""

    frames: list[Frame]

    @property
    def audio(self) -> list[Frame]:
        return [f for f in self.frames if not f.silence]

    @property
    def audio_seconds(self) -> float:
        """Decoded duration of the non-silent frames."""
        return sum(f.samples for f in self.audio) / SAMPLE_RATE

    def sound_seconds(self, threshold: int = 100) -> float:
        """From the first to the last frame with sound (peak above ``threshold``): what a
        listener hears as the clip, without the quiet padding an encoder adds at the ends."""
        loud = [i for i, f in enumerate(self.audio) if f.peak > threshold]
        if not loud:
            return 0.0
        return sum(f.samples for f in self.audio[loud[0] : loud[-1] + 1]) / SAMPLE_RATE

    @property
    def trailing_silence(self) -> int:
        """Silence frames after the last audio frame (discord.py sends five at the end)."""
        count = 0
        for frame in reversed(self.frames):
            if not frame.silence:
                break
            count += 1
        return count

    def sequences_monotonic(self) -> bool:
        """Each packet's RTP sequence is the previous one + 1 and its timestamp moved on by
        exactly one frame, per SSRC (modulo wrap-around)."""
        last: dict[int, Frame] = {}
        for frame in self.frames:
            before = last.get(frame.ssrc)
            if before is not None:
                if frame.sequence != (before.sequence + 1) % 65536:
                    return False
                if frame.timestamp != (before.timestamp + FRAME_SAMPLES) % 2**32:
                    return False
            last[frame.ssrc] = frame
        return True

    def bursts(self, gap: int = 5) -> list[Listening]:
        """Runs of audio separated by at least ``gap`` silence frames (discord.py ends every
        play with five): one per clip when clips play back to back."""
        runs: list[list[Frame]] = []
        current: list[Frame] = []
        quiet = 0
        for frame in self.frames:
            if frame.silence:
                quiet += 1
                if quiet >= gap and current:
                    runs.append(current)
                    current = []
            else:
                quiet = 0
                current.append(frame)
        if current:
            runs.append(current)
        return [Listening(run) for run in runs]


# -- sessions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    """What the gateway's VOICE_SERVER_UPDATE authorised: a token for a user's session."""

    token: str
    guild_id: int
    user_id: int
    session_id: str
    channel_id: int


@dataclass(eq=False)
class VoiceSession:
    """One voice websocket connection."""

    server: VoiceServer
    ws: web.WebSocketResponse
    number: int
    grant: Grant | None = None
    ssrc: int = 0
    secret_key: bytes | None = None
    mode: str | None = None
    client_address: tuple[str, int] | None = None
    discovered: bool = False
    resumed: bool = False
    max_dave_protocol_version: int = 0
    key_packages: list[bytes] = field(default_factory=list)
    speaking: list[int] = field(default_factory=list)
    heartbeats: int = 0
    frames: list[Frame] = field(default_factory=list)
    closed: bool = False
    close_code: int | None = None
    seq: int = 0
    transport: asyncio.BaseTransport | None = None
    _decoder: Any = None

    @property
    def channel_id(self) -> int | None:
        return None if self.grant is None else self.grant.channel_id

    async def send(self, op: int, data: Any) -> None:
        self.seq += 1
        if not self.ws.closed:
            await self.ws.send_str(json.dumps({"op": op, "d": data, "seq": self.seq}))

    async def close(self, code: int, reason: str = "") -> None:
        """Close the voice websocket with ``code`` (4006, 4014, 4015 ...)."""
        self.close_code = code
        self.closed = True
        self.server.changed()
        await self.ws.close(code=code, message=reason.encode())

    def drop(self) -> None:
        """A network failure: cut the TCP connection without a close frame."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
        self.server.changed()

    def receive(self, packet: bytes) -> None:
        if self.secret_key is None or len(packet) < 12 + 16 + 4:
            return
        first = packet[0]
        header_len = 12 + 4 * (first & 0x0F)
        if first & 0x10:  # an RTP header extension: its 4-byte preamble is unencrypted too
            header_len += 4
        header = packet[:header_len]
        nonce = packet[-4:] + bytes(20)
        try:
            opus = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
                packet[header_len:-4], header, nonce, self.secret_key
            )
        except Exception:
            self.server.undecryptable += 1
            return
        sequence, timestamp, ssrc = struct.unpack_from(">HII", packet, 2)
        if self._decoder is None:
            problem = opus_problem()
            if problem is not None:
                # Not raised: an exception here would close the server's UDP transport.
                self.server.undecodable += 1
                if self.server.undecodable == 1:
                    _log.error("cannot decode what the bot sends (a test that listens needs the "
                               "libopus fixture): %s", problem)
                self.server.changed()
                return
            self._decoder = discord.opus.Decoder()
        pcm = self._decoder.decode(opus, fec=False)
        samples = len(pcm) // (2 * discord.opus.Decoder.CHANNELS)
        values = memoryview(pcm).cast("h")
        peak = max((abs(v) for v in values), default=0)
        self.server.arrivals += 1
        arrival = self.server.arrivals
        frame = Frame(sequence, timestamp, ssrc, bytes(opus), samples, peak, self.channel_id, arrival)
        self.frames.append(frame)
        self.server.changed()


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: VoiceServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.server.datagram(data, addr)


class VoiceServer:
    """One voice server ("region"). Start with ``await server.start()``."""

    def __init__(
        self,
        region: str,
        *,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.region = region
        self._on_change = on_change
        self.grants: dict[str, Grant] = {}
        self.sessions: list[VoiceSession] = []
        self.lost = 0
        self.undecryptable = 0
        #: Packets decrypted but not decoded because libopus is missing (see ``ensure_opus``).
        self.undecodable = 0
        self.discovery_requests = 0
        self.arrivals = 0
        # failure knobs
        self.refuse_with: int | None = None
        self.silent = False
        self.drop_discovery = False
        self.dave: Literal["off", "announce"] = "off"
        self._runner: web.AppRunner | None = None
        self._udp: _Udp | None = None
        self.port = 0
        self.udp_port = 0

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=VoiceTls.get().server_context())
        await site.start()
        self.port = self._runner.addresses[0][1]
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _Udp(self), local_addr=("127.0.0.1", 0)
        )
        self._udp = protocol
        self.udp_port = transport.get_extra_info("sockname")[1]

    async def close(self) -> None:
        for session in self.sessions:
            if not session.closed:
                session.closed = True
                await session.ws.close(code=1001)
        if self._udp is not None and self._udp.transport is not None:
            self._udp.transport.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    # -- what the gateway hands out ---------------------------------------------------------

    def grant(self, *, guild_id: int, user_id: int, session_id: str, channel_id: int) -> str:
        token = secrets.token_hex(8)
        self.grants[token] = Grant(token, guild_id, user_id, session_id, channel_id)
        return token

    def sessions_of(self, user_id: int) -> list[VoiceSession]:
        return [s for s in self.sessions if s.grant is not None and s.grant.user_id == user_id]

    def live_session(self, user_id: int) -> VoiceSession | None:
        for session in reversed(self.sessions_of(user_id)):
            if not session.closed:
                return session
        return None

    def listening(self, channel_id: int | None = None) -> Listening:
        """Everything heard (in ``channel_id`` only, if given), in arrival order."""
        frames = sorted((f for s in self.sessions for f in s.frames), key=lambda f: f.arrival)
        if channel_id is not None:
            frames = [f for f in frames if f.channel_id == channel_id]
        return Listening(frames)

    # -- UDP --------------------------------------------------------------------------------

    def datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) == 74 and data[:4] == b"\x00\x01\x00\x46":
            self.discovery_requests += 1
            ssrc = struct.unpack_from(">I", data, 4)[0]
            session = next((s for s in self.sessions if s.ssrc == ssrc and not s.closed), None)
            if session is None or self.drop_discovery or self._udp is None or self._udp.transport is None:
                self.changed()
                return
            session.client_address = addr
            session.discovered = True
            reply = bytearray(74)
            struct.pack_into(">HHI", reply, 0, 2, 70, ssrc)
            address = addr[0].encode()
            reply[8 : 8 + len(address)] = address
            struct.pack_into(">H", reply, 72, addr[1])
            self._udp.transport.sendto(bytes(reply), addr)
            self.changed()
            return
        if len(data) < 12 or data[0] >> 6 != 2:
            return
        ssrc = struct.unpack_from(">I", data, 8)[0]
        session = next((s for s in self.sessions if s.ssrc == ssrc), None)
        if session is None or session.closed:
            self.lost += 1
            self.changed()
            return
        session.receive(data)

    # -- the websocket -----------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        session = VoiceSession(self, ws, len(self.sessions), transport=request.transport)
        self.sessions.append(session)
        self.changed()
        try:
            if not self.silent:
                await session.send(HELLO, {"heartbeat_interval": HEARTBEAT_INTERVAL_MS})
            async for message in ws:
                if self.silent:
                    continue
                if message.type == WSMsgType.TEXT:
                    await self._on_frame(session, json.loads(message.data))
                elif message.type == WSMsgType.BINARY:
                    self._on_binary(session, message.data)
                elif message.type == WSMsgType.ERROR:
                    break
                if session.closed:
                    break
        except ConnectionError:
            pass
        finally:
            session.closed = True
            if session.close_code is None:
                session.close_code = ws.close_code
            self.changed()
        return ws

    async def _on_frame(self, session: VoiceSession, frame: dict[str, Any]) -> None:
        op = frame.get("op")
        data = frame.get("d") or {}
        if op == HEARTBEAT:
            session.heartbeats += 1
            await session.send(HEARTBEAT_ACK, {"t": data.get("t") if isinstance(data, dict) else data})
        elif op == IDENTIFY:
            await self._identify(session, data)
        elif op == RESUME:
            await self._resume(session, data)
        elif session.grant is None:
            await session.close(4003, "Not authenticated.")
        elif op == SELECT_PROTOCOL:
            await self._select_protocol(session, data)
        elif op == SPEAKING:
            session.speaking.append(int(data.get("speaking", 0)))
            self.changed()
        elif op in (12, 23, 31):  # client connect, DAVE transition ready, invalid commit
            pass
        else:
            await session.close(4001, "Unknown opcode.")

    def _on_binary(self, session: VoiceSession, data: bytes) -> None:
        if data and data[0] == MLS_KEY_PACKAGE:
            session.key_packages.append(data[1:])
            self.changed()

    def _valid_grant(self, data: dict[str, Any]) -> Grant | None:
        grant = self.grants.get(str(data.get("token")))
        if grant is None or str(grant.guild_id) != str(data.get("server_id")):
            return None
        if grant.session_id != data.get("session_id"):
            return None
        if "user_id" in data and str(grant.user_id) != str(data["user_id"]):
            return None
        return grant

    async def _identify(self, session: VoiceSession, data: dict[str, Any]) -> None:
        if session.grant is not None:
            await session.close(4005, "Already authenticated.")
            return
        grant = self._valid_grant(data)
        if grant is None:
            await session.close(4004, "Authentication failed.")
            return
        session.grant = grant
        session.max_dave_protocol_version = int(data.get("max_dave_protocol_version") or 0)
        if self.refuse_with is not None:
            reason = "E2EE/DAVE protocol required." if self.refuse_with == 4017 else "Refused."
            await session.close(self.refuse_with, reason)
            return
        session.ssrc = secrets.randbelow(2**31 - 1) + 1
        await session.send(
            READY,
            {
                "ssrc": session.ssrc,
                "ip": "127.0.0.1",
                "port": self.udp_port,
                "modes": OFFERED_MODES,
            },
        )
        self.changed()

    async def _resume(self, session: VoiceSession, data: dict[str, Any]) -> None:
        grant = self._valid_grant(data)
        old = None
        if grant is not None:
            old = next((s for s in self.sessions if s.grant == grant and s is not session), None)
        if grant is None or old is None or old.secret_key is None:
            await session.close(4006, "Session is no longer valid.")
            return
        session.grant = grant
        session.ssrc = old.ssrc
        session.secret_key = old.secret_key
        session.mode = old.mode
        session.resumed = True
        old.ssrc = 0
        await session.send(RESUMED, None)
        self.changed()

    async def _select_protocol(self, session: VoiceSession, data: dict[str, Any]) -> None:
        if data.get("protocol") != "udp":
            await session.close(4012, "Unknown protocol.")
            return
        mode = (data.get("data") or {}).get("mode")
        if mode != MODE:
            await session.close(4016, "Unknown encryption mode.")
            return
        session.mode = mode
        session.secret_key = secrets.token_bytes(32)
        dave_version = 1 if self.dave == "announce" and session.max_dave_protocol_version >= 1 else 0
        await session.send(
            SESSION_DESCRIPTION,
            {
                "mode": mode,
                "secret_key": list(session.secret_key),
                "audio_codec": "opus",
                "video_codec": None,
                "media_session_id": secrets.token_hex(16),
                "dave_protocol_version": dave_version,
            },
        )
        self.changed()
