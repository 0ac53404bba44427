"""One logging setup for every process: web, workers, beat and the bounce receiver.

``create_app`` calls ``configure`` first thing, so each process logs lines of
the same shape to stderr (the journal under systemd, gunicorn's error log):
``2026-12-03T12:00:00Z INFO newsletter.bounces.intake: bounce event ...``, at
the level ``NEWSLETTER_LOG_LEVEL`` names; with ``NEWSLETTER_LOG_FORMAT=json`` one JSON
object per line instead, with the request id (web) and the task id (workers).
Celery's worker and beat keep it instead of installing their own.

No reader key or token ever reaches a log line: every record is passed through
``redact`` when it is made (message, arguments, exception text), so it holds
for every handler, ours, gunicorn's access log, Celery's and a test's alike.
Refused requests log their path, and the paths of reader links hold
never-expiring keys.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import time

LEVELS = ("debug", "info", "warning", "error", "critical")
LINE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
PLACEHOLDER = "[redacted]"
# Libraries that tell at INFO what only a developer debugging them wants (alembic lists
# its plugins at every flask command; aiosmtpd logs five lines per SMTP connection to the
# bounce receiver, where our own "bounce accepted" line is the one that matters): quiet
# unless the level is debug.
CHATTY_LOGGERS = ("alembic.runtime.plugins", "mail.log")

# A segment after these in a path is a secret: reader keys (unsubscribe links and the
# preference centre under them), confirm, address-change, undo and invitation tokens,
# the signed link of a reader's own copy ("view in your browser") and the sunset
# policy's "keep me subscribed".
SECRET_PATHS = ("unsubscribe", "confirm", "change-address", "undo-address", "invite",
                "copy", "keep")
# Tracked links and the open pixel: both segments after these (the link and the copy,
# which names the reader when per-reader tracking is on).
TRACKED_PATHS = ("r", "o")
_SECRET_NAMES = r"[\w-]*(?:token|key|secret|password|signature)"

_REDACTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)(/(?:" + "|".join(SECRET_PATHS) + r")/)[^/?#\s'\"<>]+"),
     r"\1" + PLACEHOLDER),
    (re.compile(r"(/(?:" + "|".join(TRACKED_PATHS) + r")/)[^/?#\s'\"<>]+/[^/?#\s'\"<>]+"),
     r"\1" + PLACEHOLDER),
    # token=…, unsubscribe_key=… in query strings and messages
    (re.compile(r"(?i)\b(" + _SECRET_NAMES + r")=[^&\s'\",;]+"), r"\1=" + PLACEHOLDER),
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]+"), r"\1\2" + PLACEHOLDER),
    (re.compile(r"\bnl_[A-Za-z0-9_-]{8,}"), "nl_" + PLACEHOLDER),  # API tokens
    # Anything signed (itsdangerous: payload[.timestamp].signature, the signature 27+
    # characters of base64 with both cases, which no word or module path has).
    (re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)?\."
                r"(?=[A-Za-z0-9_-]*[A-Z])(?=[A-Za-z0-9_-]*[a-z])[A-Za-z0-9_-]{27,}"),
     PLACEHOLDER),
    (re.compile(r"(?i)\b(bounces\+)[a-z0-9._=-]+@"), r"\1" + PLACEHOLDER + "@"),  # VERP
)


def redact(text: str) -> str:
    """``text`` with every token and key replaced by the placeholder."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


@functools.lru_cache(maxsize=512)
def _redact_constant(text: str) -> str:
    return redact(text)


def redact_record(record: logging.LogRecord) -> None:
    """Format the message now and redact it; the exception text too (formatters use
    ``exc_text`` when it is set instead of formatting the exception again).
    A message without arguments is mostly a fixed text said again and again (Celery's,
    SQLAlchemy's): its redaction is remembered, not redone each time."""
    if not record.args and isinstance(record.msg, str):
        message = record.msg
        cleaned = _redact_constant(message) if len(message) < 1000 else redact(message)
    else:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: left for the handler to report
            return
        cleaned = redact(message)
    if cleaned != message:
        record.msg, record.args = cleaned, None
    if record.exc_info and not record.exc_text:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


class RedactingRecordFactory:
    """The log record factory, wrapped: every record is redacted as it is made."""

    def __init__(self, wrapped):
        self.wrapped = wrapped

    def __call__(self, *args, **kwargs) -> logging.LogRecord:
        record = self.wrapped(*args, **kwargs)
        redact_record(record)
        return record


class UTCFormatter(logging.Formatter):
    converter = time.gmtime
    default_time_format = "%Y-%m-%dT%H:%M:%S"
    default_msec_format = "%s.%03dZ"


class JSONFormatter(UTCFormatter):
    """One JSON object per line: time, level, logger, message, the web request's id and
    the Celery task's id when there is one, and the exception (already redacted)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record), "level": record.levelname,
                 "logger": record.name, "message": record.getMessage()}
        request_id, task_id = _request_id(), _task_id()
        if request_id:
            entry["request_id"] = request_id
        if task_id:
            entry["task_id"] = task_id
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(self.formatException(record.exc_info))
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False, default=str)


def _request_id() -> str | None:
    from flask import g, has_request_context

    return g.get("request_id") if has_request_context() else None


def _task_id() -> str | None:
    from celery import current_task

    return current_task.request.id if current_task else None


def make_formatter(log_format: str = "text") -> logging.Formatter:
    """The one place that decides what a line looks like: ``text`` or ``json``."""
    return JSONFormatter() if log_format == "json" else UTCFormatter(LINE_FORMAT)


def configure(level: str, log_format: str = "text") -> None:
    """Idempotent: the redaction once per process; a handler on the root logger unless
    one is there already (a test runner's, a host application's); the level always."""
    if not isinstance(logging.getLogRecordFactory(), RedactingRecordFactory):
        logging.setLogRecordFactory(RedactingRecordFactory(logging.getLogRecordFactory()))
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()  # stderr
        handler.setFormatter(make_formatter(log_format))
        root.addHandler(handler)
    root.setLevel(level.upper())
    # Python's warnings (Celery's "running as root") through the same handler, so a
    # JSON log has no line of another shape.
    logging.captureWarnings(log_format == "json")
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(
            logging.NOTSET if level.lower() == "debug" else logging.WARNING)
    _keep_it_in_celery()


def _keep_it_in_celery() -> None:
    """A receiver of Celery's ``setup_logging`` signal makes worker and beat leave the
    logging as it is (no handlers of their own, no ``--loglevel``)."""
    from celery import signals

    signals.setup_logging.connect(_leave_logging_alone, weak=False,
                                  dispatch_uid="newsletter-logging")


def _leave_logging_alone(**_kwargs) -> None:
    return None
