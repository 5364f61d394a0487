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
