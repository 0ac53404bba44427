"""Moving whole lists in and out as CSV."""

from __future__ import annotations

import csv
import io
import re
import secrets
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from flask import current_app
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
from newsletter.services.privacy import suppression_keys
from newsletter.services.subscriptions import Origin, subscribe

MAX_ROWS = 1_000_000


class ListFileError(ValueError):
    """The file as a whole cannot be imported (encoding, missing column)."""


@dataclass
class ImportReport:
    valid: int = 0  # added, or (dry run) would be added
    duplicates: int = 0  # already on the list, erased, or twice in the file
    invalid: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)


CHUNK = 1000


def read_rows(data: bytes) -> Iterator[tuple[int, dict]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ListFileError("The file is not UTF-8 text; save it as UTF-8 CSV.") from None
    reader = csv.DictReader(io.StringIO(text))
    fields = [(name or "").strip().lower() for name in reader.fieldnames or []]
    if "email" not in fields:
        raise ListFileError("The first line must name the columns, one of them 'email'.")
    reader.fieldnames = fields
    for row in reader:
        if reader.line_num > MAX_ROWS + 1:
            raise ListFileError(f"At most {MAX_ROWS} rows per file.")
        yield reader.line_num, row


def import_csv(data: bytes, consent: str | None, *, dry_run: bool = False) -> ImportReport:
    """With ``consent`` the addresses are recorded as already confirmed (a list moved
    from another tool, on the importer's word); without it each gets a confirmation.
    A dry run reports the same figures and writes nothing."""
    report = ImportReport()
    seen: set[str] = set()
    chunk: list[tuple[str, str, str | None]] = []
    for line, row in read_rows(data):
        try:
            address = check_email(row.get("email"))
            name = check_name(row.get("name"))
        except InvalidAddress as error:
            report.invalid.append((line, str(error)))
            continue
        if address.normalized in seen:
            report.duplicates += 1
            continue
        seen.add(address.normalized)
        chunk.append((address.given, address.normalized, name))
        if len(chunk) == CHUNK:
            _import_chunk(chunk, consent, dry_run, report)
            chunk = []
    _import_chunk(chunk, consent, dry_run, report)
    return report


def _import_chunk(chunk, consent: str | None, dry_run: bool, report: ImportReport) -> None:
    """One query finds which of up to CHUNK addresses are known (or erased)."""
    if not chunk:
        return
    hashed = {normalized: suppression_keys(normalized) for _, normalized, _ in chunk}
    keys = [normalized for _, normalized, _ in chunk]
    keys += [key for keys_of_one in hashed.values() for key in keys_of_one]
    known = set(db.session.scalars(select(Subscriber.email_normalized).where(
        Subscriber.email_normalized.in_(keys))))
    origin = Origin(source=ConsentSource.IMPORT)
    confirmed: list[Subscriber] = []
    for given, normalized, name in chunk:
        if normalized in known or not known.isdisjoint(hashed[normalized]):
            report.duplicates += 1
            continue
        report.valid += 1
        if dry_run:
            continue
        if consent is None:
            subscribe(given, name, origin)  # a confirmation mail each, with its limits
        else:
            confirmed.append(Subscriber(email=given, email_normalized=normalized, name=name,
                                        status=SubscriberStatus.ACTIVE, confirmed_at=utcnow()))
    if confirmed:
        _add_confirmed(confirmed, consent)


def _add_confirmed(subscribers: list[Subscriber], consent: str) -> None:
    """One transaction per chunk: the rows and their consent evidence together."""
    db.session.add_all(subscribers)
    db.session.flush()
    db.session.add_all(ConsentEvent(
        subscriber_id=subscriber.id, action=ConsentAction.CONFIRMED,
        source=ConsentSource.IMPORT, email=subscriber.email,
        detail=f"imported as confirmed: {consent}"[:1000]) for subscriber in subscribers)
    db.session.commit()


def export_rows() -> Iterable[list[str]]:
    yield ["email", "name", "status", "created_at", "confirmed_at"]
    query = select(Subscriber).order_by(Subscriber.id).execution_options(yield_per=1000)
    for subscriber in db.session.scalars(query):
        yield [subscriber.email, subscriber.name or "", subscriber.status.value,
               subscriber.created_at.isoformat(),
               subscriber.confirmed_at.isoformat() if subscriber.confirmed_at else ""]


# An upload checked by a dry run waits here for the editor's confirmation, an hour at
# most: a list nobody imported is personal data we have no reason to hold.
_UPLOAD_NAME = re.compile(r"^[0-9a-f]{32}$")
UPLOAD_MAX_AGE = 3600  # seconds


def _uploads() -> Path:
    folder = Path(current_app.instance_path) / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def keep_upload(data: bytes) -> str:
    discard_stale_uploads()
    name = secrets.token_hex(16)
    (_uploads() / f"{name}.csv").write_bytes(data)
    return name


def read_upload(name: str) -> bytes | None:
    path = _uploads() / f"{name}.csv"
    if not _UPLOAD_NAME.match(name) or not path.is_file():
        return None
    if time.time() - path.stat().st_mtime > UPLOAD_MAX_AGE:
        path.unlink(missing_ok=True)
        return None
    return path.read_bytes()


def discard_upload(name: str | None) -> None:
    if name and _UPLOAD_NAME.match(name):
        (_uploads() / f"{name}.csv").unlink(missing_ok=True)


def discard_stale_uploads() -> int:
    """Delete uploads older than UPLOAD_MAX_AGE (beat runs this every ten minutes)."""
    cutoff, removed = time.time() - UPLOAD_MAX_AGE, 0
    for path in _uploads().glob("*.csv"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:  # another process removed it first
            continue
    return removed
