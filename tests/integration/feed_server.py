"""Real HTTP(S) servers for feed tests: each records the requests it got.

Feeds are fetched only from public addresses; tests serve them on 127.0.0.2,
which the tests' settings exempt (FEED_ALLOWED_NETWORKS=127.0.0.2/32), and keep
127.0.0.1 as the "internal" address a feed must never reach.
"""

from __future__ import annotations

import contextlib
import ipaddress
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ALLOWED_HOST = "127.0.0.2"
INTERNAL_HOST = "127.0.0.1"
ALLOWED_NETWORKS = (ipaddress.ip_network("127.0.0.2/32"),)


class FeedHandler(BaseHTTPRequestHandler):
    """Answers through ``server.route(handler)``; records each request."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.server.requests.append({"path": self.path, **dict(self.headers)})
        try:
            self.server.route(self)
        except (BrokenPipeError, ConnectionResetError):
            self.server.client_gone.set()

    def reply(self, body: bytes, status: int = 200, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, location: str, status: int = 302) -> None:
        self.reply(b"", status, Location=location)

    def drip(self, interval: float, count: int) -> None:
        """A 200 whose body arrives one byte per ``interval`` seconds."""
        self.send_response(200)
        self.send_header("Content-Length", str(count))
        self.end_headers()
        for _ in range(count):
            self.wfile.write(b"<")
            self.wfile.flush()
            time.sleep(interval)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(host: str, route: Callable[[FeedHandler], None],
          tls: ssl.SSLContext | None = None) -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer((host, 0), FeedHandler)
    server.daemon_threads = True
    server.requests, server.route, server.client_gone = [], route, threading.Event()
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    scheme = "https" if tls else "http"
    server.url = f"{scheme}://{host}:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def self_signed_certificate(directory: Path, ip: str) -> tuple[Path, Path]:
    """A certificate for ``ip`` (an IP SAN) made with the openssl command."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", f"/CN={ip}", "-addext", f"subjectAltName=IP:{ip}",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def rss(*items: tuple[str, str]) -> bytes:
    """An RSS document of (title, link) items; titles are XML-escaped here, a CR as a
    character reference (the XML parser would turn a literal one into LF)."""
    from xml.sax.saxutils import escape

    def text(value: str) -> str:
        return escape(value, {"\r": "&#13;"})

    body = "".join(f"<item><title>{text(title)}</title><link>{text(link)}</link>"
                   f"<guid>{text(link)}</guid></item>" for title, link in items)
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>Desk</title>{body}</channel></rss>").encode()
