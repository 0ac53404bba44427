"""Moving whole lists in and out as CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from sqlalchemy import select

from newsletter.extensions import db
from newsletter.mail.addresses import InvalidAddress, check_email, check_name
from newsletter.models import (
    ConsentAction,
    ConsentEvent,
    ConsentSource,
    Subscriber,
    SubscriberStatus,
    utcnow,
)
from newsletter.services.subscriptions import Origin, find_subscriber, subscribe

MAX_ROWS = 1_000_000


class ImportError_(ValueError):
    """The file as a whole cannot be imported (encoding, missing column)."""


@dataclass
class ImportReport:
    added: int = 0
    duplicates: int = 0  # already on the list, or twice in the file
    invalid: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)


def read_rows(data: bytes) -> Iterator[tuple[int, dict]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportError_("The file is not UTF-8 text; save it as UTF-8 CSV.") from None
    reader = csv.DictReader(io.StringIO(text))
    fields = [name.strip().lower() for name in reader.fieldnames or []]
    if "email" not in fields:
        raise ImportError_("The first line must name the columns, one of them 'email'.")
    reader.fieldnames = fields
    for row in reader:
        if reader.line_num > MAX_ROWS + 1:
            raise ImportError_(f"At most {MAX_ROWS} rows per file.")
        yield reader.line_num, row


def import_csv(data: bytes, consent: str | None) -> ImportReport:
    """With ``consent`` the addresses are recorded as already confirmed (a list moved
    from another tool, on the importer's word); without it each gets a confirmation."""
    report = ImportReport()
    seen: set[str] = set()
    origin = Origin(source=ConsentSource.IMPORT)
    for line, row in read_rows(data):
        try:
            address = check_email(row.get("email"))
            name = check_name(row.get("name"))
        except InvalidAddress as error:
            report.invalid.append((line, str(error)))
            continue
        if address.normalized in seen or find_subscriber(address.normalized):
            report.duplicates += 1
            continue
        seen.add(address.normalized)
        if consent is None:
            subscribe(address.given, name, origin)
        else:
            _add_confirmed(address.given, address.normalized, name, consent)
        report.added += 1
    return report


def _add_confirmed(email: str, normalized: str, name: str | None, consent: str) -> None:
    now = utcnow()
    subscriber = Subscriber(email=email, email_normalized=normalized, name=name,
                            status=SubscriberStatus.ACTIVE, confirmed_at=now)
    db.session.add(subscriber)
    db.session.flush()
    db.session.add(ConsentEvent(subscriber_id=subscriber.id, action=ConsentAction.CONFIRMED,
                                source=ConsentSource.IMPORT, email=email,
                                detail=f"imported as confirmed: {consent}"[:1000]))
    db.session.commit()


def export_rows() -> Iterable[list[str]]:
    yield ["email", "name", "status", "created_at", "confirmed_at"]
    query = select(Subscriber).order_by(Subscriber.id).execution_options(yield_per=1000)
    for subscriber in db.session.scalars(query):
        yield [subscriber.email, subscriber.name or "", subscriber.status.value,
               subscriber.created_at.isoformat(),
               subscriber.confirmed_at.isoformat() if subscriber.confirmed_at else ""]
