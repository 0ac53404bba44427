"""``flask --app newsletter webhooks ...``: outgoing webhook endpoints.

The output is a contract (operations scripts read it): ``add`` ends with one line
holding the id, and the secret when one was generated.
"""

from __future__ import annotations

import click
from flask.cli import AppGroup

from newsletter.db import unit_of_work
from newsletter.editors import audit
from newsletter.webhooks import endpoints
from newsletter.webhooks.events import EVENT_TYPES

webhooks_cli = AppGroup("webhooks", help="Endpoints that hear of events (signed POSTs).")


@webhooks_cli.command("add")
@click.argument("url")
@click.option("--events", "events", required=True,
              help=f"Comma-separated event names: {', '.join(EVENT_TYPES)}.")
@click.option("--secret", default=None,
              help="Signing secret (at least 16 bytes); default: a random one, shown once.")
def add(url: str, events: str, secret: str | None):
    """Add an endpoint: URL gets a signed POST for each of the events."""
    try:
        with unit_of_work():
            endpoint, generated = endpoints.add(url, events, secret)
            audit.record(audit.CLI, "webhook_add", target=f"webhook {endpoint.id}",
                         detail=endpoint.url)
    except endpoints.WebhookError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"webhook {endpoint.id}: {endpoint.url} ({', '.join(endpoint.events)})")
    click.echo(f"id={endpoint.id}" + (f" secret={generated}" if generated else ""))


@webhooks_cli.command("list")
def list_endpoints():
    """One line per endpoint: id, state, events, URL."""
    for endpoint in endpoints.list_all():
        state = "disabled" if endpoint.disabled_at else "enabled"
        click.echo(f"{endpoint.id}\t{state}\t{','.join(endpoint.events)}\t{endpoint.url}")


@webhooks_cli.command("remove")
@click.argument("endpoint_id", type=int)
def remove(endpoint_id: int):
    """Remove an endpoint and its delivery log."""
    with unit_of_work():
        removed = endpoints.remove(endpoint_id)
        if removed:
            audit.record(audit.CLI, "webhook_remove", target=f"webhook {endpoint_id}")
    if not removed:
        raise click.ClickException(f"no webhook endpoint {endpoint_id}")
    click.echo(f"removed webhook {endpoint_id}")


@webhooks_cli.command("reseal")
def reseal():
    """Re-encrypt every signing secret with NEWSLETTER_TOTP_KEY (after a key rotation)."""
    with unit_of_work():
        done, unreadable = endpoints.reseal_all()
        audit.record(audit.CLI, "webhook_reseal",
                     detail=f"{done} resealed, {unreadable} unreadable")
    click.echo(f"resealed {done} secret(s); {unreadable} open with no configured key")
    if unreadable:
        raise SystemExit(1)
