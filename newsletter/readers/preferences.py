"""The reader's preference centre: topics, cadence, name, a pause, a new address.

Reached from the link in every mail's footer, which carries the reader's
``unsubscribe_key`` (see subscriptions.subscriber_for_unsubscribe_token): no login.
Only an active reader changes anything. Every change is one transaction with its
consent event; bad input raises PreferenceError (or InvalidAddress) before any write.
A new address is recorded for a worker to decide, like a subscribe request; once
confirmed, the old address is told and can undo it for ADDRESS_UNDO_DAYS.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from newsletter.content import topics
from newsletter.delivery import outbox
from newsletter.extensions import db
from newsletter.mail.addresses import InvalidAddress, check_email, check_name
from newsletter.mail.language import N_
from newsletter.mail.tokens import (
    TokenExpired,
    TokenInvalid,
    is_unsubscribe_key,
    read_address_token,
)
from newsletter.models import (
    ADDRESS_UNDO_DAYS,
    AddressChange,
    ConsentAction,
    MailTemplate,
    Subscriber,
    SubscriberStatus,
    Topic,
    new_token_nonce,
    new_unsubscribe_key,
    utcnow,
)
from newsletter.readers import choices, privacy, subscriptions, sunset
from newsletter.readers.status import Origin, record
from newsletter.readers.subscriptions import LinkUsed, subscriber_for_unsubscribe_token

PAUSE_WEEKS = (2, 4, 8)


class PreferenceError(ValueError):
    """Bad preference input; the message says what to fix. Keeps the message's catalogue
    form and its values, so the preference centre can translate it."""

    def __init__(self, message: str, **values: object) -> None:
        super().__init__(message % values if values else message)
        self.message = message
        self.values = values


class NotSubscribed(PreferenceError):
    """The link is genuine but its reader is not subscribed (any more)."""


def reader_for_link(token: str) -> Subscriber:
    """The reader a preference link names; raises TokenInvalid."""
    return subscriber_for_unsubscribe_token(token)


def _active_reader(token: str) -> Subscriber:
    subscriber = reader_for_link(token)
    if subscriber.status != SubscriberStatus.ACTIVE:
        raise NotSubscribed(N_("You are not subscribed, so there is nothing to change."))
    return subscriber


def _topic_choice(slugs: list[str]) -> list[Topic]:
    try:
        return topics.topics_by_slugs(slugs)
    except topics.TopicError as error:
        raise PreferenceError(str(error)) from None


def pause_in_force(subscriber: Subscriber) -> datetime | None:
    """When the reader's break ends, while they are on one (pages that welcome a
    reader back must not promise the next digest)."""
    until = subscriber.paused_until
    return until if until is not None and until > utcnow() else None


def update_choices(token: str, topic_slugs: list[str], cadence: str | None,
                   origin: Origin) -> None:
    """Replace the reader's topics (none: everything) and cadence (none given: weekly,
    the one cadence the page offers when there is no daily issue)."""
    subscriber = _active_reader(token)
    chosen = _topic_choice(topic_slugs)
    try:
        new_cadence = topics.parse_offered_cadence(cadence)
    except topics.TopicError as error:
        raise PreferenceError(str(error)) from None
    topics.set_reader_topics(subscriber, chosen)
    topics.set_cadence(subscriber, new_cadence)
    detail = f"topics={','.join(t.slug for t in chosen) or '(all)'}; cadence={new_cadence.value}"
    record(subscriber.id, ConsentAction.PREFERENCES_CHANGED, origin, detail)


def set_locale(token: str, timezone: object, language: object, origin: Origin) -> None:
    """The reader's time zone (empty: the newsletter's) and language (None: unchanged)."""
    subscriber = _active_reader(token)
    _apply_locale(subscriber, {"timezone": timezone or None,
                               **({"language": language} if language is not None else {})})
    record(subscriber.id, ConsentAction.PREFERENCES_CHANGED, origin,
           f"time zone={subscriber.timezone or '(default)'}; "
           f"language={subscriber.language or '(default)'}")


def _apply_locale(subscriber: Subscriber, changes: dict) -> None:
    """Checks then sets "timezone" and "language" when given (None clears them)."""
    try:
        zone = changes.get("timezone") and choices.check_timezone(changes["timezone"])
        language = changes.get("language") and choices.check_language(changes["language"])
    except choices.ChoiceError as error:
        raise PreferenceError(error.message, **error.values) from None
    if "timezone" in changes:
        subscriber.timezone = zone or None
    if "language" in changes:
        subscriber.language = language or None


def rename(token: str, name: str, origin: Origin) -> None:
    subscriber = _active_reader(token)
    if not isinstance(name, str) or not name.strip():
        raise PreferenceError(N_("Enter your name."))
    subscriber.name = check_name(name)
    record(subscriber.id, ConsentAction.PREFERENCES_CHANGED, origin, "name changed")


def pause(token: str, weeks: object, origin: Origin) -> None:
    """No digest for 2, 4 or 8 weeks from now."""
    subscriber = _active_reader(token)
    if str(weeks) not in {str(choice) for choice in PAUSE_WEEKS}:
        raise PreferenceError(N_("A pause lasts 2, 4 or 8 weeks."))
    until = utcnow() + timedelta(weeks=int(weeks))
    topics.pause_reader(subscriber, until)
    record(subscriber.id, ConsentAction.PAUSED, origin,
                f"until {until.isoformat(timespec='minutes')}")


def resume(token: str, origin: Origin) -> None:
    subscriber = _active_reader(token)
    if subscriber.paused_until is None:
        return  # nothing to resume: repeating the click logs nothing new
    topics.pause_reader(subscriber, None)
    sunset.resumed(subscriber.id)
    record(subscriber.id, ConsentAction.RESUMED, origin)


def request_address_change(token: str, new_email: object, origin: Origin) -> None:
    """Record the reader's wish to move to a new address; a worker decides it
    (``subscriptions.decide_request``) and mails a confirmation link there.

    The same work and answer whatever the new address is (free, somebody's, erased),
    so the page tells nobody who reads us, not even by its timing; the mail shares the
    subscribe form's per-mailbox limits, so it cannot flood a third party. The old
    address keeps the mail until the link is followed. Raises InvalidAddress.
    """
    subscriber = _active_reader(token)
    address = check_email(new_email)
    if address.normalized == subscriber.email_normalized:
        raise PreferenceError(N_("That is the address we send to already."))
    db.session.rollback()  # hold nothing: the request is written on a connection of its own
    subscriptions.request_address_change(subscriber.id, address, origin)


def reader_for_address_token(token: str) -> Subscriber:
    """The reader a change-address link is for, for its GET page; raises TokenInvalid."""
    claim = read_address_token(token)
    subscriber = db.session.get(Subscriber, claim.subscriber_id)
    if subscriber is None or subscriber.status != SubscriberStatus.ACTIVE:
        raise TokenInvalid("unknown or unsubscribed reader")
    if subscriber.token_nonce != claim.nonce or subscriber.pending_email != claim.email:
        raise LinkUsed("used or superseded")
    return subscriber


def confirm_address_change(token: str, origin: Origin) -> Subscriber:
    """Switch the reader to the address the link was mailed to (once), and tell the old
    address, with a link that undoes it for UNDO_DAYS. Raises TokenInvalid (LinkUsed:
    used, superseded, or the address was taken meanwhile)."""
    claim = read_address_token(token)
    address = check_email(claim.email)
    reader_for_address_token(token)
    old_email = db.session.get(Subscriber, claim.subscriber_id).email
    try:
        switched = db.session.execute(
            update(Subscriber)
            .where(Subscriber.id == claim.subscriber_id,
                   Subscriber.status == SubscriberStatus.ACTIVE,
                   Subscriber.token_nonce == claim.nonce,
                   Subscriber.pending_email == claim.email)
            .values(email=address.given, email_normalized=address.normalized,
                    pending_email=None, token_nonce=new_token_nonce(), updated_at=utcnow())
        ).rowcount == 1
    except IntegrityError:  # subscribed from the form meanwhile
        db.session.rollback()
        raise LinkUsed("the address is subscribed already") from None
    if not switched:
        db.session.rollback()
        raise LinkUsed("used or superseded")
    subscriber = db.session.get(Subscriber, claim.subscriber_id, populate_existing=True)
    record(subscriber.id, ConsentAction.ADDRESS_CHANGED, origin, f"from {old_email}")
    change = AddressChange(subscriber_id=subscriber.id, old_email=old_email,
                           new_email=address.given, changed_at=utcnow())
    db.session.add(change)
    change.notice_mail_id = outbox.owe(subscriber.id, MailTemplate.ADDRESS_CHANGED)
    return subscriber


# --- undo, from the notice mailed to the old address

UNDO_DAYS = ADDRESS_UNDO_DAYS


def address_link_language(token: str) -> str | None:
    """The language of the reader a change-address link was mailed for (its pages
    follow it), used or not; raises TokenInvalid for a link we did not sign."""
    claim = read_address_token(token)
    return db.session.scalar(select(Subscriber.language)
                             .where(Subscriber.id == claim.subscriber_id))


def undo_link_language(undo_key: str) -> str | None:
    """The language of the reader an undo link's address change moved, undone or not."""
    if not is_unsubscribe_key(undo_key):
        return None
    return db.session.scalar(
        select(Subscriber.language).join(AddressChange,
                                         AddressChange.subscriber_id == Subscriber.id)
        .where(AddressChange.undo_key == undo_key))


def change_to_undo(undo_key: str) -> AddressChange:
    """The address change an undo link names, while it can be undone; raises
    TokenInvalid (TokenExpired after UNDO_DAYS, LinkUsed once undone)."""
    if not is_unsubscribe_key(undo_key):  # the same shape: 128 random bits
        raise TokenInvalid("malformed undo key")
    change = db.session.scalar(select(AddressChange).where(AddressChange.undo_key == undo_key))
    if change is None:
        raise TokenInvalid("unknown undo key")
    if change.undone_at is not None:
        raise LinkUsed("undone already")
    if change.changed_at < utcnow() - timedelta(days=UNDO_DAYS):
        raise TokenExpired("undo window over")
    return change


def undo_address_change(undo_key: str, origin: Origin) -> Subscriber:
    """Move the reader back to the old address (once). The reader's key changes too,
    so the links in mails the other address received stop working (whoever holds one
    could otherwise move the subscription again); any change waiting for confirmation
    dies, and so do the undo links of later changes. Raises TokenInvalid."""
    change = change_to_undo(undo_key)
    address = check_email(change.old_email)
    now = utcnow()
    taken = db.session.execute(
        update(AddressChange)
        .where(AddressChange.id == change.id, AddressChange.undone_at.is_(None),
               AddressChange.changed_at >= now - timedelta(days=UNDO_DAYS))
        .values(undone_at=now)).rowcount != 1
    if taken:
        db.session.rollback()
        raise LinkUsed("undone already")
    db.session.execute(
        update(AddressChange)
        .where(AddressChange.subscriber_id == change.subscriber_id,
               AddressChange.id > change.id, AddressChange.undone_at.is_(None))
        .values(undone_at=now))
    if privacy.is_suppressed(address.normalized):
        db.session.rollback()
        raise LinkUsed("the old address was erased")
    moved_from = db.session.get(Subscriber, change.subscriber_id).email
    try:
        db.session.execute(
            update(Subscriber)
            .where(Subscriber.id == change.subscriber_id)
            .values(email=address.given, email_normalized=address.normalized,
                    pending_email=None, token_nonce=new_token_nonce(),
                    unsubscribe_key=new_unsubscribe_key(), updated_at=now))
        db.session.flush()
    except IntegrityError:  # the old address subscribed on its own since
        db.session.rollback()
        raise LinkUsed("the old address is subscribed separately") from None
    record(change.subscriber_id, ConsentAction.ADDRESS_CHANGE_UNDONE, origin,
           f"back from {moved_from}")
    return db.session.get(Subscriber, change.subscriber_id, populate_existing=True)


# --- the same choices through the API (an editor's token acts for the reader)

API_FIELDS = {"topics", "cadence", "name", "pause_weeks", "timezone", "language"}


def preferences_of(subscriber: Subscriber) -> dict:
    return {"id": subscriber.id, "status": subscriber.status.value,
            "topics": [topic.slug for topic in subscriber.topics],
            "cadence": subscriber.cadence.value, "name": subscriber.name,
            "paused_until": subscriber.paused_until and subscriber.paused_until.isoformat(),
            "timezone": subscriber.timezone, "language": subscriber.language}


def reader_by_id(subscriber_id: int) -> Subscriber:
    """A reader named by id (an editor's token); LookupError when missing or erased."""
    subscriber = db.session.get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.email_normalized.startswith(privacy.ERASED_PREFIX):
        raise LookupError("No such subscriber.")
    return subscriber


def set_preferences(subscriber_id: int, changes: dict, origin: Origin) -> Subscriber:
    """Apply the fields given ({"topics": [slugs], "cadence", "name", "pause_weeks": 2, 4,
    8 or null to resume}); every field is checked before anything is written.
    Raises LookupError (no such reader) or PreferenceError."""
    subscriber = reader_by_id(subscriber_id)
    unknown = sorted(set(changes) - API_FIELDS)
    if unknown:
        raise PreferenceError(f"Unknown field {unknown[0][:40]!r}: give any of "
                              + ", ".join(sorted(API_FIELDS)) + ".")
    if subscriber.status != SubscriberStatus.ACTIVE:
        raise NotSubscribed("Only an active subscriber's preferences can change.")
    slugs = changes.get("topics", [])
    if not isinstance(slugs, list) or not all(isinstance(slug, str) for slug in slugs):
        raise PreferenceError('"topics" must be a list of topic slugs.')
    chosen = _topic_choice(slugs)
    cadence = changes.get("cadence", subscriber.cadence.value)
    if not isinstance(cadence, str):
        raise PreferenceError("Cadence must be 'weekly' or 'daily'.")
    try:
        new_cadence = topics.parse_cadence(cadence)
    except topics.TopicError as error:
        raise PreferenceError(str(error)) from None
    name = changes.get("name")
    if "name" in changes:
        if not isinstance(name, str) or not name.strip():
            raise PreferenceError('"name" must be a non-empty string.')
        try:
            name = check_name(name)
        except InvalidAddress as error:
            raise PreferenceError(str(error)) from None
    weeks = changes.get("pause_weeks")
    if weeks is not None and (isinstance(weeks, bool) or weeks not in PAUSE_WEEKS):
        raise PreferenceError('"pause_weeks" is 2, 4 or 8 (null: resume).')

    _apply_locale(subscriber, {key: changes[key] for key in ("timezone", "language")
                               if key in changes})
    if "name" in changes:
        subscriber.name = name
    if "topics" in changes:
        topics.set_reader_topics(subscriber, chosen)
    topics.set_cadence(subscriber, new_cadence)
    if "pause_weeks" in changes:
        topics.pause_reader(subscriber, weeks and utcnow() + timedelta(weeks=weeks))
        sunset.resumed(subscriber.id)  # the reader's own choice replaces the policy's pause
    record(subscriber.id, ConsentAction.PREFERENCES_CHANGED, origin,
         f"topics={','.join(t.slug for t in subscriber.topics) or '(all)'}; "
         f"cadence={new_cadence.value}; changed: {', '.join(sorted(changes)) or 'nothing'}")
    return subscriber
