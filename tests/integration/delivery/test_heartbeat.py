"""Claim heartbeats: the sweeper takes back a dead worker's rows at once, never a live one's,
and judges nobody dead when Redis cannot tell."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from newsletter.db import unit_of_work
from newsletter.delivery import heartbeat, ledger
from newsletter.extensions import db
from newsletter.issues import digests
from newsletter.models import Delivery, DeliveryStatus, DigestStatus, utcnow
from tests.factories import add_article, add_subscribers

LEASE = timedelta(minutes=5)  # far from running out: only the heartbeat can free the rows


@pytest.fixture
def claimed(app, client):
    """A send whose three rows are claimed under one token, the middle one in flight."""
    ids = add_subscribers(app, 3)
    add_article(app)
    with app.app_context():
        with unit_of_work():
            digest = digests.compose()
            digest.status = DigestStatus.SENDING
            db.session.flush()
            for subscriber_id in ids:
                db.session.add(Delivery(
                    digest_id=digest.id, subscriber_id=subscriber_id, attempts=1,
                    status=DeliveryStatus.SENDING, claim="c" * 32,
                    lease_until=utcnow() + LEASE,
                    attempted_at=utcnow() if subscriber_id == ids[1] else None))
        yield digest.id


def statuses(digest_id: int) -> list[tuple[DeliveryStatus, bool]]:
    db.session.expire_all()
    rows = db.session.execute(select(Delivery.status, Delivery.resent_after_crash)
                              .where(Delivery.digest_id == digest_id).order_by(Delivery.id))
    return [tuple(row) for row in rows]


def test_sweep_leaves_a_claim_with_a_heartbeat_and_takes_back_one_without(app, claimed):
    with app.app_context():
        with heartbeat.Heartbeat("c" * 32):
            with unit_of_work():
                swept = digests.sweep_issue(claimed, DigestStatus.SENDING)
            assert (swept.released, swept.published) == (0, 0)
            assert statuses(claimed) == [(DeliveryStatus.SENDING, False)] * 3
        # The block ended without giving the rows back: as if the batch had raised.
        with unit_of_work():
            swept = digests.sweep_issue(claimed, DigestStatus.SENDING)
        assert (swept.released, swept.published) == (3, 1)
        # The message in flight is resent once (flagged), the others were never tried.
        assert statuses(claimed) == [(DeliveryStatus.PENDING, False),
                                     (DeliveryStatus.PENDING, True),
                                     (DeliveryStatus.PENDING, False)]


def test_digest_sweep_command_says_what_it_took_back(app, claimed):
    result = app.test_cli_runner().invoke(args=["digest", "sweep"])
    assert result.exit_code == 0, result.output
    assert f"digest {claimed}: took back 3 row(s) from lost workers" in result.output
    assert "took back 3 row(s), published 1 batch task(s)" in result.output
    with app.app_context():
        assert {status for status, _ in statuses(claimed)} == {DeliveryStatus.PENDING}


def test_a_heartbeat_is_kept_alive_past_its_ttl_and_gone_when_the_batch_ends(app, client):
    from tests.helpers import wait_until

    with app.app_context():
        with heartbeat.Heartbeat("d" * 32) as beat:
            key = f"newsletter:claim-alive:{'d' * 32}"
            # Left alone the key would be gone in TTL seconds; its thread tops it up.
            ttl = heartbeat.TTL * 1000
            low = wait_until(lambda: (left := beat.client.pttl(key)) < ttl - 1000 and left,
                             heartbeat.TTL, "the key's time to run down")
            wait_until(lambda: beat.client.pttl(key) > low + 500, heartbeat.TTL, "a renewal")
            assert heartbeat.dead(["d" * 32, "e" * 32]) == {"e" * 32}
        assert heartbeat.dead(["d" * 32]) == {"d" * 32}


def test_nothing_is_judged_dead_when_redis_cannot_be_read(app, claimed):
    from newsletter.devstack import free_port

    with app.app_context():
        app.config["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"  # nobody listens
        assert heartbeat.dead(["c" * 32]) == set()
        with unit_of_work():
            swept = digests.sweep_issue(claimed, DigestStatus.SENDING)
        assert swept.released == 0  # the lease, not yet run out, is what counts now
        assert ledger.claims_held(claimed) == {"c" * 32}
