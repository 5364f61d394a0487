"""The simulated SSM patch reads: DescribeInstancePatches pages, with and without filters."""

from typing import Any

import pytest

from sandbox.patch_data import InstancePatches, PatchService, SimulatedApiError

ID = "i-0123456789abcdef0"


def service(count: int) -> PatchService:
    patches = [
        {"Title": f"pkg-{n}", "KBId": f"pkg-{n}", "Severity": "Critical" if n % 3 == 0 else "Low", "State": "Missing"}
        for n in range(count)
    ]
    return PatchService({ID: InstancePatches(ID, "web", patches)})


def every_page(ssm: PatchService, **params: Any) -> tuple[list[str], list[str | None]]:
    titles: list[str] = []
    tokens: list[str | None] = []
    token: str | None = None
    while True:
        page = ssm.describe_instance_patches({"InstanceId": ID, **params, **({"NextToken": token} if token else {})})
        titles += [p["Title"] for p in page["Patches"]]
        token = page.get("NextToken")
        tokens.append(token)
        if token is None:
            return titles, tokens


def test_pages_hold_every_patch_once_in_order() -> None:
    titles, tokens = every_page(service(250), MaxResults=100)
    assert titles == [f"pkg-{n}" for n in range(250)]
    assert tokens == ["100", "200", None]


def test_a_page_that_ends_the_list_exactly_has_no_token() -> None:
    assert every_page(service(200), MaxResults=100)[1] == ["100", None]


def test_filtered_pages_hold_the_matching_patches_only() -> None:
    titles, _ = every_page(service(250), MaxResults=30, Filters=[{"Key": "Severity", "Values": ["Critical"]}])
    assert titles == [f"pkg-{n}" for n in range(0, 250, 3)]


def test_a_page_size_outside_1_to_100_is_refused() -> None:
    with pytest.raises(SimulatedApiError, match=r"MaxResults must be 1\.\.100"):
        service(1).describe_instance_patches({"InstanceId": ID, "MaxResults": 101})
