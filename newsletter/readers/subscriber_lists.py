"""Moving whole lists in and out as CSV.

Columns: ``email`` (required), ``name`` and ``topics`` (topic slugs separated by
``;``, empty = everything), ``language`` and ``timezone`` (empty: the defaults); any
other column is kept as the reader's attribute of that name (for segments). Export
writes the same columns and more. A slug that is no topic does not cost the row its
address: the reader is imported with the slugs that are topics, and the report names
the one left out."""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import re
import secrets
import shutil
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO

from flask import current_app
from sqlalchemy import insert, select, update

from newsletter import jobs
from newsletter.content.topics import reader_topic_slugs
from newsletter.extensions import db
from newsletter.mail.addresses import InvalidAddress, check_email, check_name
from newsletter.models import (
    ConsentSource,
    ImportJob,
    ImportStatus,
    MailTemplate,
    OutboxMail,
    Subscriber,
    Topic,
    subscriber_topics,
    utcnow,
)
from newsletter.queue import enqueue_after_commit
from newsletter.readers import choices, status
from newsletter.readers.privacy import suppression_keys

log = logging.getLogger(__name__)

MAX_ROWS = 1_000_000
EXPORT_PAGE = 1000


class ListFileError(ValueError):
    """The file as a whole cannot be imported (encoding, missing column)."""


CHUNK = 1000
SAMPLE_KEPT = 200  # lines kept of each kind for the report
VALUE_SHOWN = 80  # characters of a cell the report quotes
SNIFF_BYTES = 64 * 1024


def quoted(value: object) -> str:
    """A cell as the report shows it: cut to VALUE_SHOWN, unprintable characters
    replaced (the page escapes the rest)."""
    text = "" if value is None else str(value)
    cut = text[:VALUE_SHOWN] + ("…" if len(text) > VALUE_SHOWN else "")
    return "".join(char if char.isprintable() else "\ufffd" for char in cut)


@dataclass
class ImportReport:
    valid: int = 0  # added, or (dry run) would be added
    duplicates: int = 0  # already on the list, erased, or twice in the file
    invalid_count: int = 0
    rows: int = 0
    # The first SAMPLE_KEPT of each: (line, the value as given, why).
    invalid: list[tuple[int, str, str]] = field(default_factory=list)
    duplicate_lines: list[tuple[int, str, str]] = field(default_factory=list)
    # Rows kept with a topic slug left out: the first SAMPLE_KEPT and how many.
    topic_notes: list[tuple[int, str, str]] = field(default_factory=list)
    topic_note_count: int = 0

    def note_invalid(self, line: int, value: object, why: str) -> None:
        self.invalid_count += 1
        if len(self.invalid) < SAMPLE_KEPT:
            self.invalid.append((line, quoted(value), why))

    def note_topic(self, line: int, value: object, why: str) -> None:
        self.topic_note_count += 1
        if len(self.topic_notes) < SAMPLE_KEPT:
            self.topic_notes.append((line, quoted(value), why))

    def note_duplicate(self, line: int, value: object, why: str) -> None:
        self.duplicates += 1
        if len(self.duplicate_lines) < SAMPLE_KEPT:
            self.duplicate_lines.append((line, quoted(value), why))


def check_header(head: bytes) -> None:
    """Refuse at once a file that is not UTF-8 or names no 'email' column, from its
    first bytes: the rest is read by the job."""
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        if error.start < len(head) - 4:  # not just a character cut at the end
            raise ListFileError("The file is not UTF-8 text; save it as UTF-8 CSV.") from None
        text = head[:error.start].decode("utf-8-sig")
    first = next(csv.reader(io.StringIO(text)), [])
    if "email" not in [(name or "").strip().lower() for name in first]:
        raise ListFileError("The first line must name the columns, one of them 'email'.")


def read_rows(stream: IO[bytes]) -> Iterator[tuple[int, dict]]:
    """Rows of a CSV read from a binary stream a buffer at a time (flat memory)."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    try:
        reader = csv.DictReader(text)
        fields = [(name or "").strip().lower() for name in reader.fieldnames or []]
        if "email" not in fields:
            raise ListFileError("The first line must name the columns, one of them 'email'.")
        reader.fieldnames = fields
        for row in reader:
            if reader.line_num > MAX_ROWS + 1:
                raise ListFileError(f"At most {MAX_ROWS} rows per file.")
            yield reader.line_num, row
    except UnicodeDecodeError:
        raise ListFileError("The file is not UTF-8 text; save it as UTF-8 CSV.") from None
    except csv.Error as error:  # e.g. a field longer than 128 KB: not a list of addresses
        raise ListFileError(f"Line {reader.line_num + 1} is not CSV: {error}.") from None
    finally:
        text.detach()


def import_csv(data: bytes, consent: str | None, *, dry_run: bool = False) -> ImportReport:
    """The whole file in the caller's transaction."""
    *_, report = import_stream(io.BytesIO(data), consent, dry_run=dry_run)
    return report


def import_stream(stream: IO[bytes], consent: str | None, *,
                  dry_run: bool = False) -> Iterator[ImportReport]:
    """With ``consent`` the addresses are recorded as already confirmed (a list moved
    from another tool, on the importer's word); without it each gets a confirmation,
    paced at SEND_RATE. A dry run reports the same figures and writes nothing.

    Yields the report (the same object, updated) after each chunk, last after the
    final one: the caller may commit there, so progress shows and a long import is
    not one huge transaction. Memory stays flat: a written chunk is in the database
    (an address met earlier in the file is found there); a dry run, which writes
    nothing, keeps what it met in a temporary file."""
    report = ImportReport()
    seen = _SeenAddresses() if dry_run else None
    # normalized -> (given, name, line, topics, attributes)
    chunk: dict[str, tuple[str, str | None, int, list[int], dict | None]] = {}
    pacer = _ConfirmationPacer()
    topic_ids = dict(db.session.execute(select(Topic.slug, Topic.id)).all())
    try:
        for line, row in read_rows(stream):
            report.rows += 1
            if report.rows == 1:
                check_attribute_columns(row)
            try:
                address = check_email(row.get("email"))
                name = check_name(row.get("name"))
                extra = row_extra(row)
            except (InvalidAddress, BadAttribute, choices.ChoiceError) as error:
                report.note_invalid(line, row.get("email"), str(error))
                continue
            chosen, unknown = _row_topics(row.get("topics"), topic_ids)
            if unknown:
                report.note_topic(line, row.get("email"), _left_out(unknown, chosen))
            if address.normalized in chunk:
                report.note_duplicate(line, address.given, TWICE)
                continue
            chunk[address.normalized] = (address.given, name, line, chosen, extra)
            if len(chunk) == CHUNK:
                _flush(chunk, consent, report, pacer, seen)
                chunk = {}
                yield report
        _flush(chunk, consent, report, pacer, seen)
        yield report
    finally:
        if seen:
            seen.close()


TWICE, KNOWN = "twice in the file", "already known"
KNOWN_COLUMNS = frozenset({"email", "name", "topics", "language", "timezone"})
ATTRIBUTE_COLUMN = re.compile(r"[a-z][a-z0-9_]{0,39}")
MAX_ATTRIBUTES = 20
ATTRIBUTE_VALUE_MAX = 200


class BadAttribute(ValueError):
    """A row's extra cell that cannot be kept as an attribute."""


def check_attribute_columns(row: dict) -> None:
    """Extra columns become attributes: their names must be usable in a segment."""
    extra = [name for name in row if name not in KNOWN_COLUMNS]
    if None in extra:  # csv's key for cells beyond the header's columns
        raise ListFileError("Line 2 has more cells than the first line names columns.")
    bad = [name for name in extra if not ATTRIBUTE_COLUMN.fullmatch(name)]
    if bad:
        raise ListFileError(f"The column {bad[0][:40]!r} cannot be an attribute: name extra "
                            "columns with lowercase letters, digits and _ (up to 40).")
    if len(extra) > MAX_ATTRIBUTES:
        raise ListFileError(f"At most {MAX_ATTRIBUTES} columns beyond email, name and topics.")


def row_extra(row: dict) -> dict:
    """The row's language, time zone and attributes, as the reader's columns."""
    language, zone = (row.get("language") or "").strip(), (row.get("timezone") or "").strip()
    return {"language": choices.check_language(language) if language else None,
            "timezone": choices.check_timezone(zone) if zone else None,
            "attributes": row_attributes(row)}


def row_attributes(row: dict) -> dict | None:
    """The row's extra cells, blanks left out; None when there are none."""
    found = {}
    for name, value in row.items():
        if name in KNOWN_COLUMNS or name is None or not (value or "").strip():
            continue
        value = value.strip()
        if len(value) > ATTRIBUTE_VALUE_MAX or any(ord(char) < 32 for char in value):
            raise BadAttribute(f"the {name} cell is over {ATTRIBUTE_VALUE_MAX} characters "
                             "or holds a control character")
        found[name] = value
    return found or None


def _row_topics(cell: str | None, topic_ids: dict[str, int]) -> tuple[list[int], list[str]]:
    """The row's topics, and the slugs in it that are no topic."""
    slugs = [slug.strip() for slug in (cell or "").split(";") if slug.strip()]
    unknown = [slug for slug in slugs if slug not in topic_ids]
    return sorted({topic_ids[slug] for slug in slugs if slug in topic_ids}), unknown


def _left_out(unknown: list[str], chosen: list[int]) -> str:
    named = ", ".join(f"{slug[:64]!r}" for slug in unknown[:3])
    more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
    kept = "with its other topics" if chosen else "with every topic (none left)"
    return f"unknown topic {named}{more}: left out, the reader is kept {kept}"


def _flush(chunk: dict, consent, report: ImportReport, pacer, seen) -> None:
    if seen is not None:
        for given, _, line, *_ in seen.drop_repeats(chunk):
            report.note_duplicate(line, given, TWICE)
    _import_chunk(chunk, consent, seen is not None, report, pacer)


class _SeenAddresses:
    """Addresses met earlier in the file, for a dry run: 8-byte digests in a
    temporary on-disk SQLite table (SQLite deletes it on close), not in memory."""

    def __init__(self):
        self.db = sqlite3.connect("")
        self.db.execute("CREATE TABLE seen (key BLOB PRIMARY KEY) WITHOUT ROWID")

    def drop_repeats(self, chunk: dict) -> list:
        """Removes from ``chunk`` the addresses met before; returns their entries."""
        digests = {hashlib.blake2b(key.encode(), digest_size=8).digest(): key for key in chunk}
        keys, found = list(digests), set()
        for start in range(0, len(keys), 500):
            part = keys[start:start + 500]
            found.update(row[0] for row in self.db.execute(
                f"SELECT key FROM seen WHERE key IN ({','.join('?' * len(part))})", part))
        self.db.executemany("INSERT OR IGNORE INTO seen VALUES (?)",
                            [(key,) for key in keys if key not in found])
        return [chunk.pop(digests[key]) for key in found]

    def close(self) -> None:
        self.db.close()


def _import_chunk(chunk: dict, consent: str | None, dry_run: bool, report: ImportReport,
                  pacer: _ConfirmationPacer) -> None:
    """One query finds which of up to CHUNK addresses are known (or erased); the
    new ones are written in one transaction with their consent evidence."""
    if not chunk:
        return
    hashed = {normalized: suppression_keys(normalized) for normalized in chunk}
    keys = list(chunk) + [key for keys_of_one in hashed.values() for key in keys_of_one]
    known = set(db.session.scalars(select(Subscriber.email_normalized).where(
        Subscriber.email_normalized.in_(keys))))
    new: dict[str, tuple[str, int]] = {}  # normalized -> (given, line)
    rows, chosen_topics = [], {}
    for normalized, (given, name, line, chosen, extra) in chunk.items():
        if normalized in known or not known.isdisjoint(hashed[normalized]):
            report.note_duplicate(line, given, KNOWN)
            continue
        report.valid += 1
        if not dry_run:
            new[normalized] = (given, line)
            rows.append({"email": given, "email_normalized": normalized, "name": name,
                         **extra})
            chosen_topics[normalized] = chosen
    if not rows:
        return
    ids = _write_chunk(rows, chosen_topics, consent, pacer)
    for normalized, (given, line) in new.items():
        if normalized not in ids:  # someone subscribed it meanwhile
            report.valid -= 1
            report.note_duplicate(line, given, KNOWN)


def _write_chunk(rows: list[dict], chosen: dict[str, list[int]], consent: str | None,
                 pacer: _ConfirmationPacer) -> dict[str, int]:
    """Core inserts (one multi-row statement each, not an ORM object per row)."""
    ids = status.enter_many(
        rows, status.Change.JOIN_CONFIRMED if consent else status.Change.JOIN,
        status.Origin(ConsentSource.IMPORT),
        f"imported as confirmed: {consent}"[:1000] if consent else "imported")
    topic_rows = [{"subscriber_id": ids[normalized], "topic_id": topic_id}
                  for normalized, topic_ids in chosen.items() if normalized in ids
                  for topic_id in topic_ids]
    if topic_rows:
        db.session.execute(insert(subscriber_topics), topic_rows)
    if not consent and ids:
        # Owed now, due one by one at SEND_RATE: the outbox sweep publishes each to
        # the transactional queue when its time comes, so a big import neither floods
        # the relay nor holds a worker.
        db.session.execute(insert(OutboxMail), [
            {"subscriber_id": ids[row["email_normalized"]], "template": MailTemplate.CONFIRM,
             "requested_at": pacer.next_slot(), "attempts": 0}
            for row in rows if row["email_normalized"] in ids])
    return ids


# A spreadsheet runs a cell that starts with one of these as a formula
# (=HYPERLINK(...), +cmd|..., @SUM(...)): a leading quote makes it plain text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_STARTS) else value


class _ConfirmationPacer:
    """Due times for confirmation mails: SEND_RATE a second from now (all due at
    once when no rate is set)."""

    def __init__(self):
        self.rate = current_app.config["SEND_RATE"]
        self.start, self.count = utcnow(), 0

    def next_slot(self):
        self.count += 1
        if not self.rate:
            return self.start
        return self.start + timedelta(seconds=self.count / self.rate)


# --- the import as a job --------------------------------------------------------------------



def start_import_job(upload: str, consent: str | None, dry_run: bool,
                     editor_id: int | None) -> ImportJob:
    path = _uploads() / f"{upload}.csv"
    job = ImportJob(upload=upload, consent=consent, dry_run=dry_run, editor_id=editor_id,
                    total_bytes=path.stat().st_size)
    db.session.add(job)
    db.session.flush()
    enqueue_after_commit(jobs.RUN_IMPORT, job.id)
    return job


def import_job_steps(job_id: int) -> Iterator[None]:
    """Run a queued job once (a duplicate task finds it claimed and stops), yielding
    where the caller commits: after the claim, after each chunk with its progress,
    and (when the generator ends) the outcome. A job the sweeper failed meanwhile
    (``fail_stalled_import_jobs``) stays failed: its chunk in hand is not written."""
    claimed = db.session.execute(update(ImportJob).where(
        ImportJob.id == job_id, ImportJob.status == ImportStatus.QUEUED)
        .values(status=ImportStatus.RUNNING, progress_at=utcnow())).rowcount
    yield
    if not claimed:
        return
    job = db.session.get(ImportJob, job_id)
    path = _uploads() / f"{job.upload}.csv"
    values: dict = {}
    try:
        with path.open("rb") as stream:
            for report in import_stream(stream, job.consent, dry_run=job.dry_run):
                if not _still_running(job_id, rows_done=report.rows, bytes_done=stream.tell(),
                                      valid=report.valid, duplicates=report.duplicates,
                                      invalid_count=report.invalid_count):
                    return
                yield
    except (ListFileError, OSError) as error:
        db.session.rollback()
        values.update(status=ImportStatus.FAILED, error=str(error) if isinstance(
            error, ListFileError) else "The uploaded file is gone; choose it again.")
    else:
        values.update(status=ImportStatus.DONE, rows_done=report.rows,
                      bytes_done=job.total_bytes, valid=report.valid,
                      duplicates=report.duplicates, invalid_count=report.invalid_count,
                      topic_note_count=report.topic_note_count,
                      topic_note_sample=[list(item) for item in report.topic_notes],
                      invalid_sample=[list(item) for item in report.invalid],
                      duplicate_sample=[list(item) for item in report.duplicate_lines])
    values["finished_at"] = utcnow()
    if not _still_running(job_id, **values):
        return
    if values["status"] == ImportStatus.DONE and not job.dry_run:
        discard_upload(job.upload)
    log.info("import job %s: %s", job_id, values["status"])


def _still_running(job_id: int, **values) -> bool:
    """Write the job's progress or outcome, unless the sweeper has failed it meanwhile:
    then roll back what this chunk wrote, and say so."""
    written = db.session.execute(update(ImportJob).where(
        ImportJob.id == job_id, ImportJob.status == ImportStatus.RUNNING)
        .values(progress_at=utcnow(), **values)).rowcount
    if not written:
        db.session.rollback()
        log.warning("import job %s was failed as stalled: stopped", job_id)
    return bool(written)


# A running import reports progress after every chunk (CHUNK rows, seconds of work);
# one silent this long lost its worker.
IMPORT_STALLED_AFTER = timedelta(minutes=10)
STALLED_MESSAGE = (
    "This import stopped: the worker running it went away (no progress for "
    f"{IMPORT_STALLED_AFTER.seconds // 60} minutes). Choose the file and run it again: "
    "readers it already added count as already known, never twice.")


def fail_stalled_import_jobs() -> int:
    """Mark running jobs with no progress for IMPORT_STALLED_AFTER as failed, with a
    message the editor sees, so they can run the import again. Returns how many."""
    now = utcnow()
    return db.session.execute(update(ImportJob).where(
        ImportJob.status == ImportStatus.RUNNING,
        ImportJob.progress_at < now - IMPORT_STALLED_AFTER)
        .values(status=ImportStatus.FAILED, error=STALLED_MESSAGE, finished_at=now)).rowcount


def sample_lines(sample: list) -> list[tuple[int, str, str]]:
    """A job's kept lines as (line, value, why); jobs from before 0011 kept no value."""
    return [(item[0], "", item[1]) if len(item) == 2 else tuple(item) for item in sample]


def import_job(job_id: int) -> ImportJob | None:
    db.session.expire_all()
    return db.session.get(ImportJob, job_id)


def export_rows() -> Iterable[list[str]]:
    """The list a page of EXPORT_PAGE readers at a time (keyset), with their topics."""
    yield ["email", "name", "status", "created_at", "confirmed_at", "topics"]
    after = 0
    while page := db.session.scalars(select(Subscriber).where(Subscriber.id > after)
                                     .order_by(Subscriber.id).limit(EXPORT_PAGE)).all():
        chosen = reader_topic_slugs([subscriber.id for subscriber in page])
        for subscriber in page:
            yield [spreadsheet_safe(subscriber.email), spreadsheet_safe(subscriber.name or ""),
                   subscriber.status.value, subscriber.created_at.isoformat(),
                   subscriber.confirmed_at.isoformat() if subscriber.confirmed_at else "",
                   ";".join(chosen.get(subscriber.id, ()))]
        after = page[-1].id


# An upload checked by a dry run waits here for the editor's confirmation, an hour at
# most: a list nobody imported is personal data we have no reason to hold.
_UPLOAD_NAME = re.compile(r"^[0-9a-f]{32}$")
UPLOAD_MAX_AGE = 3600  # seconds


def _uploads() -> Path:
    folder = Path(current_app.instance_path) / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def keep_upload(data: bytes | IO[bytes]) -> str:
    """Keep bytes, or copy a stream (an upload, a CLI file) a buffer at a time."""
    discard_stale_uploads()
    name = secrets.token_hex(16)
    with (_uploads() / f"{name}.csv").open("wb") as file:
        if isinstance(data, bytes):
            file.write(data)
        else:
            shutil.copyfileobj(data, file, 1024 * 1024)
    return name


def upload_path(name: str) -> Path:
    if not _UPLOAD_NAME.match(name):
        raise ValueError("not an upload name")
    return _uploads() / f"{name}.csv"


def has_upload(name: str) -> bool:
    path = _uploads() / f"{name}.csv"
    return bool(_UPLOAD_NAME.match(name)) and path.is_file() and (
        time.time() - path.stat().st_mtime <= UPLOAD_MAX_AGE)


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
