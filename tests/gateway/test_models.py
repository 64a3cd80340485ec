"""Gateway documents: tolerant of extras, strict about what the client relies on."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.gateway import (
    JobStatus,
    ProtocolError,
    StatusDocument,
    SubmitAccepted,
    TTSParams,
    TTSRequest,
    parse_timestamp,
)

DOC = {
    "request_id": "req-1",
    "status": "COMPLETED",
    "model_id": "chatterbox-tts",
    "error": None,
    "output": {"media_url": ["https://cdn.example/a.wav"], "media_type": "audio/wav"},
    "created_at": "2026-03-31T07:32:03.749Z",
    "updated_at": "2026-05-22 13:19:23",
    "completed_at": "2026-05-22 13:19:23.5",
}


def test_both_timestamp_shapes_parse_as_utc() -> None:
    doc = StatusDocument.parse(DOC)
    assert doc.created_at == datetime(2026, 3, 31, 7, 32, 3, 749000, tzinfo=UTC)
    assert doc.updated_at == datetime(2026, 5, 22, 13, 19, 23, tzinfo=UTC)
    assert doc.completed_at == datetime(2026, 5, 22, 13, 19, 23, 500000, tzinfo=UTC)
    for moment in (doc.created_at, doc.updated_at, doc.completed_at):
        assert moment is not None and moment.utcoffset() == timedelta(0)


def test_offset_timestamps_are_converted_to_utc() -> None:
    assert parse_timestamp("2026-03-31T09:32:03+02:00") == datetime(2026, 3, 31, 7, 32, 3, tzinfo=UTC)
    assert parse_timestamp(None) is None
    assert parse_timestamp("") is None


@pytest.mark.parametrize(
    "bad", ["yesterday", "2026-13-01 00:00:00", 1711870323, ["2026-01-01"], "0001-01-01T00:00:00+01:00", "Z"]
)
def test_bad_timestamps_are_protocol_errors(bad: object) -> None:
    with pytest.raises(ProtocolError):
        StatusDocument.parse({**DOC, "created_at": bad})


def test_extra_fields_are_tolerated_everywhere() -> None:
    doc = StatusDocument.parse(
        {**DOC, "progress": 0.4, "billing": {"cost": 0.01},
         "output": {**DOC["output"], "duration": 3.2, "sample_rate": 24000}}
    )
    assert doc.status is JobStatus.COMPLETED
    assert doc.media_urls == ["https://cdn.example/a.wav"]
    assert doc.output is not None and doc.output.media_type == "audio/wav"


def test_media_url_is_always_a_list() -> None:
    lone = StatusDocument.parse({**DOC, "output": {"media_url": "https://cdn.example/b.wav"}})
    assert lone.media_urls == ["https://cdn.example/b.wav"]
    empty = StatusDocument.parse({**DOC, "status": "QUEUED", "output": None})
    assert empty.media_urls == []


def test_status_is_matched_case_insensitively_and_unknown_is_rejected() -> None:
    assert StatusDocument.parse({**DOC, "status": "processing"}).status is JobStatus.PROCESSING
    with pytest.raises(ProtocolError, match="status"):
        StatusDocument.parse({**DOC, "status": "CANCELLED"})
    with pytest.raises(ProtocolError):
        StatusDocument.parse({**DOC, "status": 3})


@pytest.mark.parametrize(
    "data",
    [None, [], "COMPLETED", 42, {}, {"status": "QUEUED"}, {"request_id": "", "status": "QUEUED"},
     {"request_id": "x", "status": "QUEUED", "output": "nope"},
     {"request_id": "x", "status": "QUEUED", "output": {"media_url": [1, 2]}}],
)
def test_malformed_documents_are_protocol_errors(data: object) -> None:
    with pytest.raises(ProtocolError) as caught:
        StatusDocument.parse(data)
    assert caught.value.refund is False
    assert "bot could not understand" in caught.value.user_message


def test_invalid_json_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="not valid JSON"):
        StatusDocument.parse_json(b"<html>502 Bad Gateway</html>")
    assert StatusDocument.parse_json(json.dumps(DOC).encode()).request_id == "req-1"


def test_error_given_as_an_object_keeps_its_message() -> None:
    doc = StatusDocument.parse({**DOC, "status": "FAILED", "error": {"code": 7, "message": "bad clip"}})
    assert doc.error == "bad clip"


def test_terminal_statuses() -> None:
    assert {s for s in JobStatus if s.terminal} == {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.ERROR}


def test_submit_answer_parses_and_tolerates_extras() -> None:
    accepted = SubmitAccepted.parse(
        {"request_id": "r9", "status": "QUEUED", "polling_url": "https://g/v2/requests/status/r9", "eta": 3}
    )
    assert (accepted.request_id, accepted.status) == ("r9", JobStatus.QUEUED)
    with pytest.raises(ProtocolError):
        SubmitAccepted.parse({"status": "QUEUED"})


def test_request_body_flattens_params_and_omits_missing_audio_url() -> None:
    request = TTSRequest(text="Hello", params=TTSParams(exaggeration=0.7))
    assert request.to_body() == {"text": "Hello", "exaggeration": 0.7, "temperature": 0.8, "cfg": 0.5}
    with_voice = TTSRequest(text="Hi", audio_url="https://x/v.wav", cfg=1.5)
    assert with_voice.to_body() == {
        "text": "Hi", "audio_url": "https://x/v.wav", "exaggeration": 0.5, "temperature": 0.8, "cfg": 1.5,
    }
    assert TTSRequest(text="a", temperature=0.3) == TTSRequest(text="a", params=TTSParams(temperature=0.3))
    assert with_voice.cfg == 1.5 and with_voice.exaggeration == 0.5


# --- hypothesis: no input crashes the parser ---------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (st.lists(children, max_size=4)
                      | st.dictionaries(st.text(max_size=10), children, max_size=4)),
    max_leaves=20,
)
field_values = st.one_of(
    json_values,
    st.sampled_from(["QUEUED", "completed", "FAILED", "ERROR", "DONE", "", "2026-03-31T07:32:03.749Z",
                     "2026-05-22 13:19:23", "2026-02-30 00:00:00", "9999-12-31T23:59:59+14:00"]),
)
near_documents = st.fixed_dictionaries(
    {},
    optional={
        "request_id": field_values,
        "status": field_values,
        "model_id": field_values,
        "error": field_values,
        "output": st.one_of(field_values, st.fixed_dictionaries(
            {}, optional={"media_url": field_values, "media_type": field_values})),
        "created_at": field_values,
        "updated_at": field_values,
        "completed_at": field_values,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(json_values, near_documents))
def test_arbitrary_json_parses_or_raises_protocol_error(data: object) -> None:
    try:
        doc = StatusDocument.parse(data)
    except ProtocolError as exc:
        assert exc.user_message and exc.refund is False
        return
    assert isinstance(doc.status, JobStatus)
    assert doc.request_id
    for moment in (doc.created_at, doc.updated_at, doc.completed_at):
        assert moment is None or moment.utcoffset() is not None


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_parse_or_raise_protocol_error(raw: bytes) -> None:
    try:
        StatusDocument.parse_json(raw)
    except ProtocolError:
        pass
