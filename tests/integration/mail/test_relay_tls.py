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

from newsletter.devstack import free_port
from newsletter.mail.transport import Outcome, SMTPTransport
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


def relay_warnings(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.name == "newsletter.mail.transport" and record.levelno == logging.WARNING]


def test_without_the_ca_the_relay_is_refused_and_the_log_says_why(starttls_relay, caplog):
    caplog.set_level(logging.WARNING)
    transport = transport_for(starttls_relay.port)
    result = transport.deliver("news@example.com", "reader@example.com", MESSAGE)
    transport.close()
    assert result.outcome is Outcome.UNREACHABLE
    assert "CERTIFICATE_VERIFY_FAILED: unable to get local issuer certificate" in result.detail
    assert "NEWSLETTER_SMTP_CA_FILE" in result.detail  # what to do about it
    # One line for the failed connection, with the reason (not only "unreachable").
    [line] = relay_warnings(caplog)
    assert f"127.0.0.1:{starttls_relay.port}" in line and "CERTIFICATE_VERIFY_FAILED" in line
    assert starttls_relay.handler.messages == []


def test_with_the_ca_file_the_relay_gets_the_mail(starttls_relay, ca, caplog):
    caplog.set_level(logging.WARNING)
    transport = transport_for(starttls_relay.port, ca_file=str(ca.ca_cert))
    for number in range(2):  # the second one on the same, verified connection
        result = transport.deliver("news@example.com", f"reader{number}@example.com", MESSAGE)
        assert result.outcome is Outcome.SENT, result
    transport.close()
    assert [envelope[1] for envelope in starttls_relay.handler.envelopes] == [
        ["reader0@example.com"], ["reader1@example.com"]]
    assert relay_warnings(caplog) == []


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


def test_the_ca_file_does_not_turn_off_the_host_name_check(starttls_relay, ca, caplog):
    """A certificate the CA signed for 127.0.0.1 does not pass for another name."""
    caplog.set_level(logging.WARNING)
    transport = transport_for(starttls_relay.port, host="localhost", ca_file=str(ca.ca_cert))
    result = transport.deliver("news@example.com", "reader@example.com", MESSAGE)
    transport.close()
    assert result.outcome is Outcome.UNREACHABLE
    assert "Hostname mismatch" in result.detail and "NEWSLETTER_SMTP_CA_FILE" not in result.detail
    assert len(relay_warnings(caplog)) == 1
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
    the setting the confirmation is not sent and the worker's log gives the reason; with
    NEWSLETTER_SMTP_CA_FILE the relay gets it."""
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
