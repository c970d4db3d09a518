from datetime import UTC, datetime

import pytest

from smallwins.core.events import InvalidEvent, parse_event

VALID = {
    "id": "m-1",
    "source": "discord",
    "type": "message.posted",
    "subject": "80351110224678912",
    "time": "2026-03-02T13:00:00+01:00",
    "proof": "https://discord.com/channels/1/2/3",
    "data": {"channel": "general"},
}


def test_valid_event_is_normalized_to_utc() -> None:
    event = parse_event(VALID)
    assert event.time == datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    assert event.key == "discord:m-1"


def test_json_text_is_accepted() -> None:
    import json

    assert parse_event(json.dumps(VALID)).subject == VALID["subject"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"time": "2026-03-02T13:00:00"}, "'time'"),
        ({"type": "Posted Message"}, "'type'"),
        ({"source": "Discord!"}, "'source'"),
        ({"subject": ""}, "'subject'"),
        ({"data": {"blob": "x" * 5000}}, "'data'"),
        ({"colour": "red"}, "'colour'"),
        ({"time": "2999-01-01T00:00:00Z"}, "'time': Value error, is in the future"),
        ({"data": {"target": "no-source-here"}}, "'data': Value error, target must name another event"),
    ],
)
def test_bad_fields_are_named(change: dict, named: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event({**VALID, **change})
    assert named in str(caught.value)


def test_missing_field_and_bad_json() -> None:
    payload = dict(VALID)
    del payload["subject"]
    with pytest.raises(InvalidEvent, match="'subject': Field required"):
        parse_event(payload)
    with pytest.raises(InvalidEvent, match="not valid JSON"):
        parse_event('{"id": ')
    with pytest.raises(InvalidEvent, match="expected a JSON object"):
        parse_event("[1, 2]")


def test_bad_json_names_the_column_of_the_break_also_in_a_line_with_its_newline() -> None:
    line = '{"id": "x", "source": "discord", "type": "message.posted", ,}\n'
    with pytest.raises(InvalidEvent, match=r"at column 60$"):
        parse_event(line)
    with pytest.raises(InvalidEvent, match=r"at line 3 column 3$"):
        parse_event('{\n  "id": "x",\n  ,\n}')
