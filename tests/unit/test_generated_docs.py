"""Tables the docs show are generated from the code that decides; these tests keep the copies in step."""
import re
from pathlib import Path

import pytest

from lab.core import health, vrrp

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("doc, name, make", [
    ("exercises/01-health-checks-and-failover/README.md", "health", health.diagram),
    ("exercises/01-health-checks-and-failover/README.ko.md", "health", health.diagram),
    ("exercises/03-vrrp-redundancy/README.md", "vrrp", vrrp.diagram),
    ("exercises/03-vrrp-redundancy/README.ko.md", "vrrp", vrrp.diagram),
])
def test_state_tables_in_the_lessons_are_the_generated_ones(doc, name, make):
    shown = re.search(rf"<!-- {name}:[^>]*-->\n```\n(.*?)\n```\n<!-- /{name} -->", (ROOT / doc).read_text(), re.S)
    assert shown, f"{doc} lost its generated {name} table"
    assert shown.group(1) == make(), f"{doc}: paste lab.core.{name}.diagram() again"
