"""``flask --app newsletter sequences ...``: write sequences, list them, enrol on purpose."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from newsletter.content.articles import MAX_BODY_BYTES
from newsletter.db import unit_of_work
from newsletter.editors import audit
from newsletter.models import utcnow
from newsletter.sequences import enrolment, reports, steps
from newsletter.sequences.durations import format_duration
from newsletter.sequences.quiet_hours import format_window

sequences_cli = AppGroup("sequences", help="Mails that follow a reader's entry, step by step.")


class BadInput(click.ClickException):
    """Bad input: one line on stderr, exit status 2, nothing stored."""

    exit_code = 2


def _read_body(path: str) -> str:
    try:
        with open(path, "rb") as file:
            # One byte past the limit at most: a huge file is refused, never loaded.
            data = file.read(MAX_BODY_BYTES + 1)
    except OSError as error:
        raise BadInput(f"Cannot read {path}: {error.strerror}.") from None
    if len(data) > MAX_BODY_BYTES:
        raise BadInput(f"The body file is over the article body limit: at most "
                       f"{MAX_BODY_BYTES // 1024} KB is allowed.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(f"{path} is not UTF-8 text.") from None


@sequences_cli.command("create")
@click.argument("name")
@click.option("--topic", help="A topic's slug: readers enter when they choose it.")
def create_sequence(name: str, topic: str | None):
    """Add a sequence NAME (readers who enter from now on join it)."""
    try:
        with unit_of_work():
            sequence = steps.create_sequence(name, topic)
            audit.record(audit.CLI, "sequence_create", target=f"sequence {sequence.name}")
    except steps.SequenceError as error:
        raise BadInput(str(error)) from None
    click.echo(f"sequence {sequence.id}: {sequence.name}")


@sequences_cli.command("add-step")
@click.argument("name")
@click.option("--after", required=True, help="When, after the reader enters: 30s, 10m, 2h, 3d.")
@click.option("--subject", required=True, help="The mail's subject.")
@click.option("--body-file", required=True, help="A Markdown file: the mail's body.")
def add_step(name: str, after: str, subject: str, body_file: str):
    """Append a step to the sequence NAME."""
    body = _read_body(body_file)
    try:
        with unit_of_work():
            step = steps.add_step(name, after, subject, body)
            audit.record(audit.CLI, "sequence_step_add",
                         target=f"sequence {name} step {step.position}")
    except steps.SequenceError as error:
        raise BadInput(str(error)) from None
    click.echo(f"step {step.position} of {name}: after {format_duration(step.delay_seconds)}, "
               f"{step.subject!r}")


@sequences_cli.command("translate")
@click.argument("name")
@click.argument("position", type=int)
@click.option("--language", required=True, help="A language of NEWSLETTER_LANGUAGES "
              "but the first (the default).")
@click.option("--subject", default="", help="The subject in that language (none: the "
              "default language's).")
@click.option("--body-file", help="A Markdown file: the body in that language (none: the "
              "default language's).")
def translate_step(name: str, position: int, language: str, subject: str,
                   body_file: str | None):
    """Give step POSITION of NAME its words in one language (neither --subject nor
    --body-file: that language gets the default's words again)."""
    body = _read_body(body_file) if body_file else ""
    try:
        with unit_of_work():
            step = steps.step_at(steps.get_sequence(name), position)
            steps.translate_step(step.id, language, subject, body)
            audit.record(audit.CLI, "sequence_step_edit",
                         target=f"sequence {name} step {position}", detail=language)
            kept = sorted(step.translations or {})
    except steps.SequenceError as error:
        raise BadInput(str(error)) from None
    click.echo(f"step {position} of {name}: own words in {', '.join(kept) or 'no other language'}")


@sequences_cli.command("window")
@click.argument("name")
@click.argument("hours", required=False, default="")
def set_window(name: str, hours: str):
    """Quiet hours: steps of NAME go out only between HOURS (HH:MM-HH:MM, such as
    08:00-20:00, on the reader's clock with NEWSLETTER_SEND_IN_READER_TIME, else the
    newsletter's); no HOURS: at any hour."""
    try:
        with unit_of_work():
            sequence = steps.set_window(name, hours)
            shown = format_window(sequence.window_start, sequence.window_end)
            audit.record(audit.CLI, "sequence_window", target=f"sequence {sequence.name}",
                         detail=shown or "any hour")
    except steps.SequenceError as error:
        raise BadInput(str(error)) from None
    click.echo(f"{name}: steps go out {'between ' + shown if shown else 'at any hour'}")


@sequences_cli.command("list")
def list_sequences():
    """Every sequence, its steps and where its readers are."""
    with unit_of_work():
        for summary in reports.summaries():
            topic = f" (topic {summary.topic})" if summary.topic else ""
            topic += f" (sends {summary.window})" if summary.window else ""
            readers = ", ".join(f"{count} {state}" for state, count in summary.readers.items())
            click.echo(f"{summary.name}{topic}: {readers or 'no readers yet'}")
            for step in summary.steps:
                click.echo(f"  {step.position}. after {format_duration(step.delay_seconds)}: "
                           f"{step.subject} — {step.sent} sent, {step.failed} failed, "
                           f"{step.waiting} waiting")


@sequences_cli.command("enroll")
@click.argument("name")
@click.option("--existing", is_flag=True,
              help="Enrol every active reader not in it yet (they enter now).")
def enroll(name: str, existing: bool):
    """Enrol readers who entered before the sequence existed, on purpose."""
    if not existing:
        raise BadInput("Say --existing to enrol every active reader who is not in the "
                       "sequence yet; nobody is enrolled by accident.")
    try:
        with unit_of_work():
            sequence = steps.get_sequence(name)
            count = enrolment.enrol_existing(sequence, utcnow())
            audit.record(audit.CLI, "sequence_enroll_existing",
                         target=f"sequence {sequence.name}: {count} reader(s)")
    except steps.SequenceError as error:
        raise BadInput(str(error)) from None
    click.echo(f"enrolled {count} reader(s) in {name}")
