"""The one logging setup in real processes: a flask command (as the bounce receiver
and every CLI command start) and a Celery worker."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

from newsletter.logging_setup import LEVELS
from tests.factories import add_article, add_subscribers, send_now
from tests.helpers import ROOT, run, subprocess_env, wait_until

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
HTTP_WARNING = "NEWSLETTER_BASE_URL is not https"


def flask(app, *args: str, **settings) -> subprocess.CompletedProcess:
    return run(sys.executable, "-m", "flask", "--app", "newsletter", *args,
               env=subprocess_env(app, **settings), timeout=60)


def test_an_unknown_log_level_stops_the_process_naming_the_setting(app):
    result = flask(app, "routes", LOG_LEVEL="verbose")
    assert result.returncode != 0 and "Endpoint" not in result.stdout
    assert (f"NEWSLETTER_LOG_LEVEL: expected one of {', '.join(LEVELS)}, got 'verbose'"
            in result.stderr.splitlines()[-1])


def test_an_http_base_url_is_a_warning_at_start_with_time_level_and_logger(app):
    plain = flask(app, "routes", BASE_URL="http://news.example.com")
    assert plain.returncode == 0, plain.stderr
    assert re.search(rf"^{STAMP} WARNING newsletter: {HTTP_WARNING}", plain.stderr, re.M), \
        plain.stderr
    for quiet in [flask(app, "routes", BASE_URL="https://news.example.com"),
                  flask(app, "routes", BASE_URL="http://127.0.0.1:5000"),  # the dev stack
                  flask(app, "routes", BASE_URL="http://news.example.com", LOG_LEVEL="error")]:
        assert quiet.returncode == 0 and HTTP_WARNING not in quiet.stderr


def test_a_worker_logs_in_the_same_format_and_says_when_a_send_finished(
        app, clean_state, mailbox, tmp_path):
    add_subscribers(app, 3)
    add_article(app)
    log = tmp_path / "worker.log"
    with log.open("w") as stderr:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "--pool",
             "solo", "--hostname", f"logs{time.monotonic_ns()}@%h"],
            env=subprocess_env(app, LOG_LEVEL="info"), cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        digest_id = send_now(app)
        finished = f"digest {digest_id} sent: every delivery is final"
        wait_until(lambda: finished in log.read_text(), 120,
                   lambda: f"{finished!r} in the worker's log:\n{log.read_text()[-3000:]}")
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    text = log.read_text()
    assert re.search(rf"^{STAMP} INFO newsletter\.issues\.digests: {finished}$", text, re.M)
    assert re.search(rf"^{STAMP} INFO celery\.apps\.worker: .* ready\.$", text, re.M)
    assert len(mailbox.wait_for(3)) == 3


def test_json_logs_parse_line_by_line_with_the_task_id(app, clean_state, mailbox, tmp_path):
    add_subscribers(app, 3)
    add_article(app)
    log = tmp_path / "worker.log"
    with log.open("w") as stderr:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "--pool",
             "solo", "--hostname", f"json{time.monotonic_ns()}@%h"],
            env=subprocess_env(app, LOG_LEVEL="info", LOG_FORMAT="json"), cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        digest_id = send_now(app)
        finished = f"digest {digest_id} sent: every delivery is final"
        wait_until(lambda: finished in log.read_text(), 120,
                   lambda: f"{finished!r} in the worker's log:\n{log.read_text()[-3000:]}")
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert entries and all({"time", "level", "logger", "message"} <= set(entry)
                           for entry in entries)
    assert all(re.fullmatch(STAMP, entry["time"]) for entry in entries)
    [done] = [entry for entry in entries if entry["message"] == finished]
    assert done["level"] == "INFO" and done["logger"] == "newsletter.issues.digests"
    assert re.fullmatch(r"[0-9a-f-]{36}", done["task_id"])  # the batch task's id


def test_an_unknown_log_format_stops_the_process_naming_the_setting(app):
    result = flask(app, "routes", LOG_FORMAT="xml")
    assert result.returncode != 0 and "Endpoint" not in result.stdout
    assert "NEWSLETTER_LOG_FORMAT: expected one of text, json, got 'xml'" in \
        result.stderr.splitlines()[-1]


def test_json_start_up_warning_is_one_object_per_line(app):
    result = flask(app, "routes", BASE_URL="http://news.example.com", LOG_FORMAT="json")
    assert result.returncode == 0, result.stderr
    entries = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert [entry for entry in entries if entry["message"].startswith(HTTP_WARNING)
            and entry["level"] == "WARNING" and entry["logger"] == "newsletter"]
