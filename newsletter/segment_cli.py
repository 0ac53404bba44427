"""``flask --app newsletter segments ...``: saved reader segments by hand."""

from __future__ import annotations

from datetime import date

import click
from flask.cli import AppGroup

from newsletter.db import unit_of_work
from newsletter.readers import segments

segments_cli = AppGroup("segments", help="Saved, named groups of readers to send an issue to.")


def conditions_from_options(topic: str | None, language: str | None, cadence: str | None,
                            subscribed_after: date | None,
                            clicked_within: int | None) -> list[dict]:
    """The command's options as segment conditions (ANDed)."""
    conditions = []
    if topic is not None:
        conditions.append({"field": "topic", "op": "is", "value": topic})
    if language is not None:
        conditions.append({"field": "language", "op": "is", "value": language})
    if cadence is not None:
        conditions.append({"field": "cadence", "op": "is", "value": cadence})
    if subscribed_after is not None:
        conditions.append({"field": "subscribed", "op": "after",
                           "value": subscribed_after.isoformat()})
    if clicked_within is not None:
        conditions.append({"field": "clicked", "op": "within", "value": clicked_within})
    return conditions


@segments_cli.command("create")
@click.argument("name")
@click.option("--topic", metavar="SLUG", help="Readers of this topic.")
@click.option("--language", metavar="CODE", help="Readers of this language.")
@click.option("--cadence", type=click.Choice(["weekly", "daily"]), help="Readers of this cadence.")
@click.option("--subscribed-after", type=click.DateTime(["%Y-%m-%d"]), metavar="YYYY-MM-DD",
              help="Readers who subscribed on or after this day (UTC).")
@click.option("--clicked-within", type=click.IntRange(1, segments.MAX_CLICK_DAYS),
              metavar="DAYS", help="Readers who clicked a link in the last DAYS days.")
def create_segment(name: str, topic, language, cadence, subscribed_after, clicked_within):
    """Save a segment: the readers who meet every condition given."""
    conditions = conditions_from_options(
        topic, language, cadence, subscribed_after and subscribed_after.date(), clicked_within)
    try:
        with unit_of_work():
            segment = segments.create(name, conditions)
            readers = segments.segment_count(segment)
    except segments.SegmentError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"segment {segment.name!r}: {segments.describe(segment.conditions)}; "
               f"{readers} reader(s) now")


@segments_cli.command("list")
def list_segments():
    """Every segment with its conditions and how many active readers it holds now."""
    found = segments.all_segments()
    if not found:
        click.echo("No segment yet.")
    for segment in found:
        try:
            readers = str(segments.segment_count(segment))
        except segments.SegmentError as error:
            readers = f"unusable: {error}"
        click.echo(f"{segment.name}\t{readers}\t{segments.describe(segment.conditions)}")
