"""docs/architecture.md's layout table names every module of the domain packages and
of mail/, and nothing that is not there: the map cannot drift from the tree."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "architecture.md"
MAPPED_PACKAGES = ("readers", "content", "issues", "delivery", "bounces", "editors", "mail",
                   "analytics")


def layout_rows() -> dict[str, str]:
    """path -> description, from the table under '## Layout'."""
    section = PAGE.read_text(encoding="utf-8").split("## Layout", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells[1]
    return rows


def test_every_module_of_the_domain_packages_is_on_the_map_and_only_those():
    rows = layout_rows()
    for package in MAPPED_PACKAGES:
        description = rows[f"newsletter/{package}/"]
        named = set(re.findall(r"`(\w+)`", description))
        present = {path.stem for path in (ROOT / "newsletter" / package).glob("*.py")
                   if path.stem != "__init__"}
        assert named == present, (package, "missing from the map:", present - named,
                                  "on the map but not in the tree:", named - present)


def test_every_top_level_module_is_on_the_map():
    paths = " ".join(layout_rows())
    for path in (ROOT / "newsletter").glob("*.py"):
        if path.stem != "__init__":
            assert path.name in paths, f"newsletter/{path.name} is not on the map"
