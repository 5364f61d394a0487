from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.fleet import FleetSpec
from sandbox.runtime import Sandbox

FIXTURE_TEMPLATE = Path(__file__).parent / "fixture" / "template.yaml"


@pytest.fixture
def features() -> Iterator[Sandbox]:
    """A sandbox with the fixture stack (every interpreter feature) and a fleet of 3."""
    with Sandbox(FleetSpec(size=3), template_path=FIXTURE_TEMPLATE) as sb:
        yield sb
