"""The patch preview's report over plain data (opsflow.preview_report): patches grouped across servers,
unreadable servers named, the subject's findings, and an email too long cut to its summary with
where the full report is."""

import datetime as dt
from typing import Any

import pytest

from opsflow.preview_report import (
    NOT_LISTED,
    BatchResult,
    Preview,
    ReportEvent,
    batch_key,
    collect_listing,
    compose,
    handed_over,
    plural,
)

NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)
PREFIX = "patch-preview/run-7"


def report_event(**overrides: Any) -> ReportEvent:
    return ReportEvent.model_validate(
        {
            "executionArn": "arn:aws:states:eu-west-1:123456789012:execution:opsflow-patch-preview:run-7",
            "runPrefix": PREFIX,
            "fleet": {"bucket": "b", "key": f"{PREFIX}/fleet.json"},
            "window": {"id": "mw-1", "name": "web-patching", "nextRun": "2026-11-23T16:00:00+00:00", "hoursAway": 6.0},
            "staleAfterHours": 72,
            "mailWhenNothingPending": True,
            "batches": {"bucket": "b", "key": f"{PREFIX}/batches.json", "count": 1},
            "results": [{"batch": 0}],
        }
        | overrides
    )


def server(instance_id: str, name: str, managed: bool = True, **row: Any) -> dict[str, Any]:
    return {
        "instanceId": instance_id,
        "name": name,
        "managed": managed,
        "stale": False,
        "lastOperationAt": "2026-11-23T09:00:00+00:00",
        "pendingReboot": 0,
    } | row


def patch(kb: str, severity: str = "Critical", state: str = "Missing", cves: str = "") -> dict[str, Any]:
    return {"KBId": kb, "Title": f"Update {kb}", "Severity": severity, "Classification": "Security", "State": state} | (
        {"CVEIds": cves} if cves else {}
    )


FLEET = [server("i-1", "web-1"), server("i-2", "web-2"), server("i-3", "web-3"), server("i-9", "db-1", managed=False)]
LINES = {
    0: [
        {"value": "i-1", "item": patch("KB1", cves="CVE-1,CVE-2")},
        {"value": "i-2", "item": patch("KB1", state="Failed", cves="CVE-2")},
        {"value": "i-2", "item": patch("KB2", severity="Low")},
        {"value": "i-3", "error": "AccessDeniedException"},
    ]
}


def preview(fleet: list[dict[str, Any]] = FLEET, lines: dict[int, Any] = LINES, **event: Any) -> Preview:
    parsed = report_event(**event)
    batches = [{"batch": n, "instanceIds": [i["value"] for i in items]} for n, items in lines.items()]
    return Preview(parsed, fleet, collect_listing(batches, parsed.results, lambda n: lines[n]), NOW)


def test_patches_are_grouped_across_servers_most_severe_first() -> None:
    made = preview()

    assert made.subject() == "Patch preview web-patching (in 6 h): 2 patches on 2 servers, 1 critical [1 unreadable]"
    text = "\n".join(made.head() + made.body())
    assert "3 servers checked; 2 will get patches: 2 distinct patches, 3 installations." in text
    assert text.index("[Critical] Update KB1") < text.index("[Low] Update KB2")
    assert (
        "[Critical] Update KB1  (Security)  CVE-1, CVE-2\n  2 servers: web-1\n"
        "  failed before, will be retried on: web-2" in text
    )
    assert "UNREADABLE" in text and "  web-3 (i-3): AccessDeniedException" in text
    assert "Not managed by SSM (no patch data): db-1 (i-9)" in text
    assert made.counts() == {"patches": 2, "servers": 2, "checked": 3, "stale": 0, "unreadable": 1, "critical": 1}


def test_a_batch_whose_listing_failed_or_never_ended_is_unreadable_as_a_whole_and_not_read() -> None:
    batches = [
        {"batch": 0, "instanceIds": ["i-1"]},
        {"batch": 1, "instanceIds": ["i-2", "i-3"]},
        {"batch": 2, "instanceIds": ["i-4"]},
    ]
    results = [BatchResult(batch=0), BatchResult(batch=1, error="States.Timeout"), None]
    read: list[int] = []

    def lines_of(batch: int) -> list[dict[str, Any]]:
        read.append(batch)
        return [{"value": "i-1", "item": patch("KB1")}]

    listing = collect_listing(batches, results, lines_of)

    assert read == [0]
    assert listing.unreadable == [("i-2", "States.Timeout"), ("i-3", "States.Timeout"), ("i-4", NOT_LISTED)]
    assert list(listing.groups) == ["KB1"]


def test_stale_patch_data_is_flagged_with_its_age() -> None:
    fleet = [
        server("i-1", "web-1", stale=True, lastOperationAt="2026-11-20T10:00:00+00:00"),
        server("i-2", "web-2", stale=True, lastOperationAt=None),
    ]

    made = preview(fleet, {0: [{"value": "i-1", "item": patch("KB1")}]})

    text = "\n".join(made.head())
    assert "STALE patch data (older than 72 h" in text
    assert "  web-1 (i-1): last scan 3.0 days ago" in text and "  web-2 (i-2): never scanned" in text
    assert made.findings() == "1 patch on 1 server, 1 critical [2 stale]"


def test_nothing_pending_is_said_and_mailed_only_if_asked() -> None:
    quiet = preview(lines={0: []}, mailWhenNothingPending=False)

    mail = compose(quiet, 60_000, "b")

    assert quiet.findings() == "nothing to install on 3 servers"
    assert "Nothing to install: no Missing or Failed patches on the checked servers." in mail.result["message"]
    assert mail.result["send"] is False and mail.full_report is None


def test_an_email_too_long_carries_the_summary_and_where_the_full_report_is() -> None:
    many = {0: [{"value": "i-1", "item": patch(f"KB{n:04}", severity="Medium")} for n in range(400)]}

    mail = compose(preview(lines=many), 4_000, "reports")

    assert mail.full_report is not None and len(mail.full_report) > 4_000
    key = f"{PREFIX}/report.txt"
    assert mail.result["reportLocation"] == {"bucket": "reports", "key": key}
    message = mail.result["message"]
    assert f"is at s3://reports/{key} (aws s3 cp to read it)." in message
    assert message.endswith("...\n") and len(message) < 4_000
    assert message.startswith(mail.full_report[:200])  # the same summary first


def test_for_the_approval_the_text_goes_to_the_bucket_and_nothing_is_mailed() -> None:
    made = preview(deliver="approval")
    mail = compose(made, 60_000, "b")

    result = handed_over(made, mail.result, "b")

    assert "message" not in result and result["send"] is False
    assert result["approvalMail"] == {
        "findings": "2 patches on 2 servers, 1 critical [1 unreadable]",
        "bucket": "b",
        "key": f"{PREFIX}/approval-preview.txt",
        "counts": made.counts(),
    }
    assert "Will reboot if this run installs with RebootIfNeeded" in mail.result["message"]


@pytest.mark.parametrize(
    ("count", "noun", "said"), [(1, "patch", "1 patch"), (2, "patch", "2 patches"), (0, "server", "0 servers")]
)
def test_counts_read_as_english(count: int, noun: str, said: str) -> None:
    assert plural(count, noun) == said


def test_a_batch_s_key_is_under_the_run_s_prefix() -> None:
    assert batch_key(PREFIX, 3) == "patch-preview/run-7/patches/batch-3.jsonl"
