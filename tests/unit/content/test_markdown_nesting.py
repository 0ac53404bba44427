"""How deep Markdown nests, counted before the renderer recurses into it."""

from __future__ import annotations

import pytest

from newsletter.content.articles import markdown_depth


@pytest.mark.parametrize("source, depth", [
    ("plain text", 0),
    ("- a\n- b", 1),
    ("- a\n    - b\n        - c", 3),
    ("\t\t- tabbed", 3),
    ("> > > quoted", 3),
    ("1. 2) - > mixed", 4),
    ("- " * 10_000 + "x", 10_000),
    ("2026-12-03 is a date, 3.5 a number", 0),
])
def test_markdown_depth_counts_markers_and_indentation(source, depth):
    assert markdown_depth(source) == depth
