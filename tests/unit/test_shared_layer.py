"""The shared layer: settings, event validation, clients, time."""

from collections.abc import Iterator

import pytest
from pydantic import BaseModel, Field

from opsflow import clients, notify, polling, timeutil
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


class _FakeTime:
    """A clock that moves only when slept on, for waiting code."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class _Remaining:
    def __init__(self, millis: int) -> None:
        self.millis = millis

    def get_remaining_time_in_millis(self) -> int:
        return self.millis


@pytest.fixture
def fake_time() -> Iterator[_FakeTime]:
    fake = _FakeTime()
    timeutil.set_source(lambda: fake.now, fake.sleep)
    yield fake
    timeutil.set_source(None)


def test_polling_asks_again_every_interval_until_the_answer_is_yes(fake_time: _FakeTime) -> None:
    ready_at = fake_time.now + 4.2

    def check() -> str:
        if fake_time.now < ready_at:
            raise LookupError("not yet")
        return "ready"

    assert polling.poll(check, not_yet=LookupError, every=0.5, for_seconds=20) == "ready"
    assert fake_time.now - ready_at < 0.5  # seen within one interval of the change
    assert set(fake_time.sleeps) == {0.5}


def test_polling_gives_up_with_the_last_answer_once_its_time_is_spent(fake_time: _FakeTime) -> None:
    start = fake_time.now

    def check() -> None:
        raise LookupError(f"still not at {fake_time.now - start:.0f} s")

    with pytest.raises(LookupError, match="still not at 10 s"):
        polling.poll(check, not_yet=LookupError, every=1, for_seconds=10)
    assert fake_time.now - start == 10


def test_polling_lets_other_errors_through_at_once(fake_time: _FakeTime) -> None:
    def check() -> None:
        raise ValueError("broken")

    with pytest.raises(ValueError, match="broken"):
        polling.poll(check, not_yet=LookupError, every=1, for_seconds=10)
    assert fake_time.sleeps == []


def test_the_polling_budget_stays_within_the_functions_remaining_time() -> None:
    assert polling.budget(25, _Remaining(40_000), reserve_seconds=5) == 25
    assert polling.budget(25, _Remaining(20_000), reserve_seconds=5) == 20 - 5 - polling.MARGIN_SECONDS
    assert polling.budget(25, _Remaining(1_000), reserve_seconds=5) == 0  # ask once, never past the timeout
    assert polling.budget(0, _Remaining(40_000)) == 0


def test_polling_ends_even_where_sleeping_takes_no_time() -> None:
    calls = []

    def check() -> None:
        calls.append(1)
        raise LookupError("not yet")

    timeutil.set_source(lambda: 1_800_000_000.0, lambda _: None)  # a clock that never moves
    try:
        with pytest.raises(LookupError):
            polling.poll(check, not_yet=LookupError, every=1, for_seconds=5)
    finally:
        timeutil.set_source(None)
    assert len(calls) == 6  # one per interval of the budget, then the last answer


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


def test_an_arn_s_short_name_is_what_people_call_it() -> None:
    from opsflow.arns import execution_name, group_name

    assert group_name("arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web/0123456789abcdef") == "web"
    assert execution_name("arn:aws:states:eu-west-1:123456789012:execution:opsflow-rolling-restart:run-1") == "run-1"
