"""An issue counts for the sunset policy only when every copy carried the reader's id:
the start records whether they will, and a worker whose copies do not clears it."""

from __future__ import annotations

import pytest

from newsletter.extensions import db
from newsletter.models import Digest
from tests.factories import add_article, add_subscribers, send_now
from workers.tasks import send_digest_batch


def sent_with(app, mailbox, *, at_start: bool, in_worker: bool) -> bool:
    app.config["TRACK_READERS"] = at_start
    add_subscribers(app, 3)
    add_article(app)
    digest_id = send_now(app)  # no worker: the batch runs below, in this process
    app.config["TRACK_READERS"] = in_worker
    with app.app_context():
        send_digest_batch(digest_id)
    mailbox.wait_for(3)
    with app.app_context():
        return db.session.get(Digest, digest_id).readers_tracked


@pytest.mark.parametrize(("at_start", "in_worker", "tracked"), [
    (True, True, True),
    (True, False, False),  # a worker started without tracking sent some copies
    (False, True, False),  # the start did not promise it: the issue proves nothing
    (False, False, False),
])
def test_an_issue_is_marked_reader_tracked_only_when_its_copies_were(
        app, client, mailbox, at_start, in_worker, tracked):
    assert sent_with(app, mailbox, at_start=at_start, in_worker=in_worker) is tracked
