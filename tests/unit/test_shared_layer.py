"""The shared layer: settings, event validation, clients, time."""

import pytest
from pydantic import BaseModel, Field

from opsflow import clients, notify, timeutil
from opsflow.errors import InvalidInputError
from opsflow.settings import EnvSettings, SettingsError, load_settings
from opsflow.validation import parse_event


class ExampleSettings(EnvSettings):
    table_name: str = Field(alias="TABLE_NAME", min_length=3)
    retries: int = Field(default=3, alias="RETRIES", ge=0)


def test_settings_are_read_from_the_environment_with_types() -> None:
    settings = load_settings(ExampleSettings, {"TABLE_NAME": "runs", "RETRIES": "5", "OTHER": "x"})
    assert (settings.table_name, settings.retries) == ("runs", 5)


def test_a_missing_variable_is_named_in_the_error() -> None:
    with pytest.raises(SettingsError, match="TABLE_NAME"):
        load_settings(ExampleSettings, {})


def test_a_malformed_variable_is_named_in_the_error() -> None:
    with pytest.raises(SettingsError, match="RETRIES"):
        load_settings(ExampleSettings, {"TABLE_NAME": "runs", "RETRIES": "-1"})


class Request(BaseModel):
    instance_id: str = Field(pattern=r"^i-[0-9a-f]+$")
    count: int


def test_a_malformed_event_raises_invalid_input_naming_every_bad_field() -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_event(Request, {"instance_id": "web-1", "count": "many"})
    assert "instance_id" in str(caught.value)
    assert "count" in str(caught.value)


def test_injected_clients_replace_boto3_until_reset() -> None:
    fake = object()
    clients.inject("ec2", fake)
    assert clients.client("ec2") is fake
    clients.reset()
    assert clients.client("ec2") is not fake


def test_clients_retry_throttling_with_backoff() -> None:
    client = clients.client("ec2")
    assert client.meta.config.retries["mode"] == "standard"
    assert client.meta.config.retries["total_max_attempts"] >= 5


def test_time_can_be_read_from_another_source() -> None:
    timeutil.set_source(lambda: 1_700_000_000.0)
    assert timeutil.iso_now() == "2023-11-14T22:13:20+00:00"
    timeutil.set_source(None)
    assert timeutil.epoch() > 1_700_000_000


def test_a_subject_built_from_names_is_one_line_sns_accepts() -> None:
    subject = notify.subject_line("opsflow: approve the rolling restart of " + "web\n" * 40)
    assert len(subject) < 100 and subject.endswith("...")
    assert not any(ord(c) < 32 for c in subject), "SNS refuses line breaks and control characters"
    assert notify.subject_line("short\tone") == "short one"


def test_a_message_over_sns_s_size_limit_is_cut_and_says_where_the_rest_is() -> None:
    text = "é" * 200_000  # two bytes each: 400,000 bytes
    body = notify.message_body(text, "the run table")
    assert len(body.encode()) <= notify.MESSAGE_MAX_BYTES
    assert body.startswith("é" * 1000) and body.endswith("the full text is in the run table)\n")
    assert notify.message_body("small", "anywhere") == "small"
