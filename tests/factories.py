"""Objects in the database for tests: editors, readers, articles, issues, tokens, sessions.

Every factory commits its own transaction (``unit_of_work``), whether or not the
service it calls commits by itself: services write into the session and leave the
commit to their caller, and a factory is such a caller. A factory called outside
an app context opens one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select

from newsletter.db import unit_of_work
from newsletter.extensions import db
from tests.helpers import PASSWORD, READER, bounce_mail

__all__ = ["PASSWORD", "READER", "add_article", "add_editor", "add_subscribers", "api_token",
           "deliver", "make_editor", "send_now", "sent_issue", "session_client"]


def make_editor(app, email="editor@example.com"):
    """An editor with the shared PASSWORD."""
    from newsletter.editors import accounts

    with app.app_context(), unit_of_work():
        accounts.create_editor(email, PASSWORD)


def add_editor(app, email: str, role: str) -> int:
    from newsletter.editors import accounts

    with app.app_context():
        with unit_of_work():
            editor = accounts.create_editor(email, PASSWORD, role)
        return editor.id


def api_token(app) -> str:
    """An API token of a new editor@example.com, for articles and sends."""
    from newsletter.editors import accounts

    with app.app_context(), unit_of_work():
        accounts.create_editor("editor@example.com", PASSWORD)
        token, _ = accounts.create_api_token("editor@example.com", "cms",
                                            ["articles:write", "issues:send"])
    return token


def session_client(app, editor_id: int):
    """A client holding a live session for the editor, without the login form."""
    from newsletter.editors import sessions

    client = app.test_client()
    with app.app_context(), unit_of_work():
        key = sessions.start(editor_id, "127.0.0.1", "test")
    with client.session_transaction() as session:
        session.update({"_user_id": str(editor_id), "_fresh": True, "sk": key})
    return client


def add_subscribers(app, count: int, prefix: str = "reader") -> list[int]:
    """``count`` active readers prefix0@example.com...; the ids of every reader."""
    from newsletter.models import Subscriber, SubscriberStatus

    with app.app_context():
        with unit_of_work():
            db.session.execute(insert(Subscriber), [
                {"email": f"{prefix}{n}@example.com",
                 "email_normalized": f"{prefix}{n}@example.com",
                 "status": SubscriberStatus.ACTIVE, "name": f"Reader {n}"}
                for n in range(count)])
        return list(db.session.scalars(select(Subscriber.id).order_by(Subscriber.id)))


def add_article(app, title="Talks resume in Geneva", url="https://news.example.com/geneva"):
    from newsletter.content import articles
    from newsletter.content.articles import ArticleInput

    with app.app_context():
        with unit_of_work():
            article, _ = articles.add_article(
                ArticleInput(title=title, url=url, summary="Diplomats met again.",
                             categories=["Europe"], published_at=datetime.now(UTC)), "api")
        return article.id


def send_now(app) -> int:
    """Start sending an issue of what is new; its batches are published on commit."""
    from newsletter.issues import digests

    with app.app_context():
        with unit_of_work():
            digest = digests.send_now()
            assert digest is not None
        return digest.id


def sent_issue(app, emails: list[str], days_ago: float = 0) -> tuple[int, list[int]]:
    """An issue already sent to these readers (ledger rows written directly)."""
    from newsletter.models import (
        Delivery,
        DeliveryStatus,
        Digest,
        DigestStatus,
        Subscriber,
        SubscriberStatus,
        utcnow,
    )

    with app.app_context():
        with unit_of_work():
            when = utcnow() - timedelta(days=days_ago)
            digest = Digest(subject="An issue", status=DigestStatus.SENT, started_at=when)
            db.session.add(digest)
            db.session.flush()
            ids = []
            for email in emails:
                subscriber_id = db.session.scalar(select(Subscriber.id).where(
                    Subscriber.email == email))
                if subscriber_id is None:
                    subscriber = Subscriber(email=email, email_normalized=email.lower(),
                                            status=SubscriberStatus.ACTIVE)
                    db.session.add(subscriber)
                    db.session.flush()
                    subscriber_id = subscriber.id
                db.session.execute(insert(Delivery).values(
                    digest_id=digest.id, subscriber_id=subscriber_id,
                    status=DeliveryStatus.SENT, attempts=1, sent_at=when))
                ids.append(subscriber_id)
        return digest.id, ids


def deliver(app, fixture: str, digest_id: int, subscriber_id: int, recipient: str = READER,
            **changes):
    """A bounce mail of the ``fixture`` format about this delivery, received over SMTP;
    the intake's outcome (bounce events and reports committed)."""
    from newsletter.bounces import intake
    from newsletter.mail import verp
    from newsletter.models import BounceSource

    with app.app_context(), unit_of_work():
        address = verp.address_for(verp.DeliveryRef(digest_id=digest_id,
                                                    subscriber_id=subscriber_id))
        raw = bounce_mail(fixture, verp=changes.pop("verp", address), recipient=recipient)
        return intake.receive_mail(raw, BounceSource.SMTP, changes.pop("envelope", [address]))


def add_clicks(app, digest_id: int, *clicks: tuple) -> None:
    """Stored clicks of an issue: (link, copy, verdict value, at[, kind value]) each."""
    import secrets

    from newsletter.models import Click, ClickKind, Verdict

    with app.app_context(), unit_of_work():
        db.session.execute(insert(Click), [
            {"record_key": secrets.token_hex(8), "digest_id": digest_id, "link": link,
             "copy": copy, "verdict": Verdict(verdict), "reason": "test", "at": at,
             "kind": ClickKind(rest[0] if rest else "click")}
            for link, copy, verdict, at, *rest in clicks])
