"""``flask --app newsletter bounces ...``: the bounce receiver and reports by hand."""

from __future__ import annotations

import signal
import threading

import click
from flask import current_app
from flask.cli import AppGroup

bounces_cli = AppGroup("bounces", help="Bounces and complaints coming back from the mail world.")


@bounces_cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=2525, show_default=True, type=click.IntRange(1, 65535),
              help="Port to listen on (25 for an MX).")
def serve(host: str, port: int):
    """Run the SMTP receiver for the bounce domain until stopped."""
    from newsletter.bounces.receiver import make_controller, verp_domain

    app = current_app._get_current_object()
    controller = make_controller(app, host, port)
    try:
        controller.start()
    except (OSError, RuntimeError) as error:
        raise click.ClickException(f"cannot listen on {host}:{port}: {error}") from None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    click.echo(f"bounce receiver for @{verp_domain(app)} on {host}:{port}", err=True)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


@bounces_cli.command("poll")
def poll():
    """Read NEWSLETTER_BOUNCE_IMAP_URL once, now (beat does it every BOUNCE_IMAP_INTERVAL)."""
    from newsletter.bounces import imap

    try:
        result = imap.poll()
    except imap.MailboxError as error:
        raise click.ClickException(str(error)) from None
    for summary in result.summaries:
        click.echo(summary)
    click.echo(f"read {result.read} message(s), moved {result.moved} to the processed folder")
