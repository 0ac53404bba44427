"""What werkzeug's test client cannot send, sent over a raw socket to the app under
gunicorn: Host headers of raw bytes and broken IDNA labels, no Host or two, absolute
request targets, raw bytes in paths, header floods and odd framing. No answer is a
5xx, no traceback reaches the log, and the log lines (the app's and gunicorn's access
log) carry no reader key."""

from __future__ import annotations

import re
import socket
import subprocess
import sys

import pytest

from newsletter.devstack import free_port, wait_for_port
from newsletter.extensions import db
from newsletter.models import Subscriber, SubscriberStatus
from tests.helpers import ROOT, subprocess_env

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def request(target: bytes = b"/subscribe", host: bytes | None = b"localhost",
            headers: bytes = b"", body: bytes = b"", method: bytes = b"GET") -> bytes:
    lines = method + b" " + target + b" HTTP/1.1\r\n"
    if host is not None:
        lines += b"Host: " + host + b"\r\n"
    if body and b"Content-Length" not in headers and b"Transfer-Encoding" not in headers:
        headers += b"Content-Length: %d\r\n" % len(body)
    return lines + headers + b"Connection: close\r\n\r\n" + body


JSON = b"Content-Type: application/json\r\n"
RAW_REQUESTS = {
    "over-long label": request(host=b"a" * 64 + b".example"),
    "over-long name": request(host=b"a." * 200),
    "empty labels": request(host=b"a..b"),
    "UTF-8 host": request(host="bücher.example".encode()),
    "latin-1 host": request(host=b"\xff\xfe.example"),
    "broken A-label": request(host=b"xn--zz.example"),
    "empty A-label": request(host=b"xn--"),
    "A-label on the archive": request(b"/archive", host=b"xn--zz.example"),
    "A-label on the API": request(b"/api/v1/topics", host=b"xn--"),
    "bad port": request(host=b"localhost:99999"),
    "port of letters": request(host=b"localhost:http"),
    "broken IPv6": request(host=b"[::zz]"),
    "userinfo": request(host=b"user@evil.example"),
    "space": request(host=b"a b.example"),
    "empty host": request(host=b""),
    "no host": request(host=None),
    "two hosts": request(headers=b"Host: evil.example\r\n"),
    "absolute target": request(b"http://evil.example/subscribe"),
    "absolute target, broken host": request(b"http://xn--zz/subscribe"),
    "raw bytes in the path": request(b"/unsubscribe/\xff\xfe\xc0\xaf"),
    "overlong UTF-8 in the path": request(b"/archive/%c0%af%e0%80%af"),
    "raw bytes in the query": request(b"/subscribe?embed=\xed\xa0\x80"),
    "150 headers": request(headers=b"".join(b"X-%d: x\r\n" % n for n in range(150))),
    "a 10 KB header": request(headers=b"X-Big: " + b"x" * 10_000 + b"\r\n"),
    "folded header": request(headers=b"X-Folded: a\r\n continued\r\n"),
    "header name with a space": request(headers=b"Bad Name: x\r\n"),
    "forwarded host ignored": request(headers=b"X-Forwarded-Host: xn--zz\r\n"),
    "letters as length": request(method=b"POST", headers=b"Content-Length: abc\r\n"),
    "negative length": request(method=b"POST", headers=b"Content-Length: -1\r\n"),
    "two lengths": request(method=b"POST", body=b"email=a",
                           headers=b"Content-Length: 7\r\nContent-Length: 9\r\n"),
    "length and chunked": request(method=b"POST", body=b"0\r\n\r\n",
                                  headers=b"Content-Length: 5\r\n"
                                          b"Transfer-Encoding: chunked\r\n"),
    "bad chunk size": request(method=b"POST", body=b"zz\r\nabc\r\n0\r\n\r\n",
                              headers=b"Transfer-Encoding: chunked\r\n"),
    "surrogate bytes in JSON": request(b"/api/v1/subscriptions", method=b"POST",
                                       body=b'{"email": "\xed\xa0\x80@example.com"}',
                                       headers=JSON),
    "lone surrogate in JSON": request(b"/api/v1/subscriptions", method=b"POST",
                                      body=b'{"email": "a@example.com", "name": "\\udc00"}',
                                      headers=JSON),
}


def exchange(port: int, raw: bytes) -> bytes:
    """The server's answer to ``raw`` (b"" if it closed the connection unanswered)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(raw)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
        return answer


@pytest.fixture
def gunicorn(app, clean_state, tmp_path):
    """The app under gunicorn (one sync worker) with its access log on; yields the
    port and the file that holds everything it logged."""
    port, log = free_port(), tmp_path / "gunicorn.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--workers", "1", "--bind", f"127.0.0.1:{port}",
             "--access-logfile", "-", "newsletter:create_app()"],
            env=subprocess_env(app), cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, timeout=60)
        yield port, log
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_raw_requests_get_a_4xx_never_a_5xx_and_the_log_holds_no_key(app, gunicorn):
    port, log = gunicorn
    with app.app_context():
        reader = Subscriber(email="kept@example.com", email_normalized="kept@example.com",
                            status=SubscriberStatus.ACTIVE)
        db.session.add(reader)
        db.session.commit()
        key = reader.unsubscribe_key
    statuses = {}
    for name, raw in {**RAW_REQUESTS,
                      "a key in a refused path": request(f"/unsubscribe/{key}/nope".encode()),
                      "a key, a bad host": request(f"/unsubscribe/{key}".encode(), b"xn--")
                      }.items():
        answer = exchange(port, raw)
        status = re.match(rb"HTTP/1\.[01] (\d{3}) ", answer)
        assert status, f"{name}: no HTTP answer: {answer[:200]!r}"
        statuses[name] = int(status[1])
    print(statuses)
    assert not {name: status for name, status in statuses.items() if status >= 500}
    assert statuses["broken A-label"] == statuses["over-long label"] == 400
    assert statuses["a key in a refused path"] == 404
    text = log.read_text(errors="replace")
    assert "Traceback" not in text and "Error handling request" not in text, text[-3000:]
    assert key not in text
    # The app's refusals in the one format, the key replaced, in gunicorn's log too.
    assert re.search(rf"^{STAMP} WARNING newsletter\.web\.errors: GET '/unsubscribe/"
                     r"\[redacted\]/nope' answered 404", text, re.M), text[-3000:]
    assert re.search(r'"GET /unsubscribe/\[redacted\]/nope HTTP/1.1" 404', text), text[-3000:]
