"""SSM patch data per simulated instance: what Patch Manager would report, seeded.

Each instance has patches in states Missing / Failed / Installed / InstalledPendingReboot drawn from a
catalogue with KB ids, severities, classifications and CVEs, and the time of its last patch
operation (a Scan or an Install): patch data is only as fresh as that.
"""

import datetime as dt
import itertools
import random
from dataclasses import dataclass, field
from typing import Any

SEVERITIES = ["Critical", "Important", "Medium", "Low", "Unspecified"]
CLASSIFICATIONS = ["SecurityUpdates", "CriticalUpdates", "Bugfix", "Enhancement"]
PACKAGES = [
    "openssl",
    "kernel",
    "glibc",
    "openssh",
    "curl",
    "sudo",
    "systemd",
    "nginx",
    "python3",
    "libxml2",
    "bind",
    "tzdata",
    "krb5",
    "nss",
    "expat",
    "zlib",
    "sqlite",
    "vim",
    "bash",
    "polkit",
]


@dataclass(frozen=True)
class PatchSpec:
    missing_per_instance: float = 4.0  # mean number of Missing patches
    failed_fraction: float = 0.05  # share of instances with one Failed patch
    stale_fraction: float = 0.1  # share of instances whose last scan is older than 3 days
    unmanaged_fraction: float = 0.0  # share of instances SSM does not manage
    catalogue_size: int = 40
    seed: int = 11


@dataclass
class InstancePatches:
    instance_id: str
    patch_group: str
    patches: list[dict[str, Any]] = field(default_factory=list)
    operation_end: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    operation: str = "Scan"
    managed: bool = True
    pending_reboot: int = 0
    ping: str = "Online"  # SSM Agent's PingStatus: Online, ConnectionLost, Inactive

    def state_counts(self) -> dict[str, int]:
        counts = {"Missing": 0, "Failed": 0, "Installed": 0, "InstalledPendingReboot": 0}
        for patch in self.patches:
            counts[patch["State"]] = counts.get(patch["State"], 0) + 1
        return counts


def catalogue(rng: random.Random, size: int) -> list[dict[str, Any]]:
    entries = []
    for n in range(size):
        package = PACKAGES[n % len(PACKAGES)]
        severity = rng.choices(SEVERITIES, weights=[2, 4, 4, 2, 1])[0]
        classification = "SecurityUpdates" if severity in ("Critical", "Important") else rng.choice(CLASSIFICATIONS)
        version = f"{rng.randint(1, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 99)}-{rng.randint(1, 40)}.amzn2023"
        cves = [f"CVE-2026-{rng.randint(10000, 49999)}" for _ in range(rng.choice([0, 1, 1, 2, 3]))]
        entries.append(
            {
                "Title": f"{package}-{version}",
                "KBId": f"{package}.{version}.aarch64",
                "Classification": classification,
                "Severity": severity,
                "CVEIds": ",".join(cves),
            }
        )
    return entries


def generate(instance_ids: list[str], spec: PatchSpec, now: dt.datetime) -> dict[str, InstancePatches]:
    rng = random.Random(spec.seed)
    patches = catalogue(rng, spec.catalogue_size)
    out = {}
    for instance_id in instance_ids:
        missing = min(len(patches), max(0, round(rng.gauss(spec.missing_per_instance, spec.missing_per_instance / 2))))
        chosen = rng.sample(patches, k=min(len(patches), missing + 6))
        states = ["Missing"] * missing + ["Installed"] * 6
        if rng.random() < spec.failed_fraction and missing:
            states[0] = "Failed"
        stale = rng.random() < spec.stale_fraction
        age = dt.timedelta(days=rng.uniform(3.5, 20)) if stale else dt.timedelta(hours=rng.uniform(1, 48))
        info = InstancePatches(
            instance_id=instance_id,
            patch_group="web",
            operation_end=now - age,
            managed=rng.random() >= spec.unmanaged_fraction,
            pending_reboot=rng.choice([0, 0, 0, 1]),
        )
        for patch, state in zip(chosen, states, strict=True):
            installed = (now - dt.timedelta(days=rng.uniform(5, 60))).isoformat() if state == "Installed" else None
            info.patches.append({**patch, "State": state, **({"InstalledTime": installed} if installed else {})})
        out[instance_id] = info
    return out


def clear(data: dict[str, InstancePatches]) -> None:
    """Every instance fully patched (nothing pending)."""
    for info in data.values():
        for patch in info.patches:
            if patch["State"] in ("Missing", "Failed"):
                patch["State"] = "Installed"
        info.pending_reboot = 0


class SimulatedApiError(Exception):
    """An error answer of a simulated API call (code and message as AWS sends them)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _page_bounds(params: dict[str, Any], default: int, maximum: int) -> tuple[int, int]:
    size = int(params.get("MaxResults", default))
    if not 1 <= size <= maximum:
        raise SimulatedApiError("ValidationException", f"MaxResults must be 1..{maximum}")
    return size, int(params.get("NextToken") or 0)


def _page(items: list[Any], params: dict[str, Any], default: int, maximum: int) -> tuple[list[Any], str | None]:
    size, start = _page_bounds(params, default, maximum)
    end = start + size
    return items[start:end], (str(end) if end < len(items) else None)


def _with_token(result: dict[str, Any], token: str | None) -> dict[str, Any]:
    return {**result, "NextToken": token} if token else result


def _filters_match(patch: dict[str, Any], filters: list[dict[str, Any]]) -> bool:
    return all(patch.get(f["Key"]) in f.get("Values", []) for f in filters)


@dataclass
class PatchService:
    """The SSM calls the patch preview uses, answered from the fleet's patch data."""

    data: dict[str, InstancePatches]
    private_ips: dict[str, str] = field(default_factory=dict)
    window_next: dict[str, dt.datetime] = field(default_factory=dict)

    def describe_instance_patches(self, params: dict[str, Any]) -> dict[str, Any]:
        info = self.data.get(params["InstanceId"])
        if info is None or not info.managed:
            raise SimulatedApiError("InvalidInstanceId", f"Instance Id {params['InstanceId']} is not managed")
        allowed = {"State", "Severity", "Classification", "KBId"}
        for f in params.get("Filters", []):
            if f["Key"] not in allowed:
                raise SimulatedApiError("InvalidFilter", f"filter key {f['Key']} is not supported")
        # Only the page is copied, and unfiltered pages are sliced: the simulator must not cost O(all
        # patches) per call (a filtered page still walks the patches before it).
        filters = params.get("Filters", [])
        size, start = _page_bounds(params, default=50, maximum=100)
        if filters:
            matching = (p for p in info.patches if _filters_match(p, filters))
            window = list(itertools.islice(matching, start, start + size + 1))
        else:
            window = info.patches[start : start + size + 1]
        token = str(start + size) if len(window) > size else None
        return _with_token({"Patches": [_parsed_patch(p) for p in window[:size]]}, token)

    def describe_instance_patch_states(self, params: dict[str, Any]) -> dict[str, Any]:
        ids = params.get("InstanceIds", [])
        if not 1 <= len(ids) <= 50:
            raise SimulatedApiError("ValidationException", "InstanceIds must hold 1 to 50 ids")
        states = [_patch_state(self.data[i]) for i in ids if i in self.data and self.data[i].managed]
        page, token = _page(states, params, default=50, maximum=50)
        return _with_token({"InstancePatchStates": page}, token)

    def describe_instance_information(self, params: dict[str, Any]) -> dict[str, Any]:
        wanted: set[str] | None = None
        for f in params.get("Filters", []):
            if f["Key"] == "InstanceIds":
                wanted = set(f["Values"])
        for f in params.get("InstanceInformationFilterList", []):
            if f["key"] == "InstanceIds":
                wanted = set(f["valueSet"])
        infos = [
            {
                "InstanceId": i,
                "PingStatus": info.ping,
                "PlatformType": "Linux",
                "PlatformName": "Amazon Linux",
                "ResourceType": "EC2Instance",
                "IPAddress": self.private_ips.get(i, ""),
                "AgentVersion": "3.3.1957.0",
            }
            for i, info in self.data.items()
            if info.managed and (wanted is None or i in wanted)
        ]
        page, token = _page(infos, params, default=50, maximum=50)
        return _with_token({"InstanceInformationList": page}, token)


def _parsed_patch(patch: dict[str, Any]) -> dict[str, Any]:
    """As botocore parses it: timestamps are datetimes."""
    out = dict(patch)
    if "InstalledTime" in out:
        out["InstalledTime"] = dt.datetime.fromisoformat(out["InstalledTime"])
    return out


def _patch_state(info: InstancePatches) -> dict[str, Any]:
    counts = info.state_counts()
    return {
        "InstanceId": info.instance_id,
        "PatchGroup": info.patch_group,
        "BaselineId": "pb-0123456789abcdef0",
        "Operation": info.operation,
        "OperationStartTime": info.operation_end - dt.timedelta(minutes=3),
        "OperationEndTime": info.operation_end,
        "MissingCount": counts["Missing"],
        "FailedCount": counts["Failed"],
        "InstalledCount": counts["Installed"],
        "InstalledPendingRebootCount": info.pending_reboot,
        "InstalledOtherCount": 0,
        "InstalledRejectedCount": 0,
        "NotApplicableCount": 120,
        "RebootOption": "RebootIfNeeded",
    }
