from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.fleet import FleetSpec
from sandbox.runtime import Sandbox

FIXTURE_TEMPLATE = Path(__file__).parent / "fixture" / "template.yaml"


def inline_map(item_selector: dict[str, Any], states: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A Map state over the input's ``items``, run inline: each iteration gets ``item_selector`` and runs
    ``states`` from the first; ``fields`` (End, Next, Catch...) complete the state."""
    processor = {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": next(iter(states)), "States": states}
    return {"Type": "Map", "ItemsPath": "$.items", "ItemSelector": item_selector, "ItemProcessor": processor} | fields


@pytest.fixture
def features() -> Iterator[Sandbox]:
    """A sandbox with the fixture stack (every interpreter feature) and a fleet of 3."""
    with Sandbox(FleetSpec(size=3), template_path=FIXTURE_TEMPLATE) as sb:
        yield sb
