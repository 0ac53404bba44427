"""What reaches a log line: redaction of every token and key, and the line's shape."""

from __future__ import annotations

import json
import logging
import re
import secrets
import sys

import pytest
from itsdangerous import URLSafeSerializer, URLSafeTimedSerializer

from newsletter.logging_setup import (
    LEVELS,
    RedactingRecordFactory,
    configure,
    make_formatter,
    redact,
)

KEY = secrets.token_urlsafe(16)
SIGNED = URLSafeTimedSerializer("k" * 32, salt="s").dumps([12, "nonce"])
OLD_LINK = URLSafeSerializer("k" * 32, salt="s").dumps(12)
API_TOKEN = "nl_" + secrets.token_urlsafe(32)


@pytest.mark.parametrize("text, secret", [
    (f"GET '/unsubscribe/{KEY}/preferences' answered 400: NUL", KEY),
    (f"POST '/unsubscribe/{KEY}' answered 429", KEY),
    (f"GET '/UNSUBSCRIBE/{KEY}' answered 404", KEY),
    (f"GET '/confirm/{SIGNED}' answered 400: bad link: expired", SIGNED),
    (f"GET '/change-address/{SIGNED}' answered 400", SIGNED),
    (f"POST '/undo-address/{KEY}' answered 400", KEY),
    (f"GET '/admin/invite/{SIGNED}' answered 400", SIGNED),
    (f"GET /x?token={KEY}&page=2", KEY),
    (f"GET /x?unsubscribe_key={KEY}", KEY),
    (f"link https://news.example.com/unsubscribe/{KEY} in a message", KEY),
    (f"payload {SIGNED} anywhere", SIGNED.rsplit(".", 1)[1]),
    (f"old link {OLD_LINK}", OLD_LINK.rsplit(".", 1)[1]),
    (f"Authorization: Bearer {API_TOKEN}", API_TOKEN[3:]),
    (f"token {API_TOKEN} refused", API_TOKEN[3:]),
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
    ("refused RCPT 'bounces+1z.2a.abcdefghijklmnop@bounces.example'", "abcdefghijklmnop"),
])
def test_tokens_and_keys_become_a_placeholder(text, secret):
    cleaned = redact(text)
    assert secret not in cleaned
    assert "[redacted]" in cleaned


@pytest.mark.parametrize("text", [
    "GET '/archive/12' answered 404: NotFound",
    "digest 7 sent: every delivery is final",
    "bounce event 3 for subscriber 9: hard, bounced",
    "newsletter.readers.subscriptions.subscriber_for_unsubscribe_token failed",
    "tests.integration.web.test_fuzz.test_malformed_requests_never_get_a_5xx",
    "feed https://news.example.com/feed.xml: HTTP 500",
    "relay answered status_code=451 for delivery 8",
])
def test_ordinary_lines_are_left_alone(text):
    assert redact(text) == text


def record(message, *args, exc_info=None) -> logging.LogRecord:
    factory = RedactingRecordFactory(logging.LogRecord)
    return factory("newsletter.test", logging.WARNING, __file__, 1, message, args, exc_info)


def test_records_are_redacted_as_they_are_made_arguments_and_exceptions_too():
    made = record("%s %r answered %s", "GET", f"/unsubscribe/{KEY}", 404)
    assert KEY not in made.getMessage() and "answered 404" in made.getMessage()
    try:
        raise ValueError(f"no reader for /unsubscribe/{KEY}")
    except ValueError as error:
        failed = record("unhandled error", exc_info=(type(error), error, error.__traceback__))
    line = make_formatter().format(failed)
    assert "ValueError" in line and KEY not in line


def test_a_bad_format_string_is_left_for_the_handler_to_report():
    made = record("%s and %s", "only one")
    assert made.msg == "%s and %s"  # unchanged: logging's own error report follows


def test_a_line_has_a_utc_timestamp_level_logger_and_message():
    line = make_formatter().format(record("issue %s paused", 4))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z WARNING newsletter\.test: "
                        r"issue 4 paused", line), line


def test_configure_sets_the_level_and_installs_one_redacting_factory():
    root = logging.getLogger()
    level, factory = root.level, logging.getLogRecordFactory()
    try:
        for name in LEVELS:
            configure(name)
            configure(name)
            assert root.level == logging.getLevelName(name.upper())
        assert isinstance(logging.getLogRecordFactory(), RedactingRecordFactory)
        assert not isinstance(logging.getLogRecordFactory().wrapped, RedactingRecordFactory)
    finally:
        root.setLevel(level)
        logging.setLogRecordFactory(factory)


def test_a_json_line_carries_the_request_id_and_the_redacted_exception():
    from flask import Flask, g

    formatter = make_formatter("json")
    app = Flask(__name__)
    with app.test_request_context("/"):
        g.request_id = "req-123"
        try:
            raise ValueError(f"bad link /unsubscribe/{KEY}")
        except ValueError:
            record = logging.getLogger("newsletter.web").makeRecord(
                "newsletter.web", logging.ERROR, __file__, 1, "failed for %s", (API_TOKEN,),
                sys.exc_info())
        RedactingRecordFactory(lambda *a, **k: record)()  # as every record is made
        line = formatter.format(record)
    entry = json.loads(line)
    assert "\n" not in line
    assert entry["request_id"] == "req-123" and entry["level"] == "ERROR"
    assert entry["logger"] == "newsletter.web" and "task_id" not in entry
    assert "ValueError" in entry["exception"]
    assert KEY not in line and API_TOKEN not in line
