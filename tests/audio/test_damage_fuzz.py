"""Fuzz: damaged WAVs and status documents raise only the typed errors (AudioError,
ProtocolError), never ``RuntimeError``/``struct.error``/… that nothing upstream expects."""

from __future__ import annotations

import json
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.audio import AudioError, join_wavs, wav_info
from bot.gateway.errors import ProtocolError
from bot.gateway.models import StatusDocument
from tests.audio.wavs import speechlike_wav

GOOD = speechlike_wav(0.05)
GOOD_DOCUMENT = {
    "request_id": "req-1", "status": "COMPLETED", "model_id": "chatterbox", "error": None,
    "output": {"media_url": ["https://cdn.example/a.wav"], "media_type": "audio/wav"},
    "created_at": "2026-03-31T07:32:03.749Z", "updated_at": "2026-05-22 13:19:23",
    "completed_at": "2026-05-22 13:19:23",
}

# Header fields worth breaking: RIFF size, fmt chunk size, format tag, channels, rate, byte
# rate, block align, bits per sample, data size.
HEADER_FIELDS = [(4, "<I"), (16, "<I"), (20, "<H"), (22, "<H"), (24, "<I"), (28, "<I"), (32, "<H"),
                 (34, "<H"), (40, "<I")]


@st.composite
def damaged_wavs(draw: st.DrawFn) -> bytes:
    data = bytearray(GOOD)
    for _ in range(draw(st.integers(0, 4))):
        offset, fmt = draw(st.sampled_from(HEADER_FIELDS))
        limit = 2 ** (8 * struct.calcsize(fmt)) - 1
        struct.pack_into(fmt, data, offset, draw(st.integers(0, limit)))
    for _ in range(draw(st.integers(0, 6))):
        data[draw(st.integers(0, 63))] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(data)))
    return bytes(data[:cut]) if draw(st.booleans()) else bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged_wavs())
def test_damaged_wavs_raise_only_audio_error(data: bytes) -> None:
    try:
        info = wav_info(data)
    except AudioError:
        return
    assert info.frames >= 0 and info.sample_rate > 0
    try:
        join_wavs([data, data], pause_ms=10)
    except AudioError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_after_a_riff_header_raise_only_audio_error(tail: bytes) -> None:
    try:
        wav_info(b"RIFF\x00\x00\x00\x00WAVE" + tail)
    except AudioError:
        pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (st.lists(children, max_size=4)
                      | st.dictionaries(st.text(max_size=10), children, max_size=4)),
    max_leaves=12,
)


@st.composite
def damaged_documents(draw: st.DrawFn) -> bytes:
    document: dict[str, object] = dict(GOOD_DOCUMENT)
    for key in draw(st.lists(st.sampled_from(sorted(GOOD_DOCUMENT)), max_size=4)):
        if draw(st.booleans()):
            document.pop(key, None)
        else:
            document[key] = draw(json_values)
    raw = json.dumps(document).encode()
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(raw)))
        raw = raw[:cut] + draw(st.binary(max_size=8))
    return raw


@settings(max_examples=300, deadline=None)
@given(damaged_documents())
def test_damaged_status_documents_raise_only_protocol_error(raw: bytes) -> None:
    try:
        doc = StatusDocument.parse_json(raw)
    except ProtocolError:
        return
    assert doc.request_id is not None


@settings(max_examples=100, deadline=None)
@given(json_values)
def test_any_json_value_as_a_status_document_raises_only_protocol_error(value: object) -> None:
    try:
        StatusDocument.parse_json(json.dumps(value))
    except ProtocolError:
        pass
