"""Helpers that several test modules share and that put nothing in the database
(those are in tests/factories.py): configuration, pages and mails, waiting, processes.

Test modules import from here and from tests.factories, never from each other.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import ssl
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SAMPLE = FIXTURES / "us-secretary-of-state-c5-plus-1.txt"  # a scraped article page
SCREENSHOTS = Path(__file__).resolve().parent / "e2e" / "screenshots"

PASSWORD = "correct horse battery"  # every editor the factories make has it
READER = "alice@mail.example.org"  # the reader of the bounce tests

T = TypeVar("T")


# --- waiting ---------------------------------------------------------------------------------

def wait_until(predicate: Callable[[], T], timeout: float = 30, what: str = "the condition",
               interval: float = 0.05) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that.

    For waits on another thread or process (the worker, a server): a deadline, not a
    fixed sleep. ``what`` may be a callable, called on timeout to describe the state."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            described = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:g} s waiting for {described}")
        time.sleep(interval)


def wait_until_sent(app, digest_id: int, timeout: float = 60) -> dict:
    from newsletter.extensions import db
    from newsletter.issues import digests
    from newsletter.models import Digest, DigestStatus

    def sent():
        with app.app_context():
            return db.session.get(Digest, digest_id).status == DigestStatus.SENT

    def progress():
        with app.app_context():
            return f"digest {digest_id} sent: {digests.progress(digest_id)}"

    wait_until(sent, timeout, progress, interval=0.1)
    with app.app_context():
        return digests.progress(digest_id)


def wait_for_idle_ledger(app, digest_id: int, timeout: float = 20) -> dict:
    """Until no row is leased: the batch running at a pause has finished."""
    from newsletter.issues import digests

    def idle():
        with app.app_context():
            counts = digests.progress(digest_id)
        return counts if counts["sending"] == 0 else None

    def busy():
        with app.app_context():
            return f"an idle ledger: {digests.progress(digest_id)}"

    return wait_until(idle, timeout, busy)


def process_subscribe_requests(app) -> int:
    """Decide every recorded subscribe request now, as the worker's task does, for
    tests about what a request leads to rather than about the worker."""
    from newsletter.extensions import db
    from workers.tasks import decide_subscribe_requests

    with app.app_context():
        decided = decide_subscribe_requests(gather_seconds=0)
        db.session.remove()
    return decided


def wait_for_subscribe_requests(app, timeout: float = 30) -> None:
    """Wait until the worker has decided every recorded subscribe request."""
    from sqlalchemy import func, select

    from newsletter.extensions import db
    from newsletter.models import SubscribeRequest

    def left() -> int:
        with app.app_context():
            count = db.session.scalar(select(func.count()).select_from(SubscribeRequest))
            db.session.remove()
        return count

    wait_until(lambda: not left(), timeout,
               lambda: f"the worker to decide {left()} subscribe request(s)")


# --- configuration and processes -------------------------------------------------------------

def app_config(database_url: str, redis_url: str, smtp_port: int, **extra) -> dict:
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key-of-at-least-32-bytes",
        "SUPPRESSION_KEY": "test-suppression-pepper-of-32-bytes-or-more",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": smtp_port,
        "SMTP_TIMEOUT": 10,
        "BASE_URL": "http://localhost",
        "MAIL_FROM": "The Test Daily <news@example.com>",
        "SUBSCRIBE_RATE_LIMIT": "1000 per minute",
        **extra,
    }


def subprocess_env(app, **settings) -> dict[str, str]:
    """Environment for a web, CLI or worker process sharing this test's parts (its
    task queue prefix too, unless ``settings`` names another)."""
    config = app.config
    env = {**os.environ, "NEWSLETTER_DATABASE_URL": config["DATABASE_URL"],
           "NEWSLETTER_REDIS_URL": config["REDIS_URL"],
           "NEWSLETTER_SMTP_HOST": config["SMTP_HOST"],
           "NEWSLETTER_SMTP_PORT": str(config["SMTP_PORT"]),
           "NEWSLETTER_SECRET_KEY": config["SECRET_KEY"],
           "NEWSLETTER_SUPPRESSION_KEY": config["SUPPRESSION_KEY"],
           "NEWSLETTER_BASE_URL": config["BASE_URL"],
           "NEWSLETTER_MAIL_FROM": config["MAIL_FROM"],
           "NEWSLETTER_TASK_QUEUE": config["TASK_QUEUE"]}
    env.update({f"NEWSLETTER_{key}": str(value) for key, value in settings.items()})
    return env


def start_celery_worker(env, concurrency: int = 1, *,
                        bulk_only: bool = False) -> subprocess.Popen:
    """A real `celery worker` process (prefork pool) in a process group of its own."""
    from newsletter import jobs

    queues = ["-Q", jobs.queue_name(env["NEWSLETTER_TASK_QUEUE"], jobs.BULK)] if bulk_only else []
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "--pool",
         "prefork", "--concurrency", str(concurrency), "--loglevel", "WARNING",
         "--hostname", f"w{time.monotonic_ns()}@%h", *queues],
        env=env, cwd=ROOT, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def stop_processes(*workers: subprocess.Popen | None) -> None:
    """SIGTERM to each process group, SIGKILL after 30 s."""
    for worker in workers:
        if worker and worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
    for worker in workers:
        if worker:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(timeout=10)


def send_ledger(app, digest_id: int) -> tuple:
    """The issue, its counts and every (address, row), detached from the session."""
    from sqlalchemy import select

    from newsletter.extensions import db
    from newsletter.issues import digests
    from newsletter.models import Delivery, Digest, Subscriber

    with app.app_context():
        digest = db.session.get(Digest, digest_id)
        db.session.expunge(digest)
        rows = db.session.execute(select(Subscriber.email, Delivery).join(
            Delivery, Delivery.subscriber_id == Subscriber.id)).all()
        for _, delivery in rows:
            db.session.expunge(delivery)
        return digest, digests.progress(digest_id), rows


def sweep_like_beat_until_sent(app, twin, digest_id: int, timeout: float) -> int:
    """Sweep as often as beat does until the issue is sent; returns the rows taken back.
    ``twin``: an app configured like the workers (their queue and settings)."""
    from sqlalchemy.exc import OperationalError

    from newsletter import jobs
    from newsletter.db import unit_of_work
    from newsletter.extensions import db
    from newsletter.issues import digests
    from newsletter.models import Digest, DigestStatus

    every = jobs.job(jobs.SWEEP_DELIVERIES).beat.every
    released, swept_at = 0, -every

    def swept_and_sent():
        nonlocal released, swept_at
        with twin.app_context():
            if time.monotonic() - swept_at >= every:
                swept_at = time.monotonic()
                try:
                    for candidate, status in digests.sweep_candidates():
                        with unit_of_work():
                            released += digests.sweep_issue(candidate, status).released
                except OperationalError:
                    return False  # the database is down: beat's run fails, the next one sweeps
            try:
                return db.session.get(Digest, digest_id).status == DigestStatus.SENT
            except OperationalError:
                db.session.rollback()
                return False

    wait_until(swept_and_sent, timeout, lambda: f"sent: {send_ledger(app, digest_id)[1]}",
               interval=0.2)
    return released


def wait_for_claimed_rows(app, digest_id: int, rows: int) -> None:
    """Until the workers hold at least ``rows`` claimed rows: a signal now lands mid-batch."""
    wait_until(lambda: send_ledger(app, digest_id)[1]["sending"] >= rows, 30,
               f"{rows} claimed rows", interval=0.01)


def received_by(handler: RecordingSMTPHandler) -> Counter:
    return Counter(message["To"].addresses[0].addr_spec for message in handler.messages)


def run(*command: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, **kwargs)


def start_process(command: list[str], env) -> subprocess.Popen:
    """A server or worker in its own process group, output discarded (stop_processes)."""
    return subprocess.Popen(command, env=env, cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# --- timing ----------------------------------------------------------------------------------

def best_threshold_accuracy(first: list[float], second: list[float]) -> float:
    """The accuracy of the best classifier 'latency above (or below) t means first',
    on equal-sized samples (0.5 is chance; 1.0 separates them perfectly)."""
    assert len(first) == len(second)
    labelled = sorted([(value, 1) for value in first] + [(value, 0) for value in second])
    total, best = len(labelled), 0.5
    firsts_below = seconds_below = 0
    for index, (value, label) in enumerate(labelled):
        firsts_below += label
        seconds_below += 1 - label
        if index + 1 < total and labelled[index + 1][0] == value:
            continue  # a threshold cannot split equal values
        # "below t is second, above t is first", and the mirror classifier.
        correct = seconds_below + (len(first) - firsts_below)
        best = max(best, correct / total, (total - correct) / total)
    return best


# --- pages and mails -------------------------------------------------------------------------

CSRF_PATTERN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token_from(client, path: str) -> str:
    page = client.get(path)
    match = CSRF_PATTERN.search(page.get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def link_from(message: EmailMessage, path_prefix: str) -> str:
    text = message.get_body(("plain",)).get_content()
    match = re.search(r"https?://\S+" + re.escape(path_prefix) + r"[^\s]+", text)
    assert match, f"no {path_prefix} link in:\n{text}"
    return match.group(0)


def login(client, email="editor@example.com", password=PASSWORD, next_path=""):
    token = csrf_token_from(client, "/admin/login")
    return client.post(f"/admin/login{next_path}",
                       data={"email": email, "password": password, "csrf_token": token})


def example_path(rule) -> str:
    """A concrete URL for a rule: ids become 1, any(a, b) becomes a."""
    path = re.sub(r"<any\(([^,)]+)[^>]*>", r"\1", rule.rule)
    return re.sub(r"<[^>]+>", "1", path)


def subscribe_by_form(client, email, name=""):
    token = csrf_token_from(client, "/subscribe")
    return client.post("/subscribe", data={"email": email, "name": name, "csrf_token": token},
                       headers={"User-Agent": "pytest-browser/1.0"})


def upload(client, data: bytes, consent: str = ""):
    import io

    token = csrf_token_from(client, "/admin/subscribers/import")
    return client.post("/admin/subscribers/import", content_type="multipart/form-data",
                       data={"csrf_token": token, "consent": consent, "action": "check",
                             "file": (io.BytesIO(data), "list.csv")})


def finished_job_page(client, response) -> str:
    """Follow an import job's page (it refreshes itself while the worker runs)."""
    assert response.status_code == 302, response.status_code
    location = response.headers["Location"]

    def finished():
        body = client.get(location).get_data(as_text=True)
        return body if 'http-equiv="refresh"' not in body else None

    return wait_until(finished, timeout=30, what="the import job to finish", interval=0.1)


# --- reading the database --------------------------------------------------------------------

def subscriber(app, email):
    from sqlalchemy import select

    from newsletter.extensions import db
    from newsletter.models import Subscriber

    with app.app_context():
        found = db.session.scalar(select(Subscriber).where(Subscriber.email_normalized == email))
        assert found is not None
        db.session.expunge(found)
        return found


def status_of(app, email):
    """A reader's status, by address."""
    from sqlalchemy import select

    from newsletter.extensions import db
    from newsletter.models import Subscriber

    with app.app_context():
        return db.session.scalar(
            select(Subscriber.status).where(Subscriber.email_normalized == email))


def audit_rows(app, **where) -> list:
    from sqlalchemy import select

    from newsletter.extensions import db
    from newsletter.models import AuditEvent

    with app.app_context():
        query = select(AuditEvent).order_by(AuditEvent.id)
        for key, value in where.items():
            query = query.where(getattr(AuditEvent, key) == value)
        rows = db.session.scalars(query).all()
        db.session.expunge_all()
        return rows


# --- bounce mails ----------------------------------------------------------------------------

BOUNCES = FIXTURES / "bounces"  # realistic bounce and complaint mails, filled in per test
HARD_FORMATS = ("postfix_hard", "exim_hard", "exim_text_only_hard", "exchange_hard",
                "gmail_hard", "yahoo_hard")
SOFT_FORMATS = ("postfix_soft_delayed", "gmail_soft_full")


def bounce_mail(name: str, *, verp: str, recipient: str,
                message_id: str = "<digest-1.1@example.com>") -> bytes:
    local, _, domain = recipient.partition("@")
    text = (BOUNCES / f"{name}.eml").read_text()
    for placeholder, value in (("%%VERP%%", verp), ("%%RCPT%%", recipient),
                               ("%%RCPTDOMAIN%%", domain), ("%%RCPTLOCAL%%", local),
                               ("%%MSGID%%", message_id)):
        text = text.replace(placeholder, value)
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


# --- SMTP servers ----------------------------------------------------------------------------

class RecordingSMTPHandler:
    """Keeps every message; ``replies`` can script answers for fault tests."""

    def __init__(self):
        self.messages: list[EmailMessage] = []
        self.raw: list[bytes] = []  # each message exactly as received
        self.received_at: list[float] = []  # time.monotonic() of each message's DATA
        self.envelopes: list[tuple[str, list[str]]] = []
        self.replies: list[str] = []
        self.rejected_recipients: set[str] = set()
        self.recipient_replies: dict[str, list[str]] = {}  # address -> its next RCPT replies
        self.delay = 0.0  # seconds per message, to make a send last long enough to disturb
        self.pipelining = False  # advertise PIPELINING (RFC 2920) to new connections
        self._changed = threading.Condition()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname  # what aiosmtpd does itself without this hook
        if self.pipelining:  # aiosmtpd reads pipelined commands; it only does not say so
            return [*responses[:-1], "250-PIPELINING", responses[-1]]
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.rejected_recipients:
            return "550 5.1.1 No such user here"
        with self._changed:
            scripted = self.recipient_replies.get(address)
            if scripted:
                return scripted.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        with self._changed:
            if self.replies:
                reply = self.replies.pop(0)
                if not reply.startswith("250"):
                    return reply
            message = BytesParser(policy=policy.default).parsebytes(envelope.original_content)
            self.messages.append(message)
            self.raw.append(envelope.original_content)
            self.received_at.append(time.monotonic())
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            self._changed.notify_all()
        return "250 OK"

    def wait_for(self, count: int, timeout: float = 30) -> list[EmailMessage]:
        with self._changed:
            self._changed.wait_for(lambda: len(self.messages) >= count, timeout=timeout)
            if len(self.messages) < count:
                raise AssertionError(f"expected {count} mail(s), got {len(self.messages)}")
            return list(self.messages)

    def reset(self) -> None:
        with self._changed:
            self.messages.clear()
            self.raw.clear()
            self.received_at.clear()
            self.envelopes.clear()
            self.replies.clear()
            self.rejected_recipients.clear()
            self.recipient_replies.clear()
            self.delay = 0.0
            self.pipelining = False


class ScriptedHandler:
    """Answers RCPT from a table of address -> reply; records what it accepts."""

    def __init__(self, rcpt_replies: dict[str, str] | None = None):
        self.rcpt_replies = rcpt_replies or {}
        self.received: list[tuple[str, list[str], list[str], bytes]] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos),
                              list(envelope.mail_options), envelope.original_content))
        return "250 OK"


@dataclass(frozen=True)
class PrivateCA:
    """A CA of our own (not in any trust store) and a server certificate it signed."""
    ca_cert: Path  # what a client trusts: NEWSLETTER_SMTP_CA_FILE
    cert: Path  # the server's certificate and key
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


def private_ca(directory: Path, ip: str = "127.0.0.1") -> PrivateCA:
    """A private CA and a certificate for ``ip`` (an IP SAN) signed by it, as PEM files."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def certificate(subject: str, public_key, issuer: str, signing_key, *extensions):
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                   .public_key(public_key).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(days=2)))
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(signing_key, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(
        ec.SECP256R1())
    ca = certificate("Test Private CA", ca_key.public_key(), "Test Private CA", ca_key,
                     (x509.BasicConstraints(ca=True, path_length=0), True),
                     (x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                    content_commitment=False, key_encipherment=False,
                                    data_encipherment=False, key_agreement=False,
                                    encipher_only=False, decipher_only=False), True),
                     (x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False))
    server = certificate(ip, server_key.public_key(), "Test Private CA", ca_key,
                         (x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
                          False),
                         (x509.BasicConstraints(ca=False, path_length=None), True),
                         (x509.AuthorityKeyIdentifier.from_issuer_public_key(
                             ca_key.public_key()), False),
                         (x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                          False))
    files = PrivateCA(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    files.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return files


def tiny_png(width: int = 4, height: int = 1, rgb: tuple[int, int, int] = (179, 38, 30)) -> bytes:
    """A real PNG of one colour (for logo uploads), written without an image library."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    row = b"\0" + bytes(rgb) * width
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row * height)) + chunk(b"IEND", b""))


# --- the browser -----------------------------------------------------------------------------

def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


# axe-core's rules for WCAG 2.1 A and AA; a critical or serious violation fails a test.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
AXE_FAILING_IMPACTS = {"critical", "serious"}
AXE_RUN = """tags => axe.run(document, {runOnly: {type: "tag", values: tags},
                                    resultTypes: ["violations"]})"""


def axe_source() -> str:
    """axe.min.js as the axe-playwright-python package (a test dependency) ships it."""
    from importlib.resources import files

    return (files("axe_playwright_python") / "axe.min.js").read_text()


def axe_problems(page, name: str) -> list[str]:
    """The critical and serious WCAG 2.1 A/AA violations axe-core finds in the page as
    it is now, one line each ("NAME: rule (impact): help, at selectors"). axe is
    evaluated through the DevTools protocol, so no page's CSP has to allow it."""
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.evaluate(axe_source())
    results = page.evaluate(AXE_RUN, AXE_TAGS)
    return [f"{name}: {violation['id']} ({violation['impact']}): {violation['help']}, at "
            + ", ".join(str(node["target"]) for node in violation["nodes"][:3])
            for violation in results["violations"]
            if violation["impact"] in AXE_FAILING_IMPACTS]


def log_in(page, base: str, next_path: str) -> None:
    """Log the factories' editor in through the browser's login form."""
    page.goto(f"{base}/admin/login?next={next_path}")
    page.get_by_label("Email").fill("editor@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    # Until the next page has loaded, its deferred scripts may not listen yet: a test
    # typing at once could type into a page that never reacts.
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()


def sweep() -> int:
    """What beat's sweeper does: each issue in a transaction of its own; returns the
    batch tasks published."""
    from newsletter.db import unit_of_work
    from newsletter.issues import digests

    published = 0
    for digest_id, status in digests.sweep_candidates():
        with unit_of_work():
            published += digests.sweep_issue(digest_id, status).published
    return published


def poll_feed(url: str):
    """One feed polled as the poll_feed task does: each article its own transaction,
    then the feed's state. Returns its PollResult."""
    from newsletter.content import feeds
    from newsletter.db import unit_of_work

    poll = feeds.start_poll(url)
    for entry in poll.entries:
        with unit_of_work():
            poll.add(entry)
    with unit_of_work():
        return poll.finish()



# --- webhook receivers -----------------------------------------------------------------------

class WebhookReceiver:
    """A real HTTP server in a thread that receives webhook POSTs.

    ``answer(receiver, request)`` decides each reply and returns (status, body) or
    None to hang until the receiver stops; every request is kept in ``requests`` as
    {"headers", "body", "status"}. Use as a context manager."""

    def __init__(self, answer=None, host: str = "127.0.0.1"):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        receiver = self
        self.answer = answer or (lambda receiver, request: (200, b"ok"))
        self.requests: list[dict] = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = {"headers": dict(self.headers), "body": body, "path": self.path}
                with receiver.lock:
                    receiver.requests.append(request)
                reply = receiver.answer(receiver, request)
                if reply is None:
                    receiver.stopping.wait()
                    return
                status, payload, *extra = reply
                request["status"] = status
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in (extra[0] if extra else {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_port}/hook"

    def __enter__(self) -> WebhookReceiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def events(self) -> list[dict]:
        import json

        with self.lock:
            return [{**json.loads(r["body"]), "_status": r.get("status")}
                    for r in self.requests]


def webhook_signature_valid(secret: str, headers: dict, body: bytes,
                            tolerance: int = 300) -> bool:
    """What a receiver checks: docs/webhooks.md's snippet, written out independently."""
    import hashlib
    import hmac

    fields = dict(part.split("=", 1) for part in headers["Newsletter-Signature"].split(","))
    expected = hmac.new(secret.encode(), fields["t"].encode() + b"." + body,
                        hashlib.sha256).hexdigest()
    return (abs(time.time() - int(fields["t"])) <= tolerance
            and hmac.compare_digest(expected, fields["v1"]))
