"""The sandbox writes DynamoDB attribute values itself (moto's generic serializer is slow on them): the same bytes."""

from typing import Any
from unittest import mock

import pytest

from sandbox import moto_patches

ITEM = {
    "pk": {"S": "health#arn:aws:elasticloadbalancing:tg/web"},
    "empty": {"S": ""},
    "at": {"N": "1767582000.25"},
    "names": {"SS": ["a", "b"]},
    "numbers": {"NS": ["1", "2.5"]},
    "targets": {"L": [{"L": [{"S": "i-1"}, {"N": "8080"}, {"S": "healthy"}]}, {"NULL": True}, {"BOOL": False}]},
    "nested": {"M": {"inner": {"M": {}}, "flag": {"BOOL": True}}},
}
BINARY = {"pk": {"S": "k"}, "blob": {"B": b"\x00\x01"}, "deep": {"L": [{"M": {"set": {"BS": [b"x"]}}}]}}


serialized = moto_patches.dynamodb_response_body


@pytest.mark.parametrize(
    ("operation", "result"),
    [
        ("GetItem", {"Item": ITEM}),
        ("Query", {"Items": [ITEM, BINARY], "Count": 2, "ScannedCount": 2}),
        ("GetItem", {"Item": BINARY}),
    ],
)
def test_an_item_is_written_as_moto_writes_it(operation: str, result: dict[str, Any]) -> None:
    assert serialized(operation, result, direct=True) == serialized(operation, result, direct=False)


def test_plain_values_skip_moto_s_member_by_member_serializer_and_binary_ones_do_not() -> None:
    """Binary values need base64, which moto's serializer does: those alone go its way."""
    generic = moto_patches._generic_json_structure
    seen: list[str] = []

    def counting(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        seen.append(shape.name)
        generic(self, serialized, value, shape, key)

    with mock.patch.object(moto_patches, "_generic_json_structure", counting):
        serialized("GetItem", {"Item": ITEM}, direct=True)
        assert "AttributeValue" not in seen
        serialized("GetItem", {"Item": BINARY}, direct=True)
        assert "AttributeValue" in seen


# -- Projections -------------------------------------------------------------------------------------
SHARED_ANSWER: dict[str, Any] = {
    "pk": {"S": "health#arn:aws:elasticloadbalancing:tg/web"},
    "sk": {"S": "health"},
    "at": {"N": "1767582000.25"},
    "expiresAt": {"N": "1767668400"},
    "targets": {
        "M": {
            "i-1": {"L": [{"L": [{"N": "80"}, {"S": "healthy"}]}, {"L": [{"N": "8080"}, {"S": "draining"}]}]},
            "i-2": {"L": [{"L": [{"N": "80"}, {"S": "initial"}]}]},
        }
    },
    "nested": {"M": {"inner": {"M": {"deep": {"BOOL": True}, "other": {"NULL": True}}}, "flag": {"S": "x"}}},
    "list": {"L": [{"S": "a"}, {"M": {"b": {"N": "1"}}}]},
    "blob": {"B": b"\x00\x01"},
}


@pytest.mark.parametrize(
    "paths",
    [
        [["at"], ["targets", "i-1"]],  # a waiter's read of its own target
        [["at"], ["targets", "i-9"]],  # a target ELB did not list: the time alone
        [["targets", "i-1"], ["targets", "i-2"]],  # two members of one map, merged
        [["nested", "inner", "deep"], ["nested", "flag"]],
        [["nested", "missing", "deep"]],  # through a missing member: nothing
        [["missing"], ["blob"]],
        [["list[1]", "b"]],  # through a list element: moto's own way
    ],
)
def test_a_projection_is_the_item_moto_projects(paths: list[list[str]]) -> None:
    item = moto_patches.dynamodb_item(SHARED_ANSWER)

    assert moto_patches.project_item(item, paths).to_json() == moto_patches.moto_project(item, paths).to_json()
    assert item.to_json()["Attributes"]["targets"]["M"]["i-1"]["L"][1]["L"][1] == {"S": "draining"}  # untouched
