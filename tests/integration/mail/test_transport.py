"""The SMTP transport against real servers: international addresses, isolation, codes.

Each server here is a real aiosmtpd (or, for a relay that turns us away at the
greeting, a real socket server): nothing in smtplib is patched.
"""

from __future__ import annotations

import socket
import threading

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from newsletter.devstack import free_port
from newsletter.mail.transport import NO_SMTPUTF8, Outcome, SMTPTransport
from tests.helpers import ScriptedHandler

MESSAGE = b"From: news@example.com\r\nTo: someone\r\nSubject: hi\r\n\r\nbody\r\n"


def transport_for(port: int, **settings) -> SMTPTransport:
    return SMTPTransport({"SMTP_HOST": "127.0.0.1", "SMTP_PORT": port, "SMTP_SECURITY": "none",
                          "SMTP_USERNAME": "", "SMTP_PASSWORD": "", "SMTP_TIMEOUT": 5,
                          **settings})


@pytest.fixture
def server(request):
    """An aiosmtpd server; parametrize indirectly with enable_SMTPUTF8 True/False."""
    handler = ScriptedHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(),
                            enable_SMTPUTF8=getattr(request, "param", False))
    controller.start()
    yield controller
    controller.stop()


@pytest.mark.parametrize("server", [True, False], indirect=True, ids=["smtputf8", "ascii-only"])
def test_idn_domain_goes_on_the_wire_in_ascii(server):
    transport = transport_for(server.port)
    result = transport.deliver("news@example.com", "reader@bücher.example", MESSAGE)
    assert result.outcome is Outcome.SENT, result
    assert server.handler.received[0][1] == ["reader@xn--bcher-kva.example"]
    assert "SMTPUTF8" not in server.handler.received[0][2]  # not needed for an IDN domain
    transport.close()


def test_non_ascii_local_part_uses_smtputf8_when_offered():
    handler = ScriptedHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(),
                            enable_SMTPUTF8=True)
    controller.start()
    try:
        transport = transport_for(controller.port)
        data = "To: José <josé@xn--bcher-kva.example>\r\nSubject: hi\r\n\r\nbody\r\n".encode()
        result = transport.deliver("news@example.com", "josé@bücher.example", data)
        assert result.outcome is Outcome.SENT, result
        mail_from, rcpt_tos, options, content = handler.received[0]
        assert rcpt_tos == ["josé@xn--bcher-kva.example"]
        assert "SMTPUTF8" in options and "BODY=8BITMIME" in options
        assert content.startswith("To: José <josé@xn--bcher-kva.example>".encode())
        # The next, plain transaction on the same connection is a normal ASCII one.
        assert transport.deliver("news@example.com", "ok@example.com", MESSAGE).outcome \
            is Outcome.SENT
        assert handler.received[1][1:3] == (["ok@example.com"], [])
        transport.close()
    finally:
        controller.stop()


def test_non_ascii_local_part_without_smtputf8_fails_that_recipient_only(server):
    transport = transport_for(server.port)
    failed = transport.deliver("news@example.com", "josé@bücher.example", MESSAGE)
    assert failed.outcome is Outcome.FAILED and failed.detail == NO_SMTPUTF8
    following = transport.deliver("news@example.com", "next@example.com", MESSAGE)
    assert following.outcome is Outcome.SENT, following
    assert [rcpt for _, rcpt, _, _ in server.handler.received] == [["next@example.com"]]
    transport.close()


@pytest.mark.parametrize("server", [True], indirect=True)
def test_any_exception_is_one_recipients_failure_and_the_connection_is_reset(server):
    transport = transport_for(server.port)
    assert transport.deliver("news@example.com", "first@example.com", MESSAGE).outcome \
        is Outcome.SENT
    # A lone surrogate passes every check above smtplib and raises UnicodeEncodeError at
    # RCPT, after MAIL FROM was accepted: the transaction is left half done.
    odd = transport.deliver("news@example.com", "\udcff@example.com", MESSAGE)
    assert odd.outcome is Outcome.FAILED and "UnicodeEncodeError" in odd.detail
    after = transport.deliver("news@example.com", "after@example.com", MESSAGE)
    assert after.outcome is Outcome.SENT, after  # not a 503 "nested MAIL command"
    assert [rcpt for _, rcpt, _, _ in server.handler.received] == [
        ["first@example.com"], ["after@example.com"]]
    transport.close()


def test_refusals_carry_their_codes_and_leave_the_connection_usable(server):
    server.handler.rcpt_replies = {
        "gone@example.com": "550 5.1.1 No such user here",
        "bare@example.com": "550 Mailbox unavailable",
        "listed@example.com": "550 5.7.1 Client host blocked using zen.spamhaus.org",
        "grey@example.com": "451 4.7.1 Greylisted, try again later",
    }
    transport = transport_for(server.port)
    results = {address: transport.deliver("news@example.com", address, MESSAGE)
               for address in [*server.handler.rcpt_replies, "fine@example.com"]}
    summary = {address: (r.outcome, r.code, r.enhanced) for address, r in results.items()}
    assert summary == {
        "gone@example.com": (Outcome.BOUNCED, 550, "5.1.1"),
        "bare@example.com": (Outcome.BOUNCED, 550, None),
        "listed@example.com": (Outcome.FAILED, 550, "5.7.1"),
        "grey@example.com": (Outcome.DEFERRED, 451, "4.7.1"),
        "fine@example.com": (Outcome.SENT, 250, None),
    }
    assert results["listed@example.com"].detail.startswith("550 5.7.1 Client host blocked")
    assert [rcpt for _, rcpt, _, _ in server.handler.received] == [["fine@example.com"]]
    transport.close()


def _one_shot_server(greeting: bytes | None) -> tuple[int, threading.Thread, socket.socket]:
    """Accepts connections and answers each with ``greeting`` (None: closes at once)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def serve():
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                if greeting:
                    connection.sendall(greeting)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread, listener


@pytest.mark.parametrize(("greeting", "code"), [
    (b"421 4.3.2 Service not available, closing transmission channel\r\n", 421),
    (b"554 5.7.1 No SMTP service here\r\n", 554),
    (None, None),  # connection reset before the greeting
])
def test_a_relay_that_turns_us_away_at_the_greeting_is_unreachable(greeting, code):
    port, thread, listener = _one_shot_server(greeting)
    try:
        result = transport_for(port).deliver("news@example.com", "reader@example.com", MESSAGE)
    finally:
        listener.close()
    assert result.outcome is Outcome.UNREACHABLE, result
    assert result.code == code
    assert result.detail.startswith("relay unreachable")


def test_a_refused_connection_is_unreachable():
    result = transport_for(free_port()).deliver("news@example.com", "r@example.com", MESSAGE)
    assert result.outcome is Outcome.UNREACHABLE and result.code is None


def test_refused_login_is_unreachable():
    def authenticator(server, session, envelope, mechanism, auth_data):
        return AuthResult(success=False, handled=False)

    controller = Controller(ScriptedHandler(), hostname="127.0.0.1", port=free_port(),
                            authenticator=authenticator, auth_require_tls=False)
    controller.start()
    try:
        transport = transport_for(controller.port, SMTP_USERNAME="news", SMTP_PASSWORD="wrong")
        result = transport.deliver("news@example.com", "reader@example.com", MESSAGE)
    finally:
        controller.stop()
    assert result.outcome is Outcome.UNREACHABLE, result
    assert (result.code, result.enhanced) == (535, "5.7.8")


def test_a_failed_tls_handshake_is_unreachable(server):
    transport = transport_for(server.port, SMTP_SECURITY="ssl")  # the server speaks plain SMTP
    result = transport.deliver("news@example.com", "reader@example.com", MESSAGE)
    assert result.outcome is Outcome.UNREACHABLE and "SSL" in result.detail, result
    assert server.handler.received == []


def test_starttls_a_relay_does_not_offer_is_unreachable(server):
    transport = transport_for(server.port, SMTP_SECURITY="starttls")
    result = transport.deliver("news@example.com", "reader@example.com", MESSAGE)
    assert result.outcome is Outcome.UNREACHABLE and "STARTTLS" in result.detail
    assert server.handler.received == []


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_a_relay_requiring_login_is_unreachable_not_a_bounce():
    def authenticator(server, session, envelope, mechanism, auth_data):
        return AuthResult(success=True)

    controller = Controller(ScriptedHandler(), hostname="127.0.0.1", port=free_port(),
                            authenticator=authenticator, auth_required=True,
                            auth_require_tls=False)
    controller.start()
    try:
        result = transport_for(controller.port).deliver("news@example.com", "r@example.com",
                                                        MESSAGE)
    finally:
        controller.stop()
    assert result.outcome is Outcome.UNREACHABLE, result
    assert result.code == 530


@pytest.mark.parametrize("data", [
    MESSAGE,  # written as it is
    b"Subject: dots\r\n\r\n.starts with a dot\r\n..two\r\nend",  # dot-stuffed by smtplib
    b"Subject: bare\n\nline feeds only\n",  # smtplib's path, which sends them unchanged
], ids=["plain", "dot-lines", "bare-lf"])
@pytest.mark.parametrize("sender", ["news@example.com", "News <news@example.com>"],
                         ids=["plain-address", "address-to-parse"])
def test_every_message_arrives_as_it_was_given(server, data, sender):
    transport = transport_for(server.port)
    result = transport.deliver(sender, "reader@example.com", data)
    assert result.outcome is Outcome.SENT, result
    mail_from, rcpt_tos, _, content = server.handler.received[0]
    assert (mail_from, rcpt_tos) == ("news@example.com", ["reader@example.com"])
    assert content.rstrip(b"\r\n") == data.rstrip(b"\r\n")  # dots unstuffed by the server
    transport.close()
