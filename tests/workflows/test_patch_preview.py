"""The patch preview, end to end in the sandbox: the email itself, the fleet sizes, the failures."""

import datetime as dt
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from sandbox.fleet import FleetSpec
from sandbox.patch_data import InstancePatches, PatchSpec, clear
from sandbox.runtime import ExecutionResult, Sandbox

SM = "PatchPreviewStateMachine"
Factory = Callable[..., Sandbox]


@pytest.fixture
def fleet(open_sandbox: Factory) -> Factory:
    def make(size: int = 20, patches: PatchSpec | None = None, window_in_hours: float = 6.0, **params: str) -> Sandbox:
        return open_sandbox(FleetSpec(size=size), patches=patches, window_in_hours=window_in_hours, parameters=params)

    return make


def patch_data(sb: Sandbox) -> dict[str, InstancePatches]:
    assert sb.bridge.patches is not None
    return sb.bridge.patches.data


def mails(sb: Sandbox) -> list[dict[str, Any]]:
    return [c.params for c in sb.bridge.calls_to("sns", "Publish")]


def calls(sb: Sandbox) -> Counter[str]:
    return Counter(f"{c.service}:{c.operation}" for c in sb.bridge.calls if c.service not in ("sfn", "lambda", "s3"))


def run(sb: Sandbox, payload: dict[str, Any] | None = None, timeout: float = 240) -> ExecutionResult:
    return sb.run(SM, payload or {}, timeout=timeout)  # wall seconds: a safety net


def test_one_server(fleet: Factory) -> None:
    sb = fleet(size=1)

    result = run(sb)

    assert result.status == "SUCCEEDED", result.cause
    [mail] = mails(sb)
    pending = sum(1 for p in next(iter(patch_data(sb).values())).patches if p["State"] in ("Missing", "Failed"))
    patches = f"{pending} patch" if pending == 1 else f"{pending} patches"
    assert mail["Subject"].startswith(f"Patch preview web-patching (in 6 h): {patches} on 1 server")


def test_the_email_groups_patches_by_severity_with_their_servers(fleet: Factory) -> None:
    sb = fleet(size=50)

    result = run(sb)

    assert result.status == "SUCCEEDED"
    [mail] = mails(sb)
    expected: dict[str, set[str]] = {}
    for instance_id, info in patch_data(sb).items():
        for patch in info.patches:
            if patch["State"] in ("Missing", "Failed"):
                expected.setdefault(patch["KBId"], set()).add(sb.fleet.names[instance_id])
    servers = {name for names in expected.values() for name in names}
    assert f"{len(expected)} patches on {len(servers)} servers" in mail["Subject"]
    text = mail["Message"]
    assert "runs next at" in text and "(in 6 h)" in text
    severities = re.findall(r"^\[(\w+)\] ", text, re.MULTILINE)
    order = ["Critical", "Important", "Medium", "Low", "Unspecified"]
    assert severities == sorted(severities, key=order.index), "most severe first"
    title_of = {p["KBId"]: p["Title"] for info in patch_data(sb).values() for p in info.patches}
    for kb_id, names in expected.items():
        block = text.split(f"] {title_of[kb_id]}  (", 1)[1].split("\n[", 1)[0]
        assert f"{len(names)} servers:" in block
        assert set(re.findall(r"web-\d{3}", block)) == names
    assert result.output["patches"] == len(expected)


def test_stale_patch_data_is_flagged(fleet: Factory) -> None:
    sb = fleet(size=10, patches=PatchSpec(stale_fraction=0.3))
    cutoff = sb.clock.now_datetime() - dt.timedelta(hours=72)
    stale = sorted(sb.fleet.names[i] for i, info in patch_data(sb).items() if info.operation_end < cutoff)

    run(sb)

    [mail] = mails(sb)
    assert stale, "the seed gives some stale servers"
    assert f"[{len(stale)} stale]" in mail["Subject"]
    section = mail["Message"].split("STALE patch data", 1)[1].split("\n\n", 1)[0]
    assert sorted(re.findall(r"web-\d{3}", section)) == stale


def test_a_server_whose_call_fails_is_listed_as_unreadable(fleet: Factory) -> None:
    sb = fleet(size=8)
    broken = sorted(sb.fleet.instances)[3]
    sb.inject_api_error("ssm", "DescribeInstancePatches", "InternalServerError", count=99, match={"InstanceId": broken})

    result = run(sb)

    assert result.status == "SUCCEEDED"
    [mail] = mails(sb)
    assert "[1 unreadable]" in mail["Subject"]
    assert f"{sb.fleet.names[broken]} ({broken}): InternalServerError" in mail["Message"]


def test_a_batch_whose_listing_fails_is_unreadable_and_the_rest_is_mailed(fleet: Factory) -> None:
    sb = fleet(size=60)  # two batches: 50 and 10 servers
    sb.lambdas.inject_error("ApiCollectorFunction", "KeyError", count=1)

    result = run(sb)

    assert result.status == "SUCCEEDED", result.cause
    [mail] = mails(sb)
    flagged = re.search(r"\[(\d+) unreadable\]", mail["Subject"])
    assert flagged and int(flagged.group(1)) in (50, 10), "exactly one batch's servers"
    unreadable = mail["Message"].split("UNREADABLE", 1)[1].split("\n\n", 1)[0]
    assert unreadable.count(": KeyError") == int(flagged.group(1))
    assert result.output["checked"] == 60


def test_ssm_throttling_is_retried(fleet: Factory) -> None:
    sb = fleet(size=3)
    sb.inject_api_error("ssm", "DescribeInstancePatches", "ThrottlingException", count=2)

    result = run(sb)

    assert result.status == "SUCCEEDED"
    assert "unreadable" not in mails(sb)[0]["Subject"]
    assert calls(sb)["ssm:DescribeInstancePatches"] == 3 + 2


def test_nothing_pending_sends_a_short_note(fleet: Factory) -> None:
    sb = fleet(size=5)
    clear(patch_data(sb))

    run(sb)

    [mail] = mails(sb)
    assert "nothing to install on 5 servers" in mail["Subject"]
    assert "Nothing to install" in mail["Message"]


def test_nothing_pending_can_send_nothing(fleet: Factory) -> None:
    sb = fleet(size=5, MailWhenNothingPending="false")
    clear(patch_data(sb))

    result = run(sb)

    assert result.status == "SUCCEEDED"
    assert mails(sb) == []


def test_a_report_too_large_to_mail_goes_to_the_bucket(fleet: Factory) -> None:
    sb = fleet(size=250, patches=PatchSpec(missing_per_instance=30, catalogue_size=200))

    result = run(sb)

    assert result.status == "SUCCEEDED", result.cause
    [mail] = mails(sb)
    match = re.search(r"s3://([^/]+)/(\S+)", mail["Message"])
    assert match, "the mail says where the full report is"
    full = sb.client("s3").get_object(Bucket=match.group(1), Key=match.group(2))["Body"].read().decode()
    assert len(mail["Message"]) < 60_000 < len(full)
    assert full.startswith(mail["Message"].split("\n\nThe full report", 1)[0])


def test_a_window_beyond_the_horizon_is_skipped_with_a_note(fleet: Factory) -> None:
    sb = fleet(size=3, window_in_hours=50)

    result = run(sb)

    assert result.status == "SUCCEEDED"
    assert result.output["skipped"] is True
    assert "beyond the 24 h horizon" in result.output["note"]
    assert mails(sb) == []
    assert calls(sb)["ssm:DescribeInstancePatches"] == 0


def test_an_empty_selection_is_a_note_not_an_error(fleet: Factory) -> None:
    sb = fleet(size=3)
    result = run(sb, {"instances": {"tags": {"tier": "nothing-matches"}}})
    assert result.status == "SUCCEEDED"
    assert result.output["note"].startswith("Nothing to preview")
    assert mails(sb) == []


def test_servers_can_be_selected_by_id_tag_and_patch_group(fleet: Factory) -> None:
    sb = fleet(size=6)
    chosen = sorted(sb.fleet.instances)[:2]

    run(sb, {"instances": {"instanceIds": chosen}})
    run(sb, {"instances": {"patchGroup": "web", "tags": {"opsflow:tier": "web"}}})

    first, second = mails(sb)
    assert "2 servers checked" in first["Message"]
    assert "6 servers checked" in second["Message"]


def test_a_failure_that_stops_the_preview_is_alerted(fleet: Factory) -> None:
    sb = fleet(size=3)
    sb.lambdas.inject_error("PatchReportFunction", "KeyError", count=1)

    result = run(sb)

    assert result.status == "FAILED"
    assert result.error == "PatchPreviewFailed"
    [alert] = mails(sb)
    assert alert["Subject"] == "opsflow: the patch preview failed"
    assert "KeyError" in alert["Message"]


def test_five_hundred_servers_cost_one_collector_call_per_fifty_and_one_listing_each(fleet: Factory) -> None:
    sb = fleet(size=500)

    result = run(sb)

    assert result.status == "SUCCEEDED", result.cause
    api = calls(sb)
    assert api["ssm:DescribeInstancePatches"] == 500
    assert api["ssm:DescribeInstancePatchStates"] == 10
    assert api["ssm:DescribeInstanceInformation"] == 10
    invocations = Counter(i.logical_id for i in sb.lambdas.invocations)
    assert invocations == {"ApiCollectorFunction": 10, "PatchTargetsFunction": 1, "PatchReportFunction": 1}
    assert f"{result.output['servers']} servers" in mails(sb)[0]["Subject"]


def test_five_thousand_servers_fit_the_payload_and_history_quotas(fleet: Factory) -> None:
    """The input allows 5,000 servers. The sandbox fails a state over 256 KiB (States.DataLimitExceeded,
    which no States.ALL catches: not even the failure alert would go out) and an execution at its
    25,000th event, as AWS does; per-server data must stay out of the state and the parent's history."""
    sb = fleet(size=5000)
    pending = {
        i for i, info in patch_data(sb).items() if any(p["State"] in ("Missing", "Failed") for p in info.patches)
    }

    result = run(sb, {"instances": {"patchGroup": "web"}}, timeout=1800)

    assert result.status == "SUCCEEDED", result.cause
    assert result.output["checked"] == 5000
    assert result.output["servers"] == len(pending)
    assert calls(sb)["ssm:DescribeInstancePatches"] == 5000
    [mail] = mails(sb)
    assert f"on {len(pending):,} servers".replace(",", "") in mail["Subject"].replace(",", "")
    assert len(mail["Message"]) < 60_000, "the email carries the summary; the full report is in the bucket"
    assert result.largest_payload() < 64 * 1024, "the same size for 1 or 5,000 servers, far from 256 KiB"
    assert len(result.events) < 100, "the servers' listings are child executions, not parent events"
    children = sb.child_histories()
    assert len(children) == 100 and max(len(h) for h in children) < 100


# Every malformed request is a unit test on the input model (tests/unit/test_patch_targets.py); these
# three keep the path from a refused request to a failed run that sent and listed nothing proven.
MALFORMED = [
    ({"horizonHours": "24"}, "horizonHours"),
    ({"instances": {"instanceIds": ["web-1"]}}, "instances.instanceIds"),
    ({"deliver": "approval", "maintenanceWindowId": "mw-0123456789abcdef0"}, "not a maintenance window"),
]


@pytest.mark.parametrize(("payload", "named"), MALFORMED, ids=[m[1] + str(i) for i, m in enumerate(MALFORMED)])
def test_malformed_input_is_refused_and_nothing_is_sent(fleet: Factory, payload: dict[str, Any], named: str) -> None:
    sb = fleet(size=2)

    result = run(sb, payload)

    assert result.status == "FAILED"
    assert result.error == "InvalidInputError"
    assert named in (result.cause or "")
    assert mails(sb) == []
    assert calls(sb)["ssm:DescribeInstancePatches"] == 0


def test_an_unknown_maintenance_window_is_refused(fleet: Factory) -> None:
    sb = fleet(size=2)
    result = run(sb, {"maintenanceWindowId": "mw-0123456789abcdef0"})
    assert result.error == "MaintenanceWindowNotFoundError"
    assert "mw-0123456789abcdef0 does not exist" in (result.cause or "")
    assert mails(sb) == []
