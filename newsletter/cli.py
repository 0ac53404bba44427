"""``flask --app newsletter ...`` commands: thin wrappers over services."""

import click
from flask import Flask

from newsletter.services import outbox


def register(app: Flask) -> None:
    @app.cli.command("send-owed-mails")
    def send_owed_mails():
        """Enqueue every owed confirmation and welcome mail (what the beat does each minute)."""
        count = outbox.enqueue_owed()
        click.echo(f"enqueued {count} owed mail(s)")
