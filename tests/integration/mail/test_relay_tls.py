"""A relay whose certificate a private CA signed: refused with the reason in the log,
trusted through NEWSLETTER_SMTP_CA_FILE, and never trusted for another host name.

The relay is a real aiosmtpd speaking STARTTLS (or implicit TLS) with a certificate
from a CA made here; the client's certificate checks are never switched off.
"""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
from aiosmtpd.controller import Controller

from newsletter.db import unit_of_work
from newsletter.delivery import dispatch
from newsletter.devstack import free_port
from newsletter.issues import digests
from newsletter.mail.transport import Outcome, SMTPTransport
from tests.factories import add_article, add_subscribers
from tests.helpers import (
    ROOT,
    RecordingSMTPHandler,
    private_ca,
    subprocess_env,
    subscribe_by_form,
    wait_until,
)

MESSAGE = b"From: news@example.com\r\nTo: reader@example.com\r\nSubject: hi\r\n\r\nbody\r\n"


@pytest.fixture
def ca(tmp_path):
    return private_ca(tmp_path)


@pytest.fixture
def starttls_relay(ca):
    """A relay on 127.0.0.1 that requires STARTTLS before any mail."""
    controller = Controller(RecordingSMTPHandler(), hostname="127.0.0.1", port=free_port(),
                            tls_context=ca.server_context(), require_starttls=True)
    controller.start()
    yield controller
    controller.stop()


def transport_for(port: int, security: str = "starttls", host: str = "127.0.0.1",
                  ca_file: str = "") -> SMTPTransport:
    return SMTPTransport({"SMTP_HOST": host, "SMTP_PORT": port, "SMTP_SECURITY": security,
                          "SMTP_USERNAME": "", "SMTP_PASSWORD": "", "SMTP_TIMEOUT": 5,
                          "SMTP_CA_FILE": ca_file})


def warnings_about(caplog, text: str) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.levelno == logging.WARNING and text in record.getMessage()]


def test_without_the_ca_the_relay_is_refused_with_the_reason(starttls_relay):
    transport = transport_for(starttls_relay.port)
    result = transport.deliver("news@example.com", "reader@example.com", MESSAGE)
    transport.close()
    assert result.outcome is Outcome.UNREACHABLE
    assert result.detail == ("relay unreachable: TLS: CERTIFICATE_VERIFY_FAILED: unable to get "
                             "local issuer certificate; a relay signed by a private CA needs "
                             "NEWSLETTER_SMTP_CA_FILE")  # what failed, and what to do about it
    assert starttls_relay.handler.messages == []


def test_with_the_ca_file_the_relay_gets_the_mail(starttls_relay, ca):
    transport = transport_for(starttls_relay.port, ca_file=str(ca.ca_cert))
    for number in range(2):  # the second one on the same, verified connection
        result = transport.deliver("news@example.com", f"reader{number}@example.com", MESSAGE)
        assert result.outcome is Outcome.SENT, result
    transport.close()
    assert [envelope[1] for envelope in starttls_relay.handler.envelopes] == [
        ["reader0@example.com"], ["reader1@example.com"]]


def test_implicit_tls_honours_the_ca_file_too(ca):
    handler = RecordingSMTPHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(),
                            ssl_context=ca.server_context())
    controller.start()
    try:
        refused = transport_for(controller.port, "ssl").deliver(
            "news@example.com", "reader@example.com", MESSAGE)
        assert refused.outcome is Outcome.UNREACHABLE
        assert "CERTIFICATE_VERIFY_FAILED" in refused.detail
        transport = transport_for(controller.port, "ssl", ca_file=str(ca.ca_cert))
        assert transport.deliver("news@example.com", "reader@example.com", MESSAGE).outcome \
            is Outcome.SENT
        transport.close()
    finally:
        controller.stop()
    assert len(handler.messages) == 1


def test_the_ca_file_does_not_turn_off_the_host_name_check(starttls_relay, ca):
    """A certificate the CA signed for 127.0.0.1 does not pass for another name."""
    transport = transport_for(starttls_relay.port, host="localhost", ca_file=str(ca.ca_cert))
    result = transport.deliver("news@example.com", "reader@example.com", MESSAGE)
    transport.close()
    assert result.outcome is Outcome.UNREACHABLE
    assert "Hostname mismatch" in result.detail and "NEWSLETTER_SMTP_CA_FILE" not in result.detail
    assert starttls_relay.handler.messages == []


def test_a_batch_the_relay_cannot_be_verified_for_logs_once_and_keeps_every_reader(
        app, client, starttls_relay, monkeypatch, caplog):
    """The digest batch task's body, in-process: one warning with the reason for the
    whole batch, and every reader still owed the issue (no attempt spent)."""
    add_subscribers(app, 5)
    add_article(app)
    transport = transport_for(starttls_relay.port)
    monkeypatch.setitem(app.extensions, "smtp_relays", {transport.name: transport})
    caplog.set_level(logging.WARNING)
    with app.app_context():
        with unit_of_work():
            digest_id = digests.send_now().id
        with unit_of_work():
            dispatch.send_batch(digest_id)
        counts = digests.progress(digest_id)
    [line] = warnings_about(caplog, "CERTIFICATE_VERIFY_FAILED")
    assert "NEWSLETTER_SMTP_CA_FILE" in line
    assert counts["pending"] == 5 and counts["sent"] == counts["failed"] == 0, counts
    assert starttls_relay.handler.messages == []


def start_worker(env: dict, log_path) -> subprocess.Popen:
    with open(log_path, "wb") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "--pool",
             "solo", "--loglevel", "WARNING", "-n", f"tls-{free_port()}@%h"],
            env=env, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT)


def stop(worker: subprocess.Popen) -> None:
    worker.terminate()
    try:
        worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(timeout=10)


def test_a_worker_trusts_the_relay_through_the_setting(app, client, starttls_relay, ca,
                                                        tmp_path):
    """Real worker processes configured from the environment, as in production: without
    the setting the confirmation is not sent and the worker's log gives the reason (it
    said only "not sent: unreachable"); with NEWSLETTER_SMTP_CA_FILE the relay gets it."""
    settings = {"SMTP_PORT": starttls_relay.port, "SMTP_SECURITY": "starttls"}
    untrusting_log = tmp_path / "untrusting.log"
    worker = start_worker(subprocess_env(app, **settings), untrusting_log)
    try:
        subscribe_by_form(client, "first@example.com")
        wait_until(lambda: "CERTIFICATE_VERIFY_FAILED" in untrusting_log.read_text(), 60,
                   lambda: f"the reason in the worker's log: {untrusting_log.read_text()}")
    finally:
        stop(worker)
    assert "NEWSLETTER_SMTP_CA_FILE" in untrusting_log.read_text()
    assert starttls_relay.handler.messages == []

    trusting_log = tmp_path / "trusting.log"
    worker = start_worker(subprocess_env(app, SMTP_CA_FILE=ca.ca_cert, **settings),
                          trusting_log)
    try:
        subscribe_by_form(client, "second@example.com")
        wait_until(lambda: any(message["To"].addresses[0].addr_spec == "second@example.com"
                               for message in starttls_relay.handler.messages), 60,
                   "the confirmation to reach the relay")
    finally:
        stop(worker)
    assert "CERTIFICATE_VERIFY_FAILED" not in trusting_log.read_text()


@pytest.mark.parametrize("setting", ["SMTP_CA_FILE", "BOUNCE_IMAP_CA_FILE"])
def test_a_missing_ca_file_stops_the_worker_at_start_naming_the_setting(app, tmp_path, setting):
    worker = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "--pool", "solo"],
        env=subprocess_env(app, **{setting: tmp_path / "missing.pem"}), cwd=ROOT,
        capture_output=True, text=True, timeout=120)
    assert worker.returncode != 0
    assert f"NEWSLETTER_{setting}: no such file: {tmp_path / 'missing.pem'}" in worker.stderr
