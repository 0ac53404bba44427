"""PIPELINING (RFC 2920): MAIL, RCPT and DATA go in one write when the relay offers it,
and each reply is mapped to its command as if they had gone one by one.

Two real servers: aiosmtpd, which does not advertise PIPELINING (the plain path) and
one that does (the same outcomes); and a small scripted SMTP server on a socket, which
answers each command from a script, can insist that the three commands arrive before
it answers any (a client that waited for each reply would never get one), and can
drop the connection at any point.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import deque

import pytest
from aiosmtpd.controller import Controller

from newsletter.devstack import free_port
from newsletter.mail.transport import Outcome, SMTPTransport
from tests.helpers import ScriptedHandler

MESSAGE = b"From: news@example.com\r\nTo: someone\r\nSubject: hi\r\n\r\nbody\r\n"
NEWS = "news@example.com"


def transport_for(port: int) -> SMTPTransport:
    return SMTPTransport({"SMTP_HOST": "127.0.0.1", "SMTP_PORT": port, "SMTP_SECURITY": "none",
                          "SMTP_USERNAME": "", "SMTP_PASSWORD": "", "SMTP_TIMEOUT": 5})


class PipeliningHandler(ScriptedHandler):
    """aiosmtpd's handler hook adds PIPELINING to its EHLO answer (aiosmtpd reads
    pipelined commands line by line, as any server must)."""

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]


@pytest.fixture(params=[False, True], ids=["plain", "pipelining"])
def aiosmtpd_server(request):
    handler = PipeliningHandler() if request.param else ScriptedHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, request.param
    controller.stop()


def test_refusals_map_to_the_same_outcomes_with_and_without_pipelining(aiosmtpd_server):
    server, pipelining = aiosmtpd_server
    server.handler.rcpt_replies = {
        "gone@example.com": "550 5.1.1 No such user here",
        "busy@example.com": "451 4.2.0 Mailbox busy",
        "listed@example.com": "550 5.7.1 Client host blocked using zen.spamhaus.org",
    }
    transport = transport_for(server.port)
    results = {address: transport.deliver(NEWS, address, MESSAGE)
               for address in ["first@example.com", *server.handler.rcpt_replies,
                               "last@example.com"]}
    assert transport._connection.has_extn("pipelining") is pipelining
    assert {address: (r.outcome, r.code, r.enhanced) for address, r in results.items()} == {
        "first@example.com": (Outcome.SENT, 250, None),
        "gone@example.com": (Outcome.BOUNCED, 550, "5.1.1"),
        "busy@example.com": (Outcome.DEFERRED, 451, "4.2.0"),
        "listed@example.com": (Outcome.FAILED, 550, "5.7.1"),
        "last@example.com": (Outcome.SENT, 250, None),
    }
    # One message each to the two accepted readers, none to the refused ones, all on
    # the one connection (each refusal left it reset, not half done).
    assert [rcpt for _, rcpt, _, _ in server.handler.received] == [
        ["first@example.com"], ["last@example.com"]]
    assert all(content == MESSAGE for *_, content in server.handler.received)
    transport.close()


class ScriptedSMTP:
    """A real SMTP server on a socket answering from scripts: ``replies[command]`` is a
    queue of replies for MAIL, RCPT, DATA and MESSAGE (after the final dot), each
    ``"CODE text"`` or ``"drop"`` (close without answering); commands without a
    scripted reply are accepted. With ``pipelining`` it advertises PIPELINING and reads
    MAIL, RCPT and DATA all before answering any of them."""

    def __init__(self, pipelining: bool = True):
        self.pipelining = pipelining
        self.replies: dict[str, deque[str]] = {
            name: deque() for name in ("MAIL", "RCPT", "DATA", "MESSAGE")}
        self.messages: list[tuple[str, str, bytes]] = []  # (MAIL arg, RCPT arg, content)
        self.commands: list[str] = []  # every command line, in order, across connections
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.listener.close()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with connection, contextlib.suppress(OSError):  # the client went away
                self._session(connection, connection.makefile("rb"))

    def _reply(self, command: str, default: str) -> str:
        queue = self.replies[command]
        return queue.popleft() if queue else default

    def _session(self, connection: socket.socket, reader) -> None:
        def send(line: str) -> None:
            connection.sendall(line.encode() + b"\r\n")

        send("220 scripted ESMTP")
        mail = rcpt = None
        pending: list[str] = []  # pipelined commands read, not yet answered
        while True:
            line = reader.readline()
            if not line:
                return
            command = line.decode().rstrip("\r\n")
            self.commands.append(command)
            verb = command[:4].upper()
            if verb == "EHLO":
                send("250-scripted")
                if self.pipelining:
                    send("250-PIPELINING")
                send("250 8BITMIME")
                continue
            if verb in ("MAIL", "RCPT", "DATA") and self.pipelining:
                pending.append(command)
                if verb != "DATA":
                    continue  # a pipelining client sends DATA before it waits for replies
            else:
                pending = [command]
            for queued in pending:
                verb = queued[:4].upper()
                if verb == "MAIL":
                    reply = self._reply("MAIL", "250 2.1.0 Ok")
                    mail = queued[10:] if reply.startswith("250") else None
                elif verb == "RCPT":
                    reply = self._reply("RCPT", "250 2.1.5 Ok" if mail else "503 5.5.1 MAIL first")
                    rcpt = queued[8:] if reply.startswith("250") else rcpt
                elif verb == "DATA":
                    reply = self._reply("DATA", "354 End data with <CR><LF>.<CR><LF>"
                                        if rcpt else "554 5.5.1 No valid recipients")
                elif verb == "RSET":
                    reply, mail, rcpt = "250 2.0.0 Ok", None, None
                elif verb == "QUIT":
                    send("221 2.0.0 Bye")
                    return
                else:
                    reply = "250 Ok"
                if reply == "drop":
                    return
                send(reply)
                if reply.startswith("421"):
                    return
                if verb == "DATA" and reply.startswith("354"):
                    content = self._content(reader)
                    reply = self._reply("MESSAGE", "250 2.0.0 Ok: queued")
                    if reply == "drop":
                        return
                    if reply.startswith("250") and rcpt:
                        self.messages.append((mail, rcpt, content))
                    send(reply)
                    mail = rcpt = None
            pending = []

    @staticmethod
    def _content(reader) -> bytes:
        lines = []
        while (line := reader.readline()) not in (b".\r\n", b""):
            lines.append(line[1:] if line.startswith(b"..") else line)
        return b"".join(lines)


@pytest.fixture
def scripted():
    server = ScriptedSMTP()
    yield server
    server.close()


def test_the_three_commands_go_in_one_write(scripted):
    # The server answers nothing until it has MAIL, RCPT and DATA: a client waiting for
    # the MAIL reply would time out instead of delivering.
    transport = transport_for(scripted.port)
    for n in range(3):
        result = transport.deliver(NEWS, f"reader{n}@example.com", MESSAGE)
        assert result.outcome is Outcome.SENT, result
    assert [rcpt for _, rcpt, _ in scripted.messages] == [
        f"<reader{n}@example.com>" for n in range(3)]
    assert all(content == MESSAGE for *_, content in scripted.messages)
    assert scripted.connections == 1
    transport.close()


def test_a_refused_mail_from_is_the_result_and_the_rest_is_read_in_step(scripted):
    scripted.replies["MAIL"].append("550 5.7.1 Sender blocked by policy")
    transport = transport_for(scripted.port)
    refused = transport.deliver(NEWS, "reader@example.com", MESSAGE)
    # The server answered RCPT and DATA 503/554 (no MAIL): neither is taken for the result.
    assert (refused.outcome, refused.code, refused.enhanced) == (Outcome.FAILED, 550, "5.7.1")
    after = transport.deliver(NEWS, "next@example.com", MESSAGE)
    assert after.outcome is Outcome.SENT, after
    assert [rcpt for _, rcpt, _ in scripted.messages] == ["<next@example.com>"]
    assert "RSET" in map(str.upper, scripted.commands) and scripted.connections == 1
    transport.close()


@pytest.mark.parametrize(("reply", "outcome"), [
    ("550 5.1.1 No such user here", Outcome.BOUNCED),
    ("451 4.2.0 Mailbox busy", Outcome.DEFERRED),
    ("452 4.5.3 Too many recipients", Outcome.DEFERRED),
    ("553 5.1.3 Bad recipient address syntax", Outcome.BOUNCED),
])
def test_a_refused_recipient_is_that_readers_result_only(scripted, reply, outcome):
    scripted.replies["RCPT"].append(reply)
    transport = transport_for(scripted.port)
    refused = transport.deliver(NEWS, "refused@example.com", MESSAGE)
    assert (refused.outcome, refused.code) == (outcome, int(reply[:3])), refused
    assert refused.detail == reply
    assert transport.deliver(NEWS, "next@example.com", MESSAGE).outcome is Outcome.SENT
    assert [rcpt for _, rcpt, _ in scripted.messages] == ["<next@example.com>"]
    transport.close()


def test_data_accepted_after_a_refused_recipient_gets_an_empty_message(scripted):
    # RFC 2920 3.1: a server may answer 354 although no recipient was accepted; the
    # client then ends the empty message with a lone dot, and delivers nothing.
    scripted.replies["RCPT"].append("550 5.1.1 No such user here")
    scripted.replies["DATA"].append("354 go ahead")
    scripted.replies["MESSAGE"].append("554 5.5.1 No valid recipients")
    transport = transport_for(scripted.port)
    refused = transport.deliver(NEWS, "gone@example.com", MESSAGE)
    assert (refused.outcome, refused.code) == (Outcome.BOUNCED, 550)
    assert transport.deliver(NEWS, "next@example.com", MESSAGE).outcome is Outcome.SENT
    assert [rcpt for _, rcpt, _ in scripted.messages] == ["<next@example.com>"]
    assert scripted.connections == 1
    transport.close()


def test_a_421_mid_pipeline_is_the_domains_signal_and_the_next_reader_reconnects(scripted):
    scripted.replies["RCPT"].append("421 4.7.0 Too many connections from you, closing")
    transport = transport_for(scripted.port)
    closing = transport.deliver(NEWS, "reader@example.org", MESSAGE)
    assert (closing.outcome, closing.code, closing.enhanced) == (Outcome.DEFERRED, 421, "4.7.0")
    assert transport._connection is None  # the server closed it: so do we
    assert transport.deliver(NEWS, "next@example.org", MESSAGE).outcome is Outcome.SENT
    assert scripted.connections == 2
    assert [rcpt for _, rcpt, _ in scripted.messages] == ["<next@example.org>"]
    transport.close()


def test_a_421_to_mail_on_a_reused_connection_is_retried_on_a_fresh_one(scripted):
    transport = transport_for(scripted.port)
    assert transport.deliver(NEWS, "first@example.com", MESSAGE).outcome is Outcome.SENT
    scripted.replies["MAIL"].append("421 4.4.2 Idle timeout, closing")
    again = transport.deliver(NEWS, "second@example.com", MESSAGE)
    assert again.outcome is Outcome.SENT, again
    assert scripted.connections == 2
    assert [rcpt for _, rcpt, _ in scripted.messages] == [
        "<first@example.com>", "<second@example.com>"]
    transport.close()


@pytest.mark.parametrize("command", ["MAIL", "RCPT", "DATA"])
def test_a_drop_before_the_message_went_is_retried_once_on_a_fresh_connection(scripted,
                                                                              command):
    transport = transport_for(scripted.port)
    assert transport.deliver(NEWS, "first@example.com", MESSAGE).outcome is Outcome.SENT
    scripted.replies[command].append("drop")
    again = transport.deliver(NEWS, "second@example.com", MESSAGE)
    assert again.outcome is Outcome.SENT, again  # nothing had gone: sent once, not twice
    assert [rcpt for _, rcpt, _ in scripted.messages] == [
        "<first@example.com>", "<second@example.com>"]
    transport.close()


def test_a_drop_after_the_message_went_is_unknown_and_not_resent(scripted):
    scripted.replies["MESSAGE"].append("drop")
    transport = transport_for(scripted.port)
    lost = transport.deliver(NEWS, "reader@example.com", MESSAGE)
    assert lost.outcome is Outcome.UNKNOWN, lost
    assert scripted.connections == 1  # no second attempt
    transport.close()


def test_a_message_refused_after_its_content_is_that_readers_failure(scripted):
    scripted.replies["MESSAGE"].append("554 5.7.1 Message rejected as spam")
    transport = transport_for(scripted.port)
    refused = transport.deliver(NEWS, "reader@example.com", MESSAGE)
    assert (refused.outcome, refused.code) == (Outcome.FAILED, 554)
    assert transport.deliver(NEWS, "next@example.com", MESSAGE).outcome is Outcome.SENT
    transport.close()


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "plain"])
@pytest.mark.parametrize(("data", "dot_free"), [
    (b"Subject: dots\r\n\r\n.starts with a dot\r\n..two\r\nend", False),
    (b".first line\r\nsecond\r\n", False),
    (MESSAGE, True),
])
def test_the_content_arrives_as_given_dot_stuffed_on_the_wire(data, dot_free, pipelining):
    server = ScriptedSMTP(pipelining=pipelining)
    try:
        transport = transport_for(server.port)
        result = transport.deliver(NEWS, "reader@example.com", data, dot_free=dot_free)
        assert result.outcome is Outcome.SENT, result
        assert server.messages[0][2].rstrip(b"\r\n") == data.rstrip(b"\r\n")
        transport.close()
    finally:
        server.close()


def test_an_smtputf8_transaction_is_pipelined_and_the_next_one_is_plain_ascii():
    handler = PipeliningHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(),
                            enable_SMTPUTF8=True)
    controller.start()
    try:
        transport = transport_for(controller.port)
        data = "To: José <josé@xn--bcher-kva.example>\r\nSubject: hi\r\n\r\nbody\r\n".encode()
        result = transport.deliver(NEWS, "josé@bücher.example", data)
        assert result.outcome is Outcome.SENT, result
        assert transport._connection.has_extn("pipelining")
        _, rcpt_tos, options, content = handler.received[0]
        assert rcpt_tos == ["josé@xn--bcher-kva.example"] and content == data
        assert "SMTPUTF8" in options and "BODY=8BITMIME" in options
        assert transport.deliver(NEWS, "ok@example.com", MESSAGE).outcome is Outcome.SENT
        assert handler.received[1][1:3] == (["ok@example.com"], [])
        transport.close()
    finally:
        controller.stop()
