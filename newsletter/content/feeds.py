"""Poll RSS/Atom feeds with conditional GET and add their new entries as articles.

A feed URL is written by someone else, and so is every redirect it answers
with. A fetch therefore:
- uses https (http only with FEED_ALLOW_HTTP);
- resolves the host itself, refuses it if any address is not public (loopback,
  private, link-local, CGNAT, reserved, multicast, unspecified, or an IPv6 form
  of one), and connects to an address it checked, so DNS cannot answer
  differently between the check and the connection; TLS still verifies the
  certificate against the host name;
- follows at most MAX_REDIRECTS redirects itself, checking each the same way;
- ends at FEED_FETCH_DEADLINE seconds of wall-clock time in total (connect,
  TLS, headers and body; a server dripping a byte at a time is cut off) and at
  FEED_MAX_BYTES of body.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import ipaddress
import logging
import socket
import ssl
import threading
import time
from calendar import timegm
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit

import feedparser
from flask import current_app

from newsletter import jobs
from newsletter.content.articles import ArticleInput, InvalidArticle, add_article
from newsletter.extensions import db
from newsletter.mail.headers import clean_text
from newsletter.models import ArticleSource, FeedState, utcnow
from newsletter.queue import send_task_now

log = logging.getLogger(__name__)
MAX_REDIRECTS = 5
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
USER_AGENT = "newsletter-feed-poller/1"
_CHUNK = 64 * 1024
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class FetchError(Exception):
    """The feed could not be fetched safely; the message says why."""


@dataclass(frozen=True)
class FetchPolicy:
    allow_http: bool = False
    allowed_networks: tuple[Network, ...] = ()
    deadline: float = 30.0
    max_bytes: int = 10 * 1024 * 1024
    tls_context: ssl.SSLContext | None = None  # None: the system's trusted CAs
    connect_timeout: float | None = None  # None: only the deadline bounds a connect

    @classmethod
    def from_config(cls, config) -> FetchPolicy:
        return cls(allow_http=config["FEED_ALLOW_HTTP"],
                   allowed_networks=tuple(config["FEED_ALLOWED_NETWORKS"]),
                   deadline=config["FEED_FETCH_DEADLINE"], max_bytes=config["FEED_MAX_BYTES"])


@dataclass
class FetchedFeed:
    url: str  # after redirects
    not_modified: bool = False
    body: bytes = b""
    etag: str | None = None
    modified: str | None = None


def is_public_address(address: IPAddress) -> bool:
    """Whether a fetch may connect to ``address``: a global unicast address, and for
    IPv6 forms that carry an IPv4 address (mapped, 6to4, NAT64), that one too."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return is_public_address(address.ipv4_mapped)
        if address in _NAT64:  # DNS64 answers for IPv4-only hosts: judge the IPv4 one
            return is_public_address(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address.sixtofour is not None and not is_public_address(address.sixtofour):
            return False
    return (address.is_global and not address.is_multicast and not address.is_reserved
            and not address.is_unspecified and not address.is_loopback
            and not address.is_link_local and not address.is_private and address not in _CGNAT)


def address_allowed(address: IPAddress, policy: FetchPolicy) -> bool:
    return is_public_address(address) or any(address in network
                                             for network in policy.allowed_networks)


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


def _resolve(host: str, port: int, deadline: float) -> list[IPAddress]:
    """getaddrinfo has no timeout of its own: run it in a thread and stop waiting
    at the deadline."""
    answer: dict[str, object] = {}

    def lookup():
        try:
            answer["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as error:  # UnicodeError: a bad IDN label
            answer["error"] = error

    thread = threading.Thread(target=lookup, daemon=True, name="feed-dns")
    thread.start()
    thread.join(_remaining(deadline))
    if thread.is_alive():
        raise TimeoutError
    if "error" in answer:
        raise FetchError(f"cannot resolve {host}: {answer['error']}")
    addresses: list[IPAddress] = []
    for *_, sockaddr in answer["infos"]:
        address = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def _connect_any(addresses: list[IPAddress], port: int, deadline: float,
                 keep: list[socket.socket], connect_timeout: float | None) -> socket.socket:
    last_error: OSError | None = None
    for address in addresses:
        timeout = _remaining(deadline)
        if connect_timeout is not None:
            timeout = min(timeout, connect_timeout)
        try:
            sock = socket.create_connection((str(address), port), timeout=timeout)
        except OSError as error:
            last_error = error
            continue
        keep.append(sock)  # for the watchdog, before TLS wraps it
        return sock
    raise last_error or OSError("no address to connect to")


class _PinnedHTTP(http.client.HTTPConnection):
    """HTTP to ``host`` (Host header) over a connection to an address we checked."""

    def __init__(self, host, port, addresses, deadline, connect_timeout=None):
        super().__init__(host, port, timeout=_remaining(deadline))
        self.addresses, self.deadline, self.sockets = addresses, deadline, []
        self.connect_timeout = connect_timeout

    def connect(self):
        self.sock = _connect_any(self.addresses, self.port, self.deadline, self.sockets,
                                 self.connect_timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to an address we checked; the certificate is verified against ``host``."""

    def __init__(self, host, port, addresses, deadline, context, connect_timeout=None):
        super().__init__(host, port, timeout=_remaining(deadline), context=context)
        self.addresses, self.deadline, self.sockets = addresses, deadline, []
        self.connect_timeout = connect_timeout

    def connect(self):
        sock = _connect_any(self.addresses, self.port, self.deadline, self.sockets,
                            self.connect_timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)
        self.sockets.append(self.sock)


def _check_url(url: str, policy: FetchPolicy):
    parts = urlsplit(url)
    allowed = {"https", "http"} if policy.allow_http else {"https"}
    if parts.scheme not in allowed:
        raise FetchError(f"{url[:200]!r}: only {' or '.join(sorted(allowed))} feeds are "
                         "fetched (NEWSLETTER_FEED_ALLOW_HTTP allows http)")
    if not parts.hostname:
        raise FetchError(f"{url[:200]!r} names no host")
    if parts.username or parts.password:
        raise FetchError("feed URLs with a user name or password are not supported")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise FetchError(f"{url[:200]!r} has a bad port") from None
    return parts, port


def fetch(url: str, policy: FetchPolicy, *, etag: str | None = None,
          modified: str | None = None) -> FetchedFeed:
    """GET a feed under ``policy``; FetchError says why it was refused or failed."""
    deadline = time.monotonic() + policy.deadline
    headers = {"User-Agent": USER_AGENT,
               "Accept": "application/rss+xml, application/atom+xml, application/xml, "
                         "text/xml;q=0.9, */*;q=0.5"}
    if etag:
        headers["If-None-Match"] = etag
    if modified:
        headers["If-Modified-Since"] = modified
    try:
        for _ in range(MAX_REDIRECTS + 1):
            result = _fetch_once(url, policy, headers, deadline)
            if isinstance(result, FetchedFeed):
                return result
            url = result  # a redirect: check the new URL like the first
        raise FetchError(f"more than {MAX_REDIRECTS} redirects")
    except TimeoutError:
        raise FetchError(f"no complete answer within {policy.deadline:g} s") from None


def checked_connection(url: str, policy: FetchPolicy, deadline: float):
    """A connection (not yet open) to an address of ``url``'s host that ``policy``
    allows, and the request target. The host is resolved once, here; the connection
    goes to the addresses checked, so DNS cannot answer differently later. Also used
    by the webhook sender: its endpoints are somebody's URLs too."""
    parts, port = _check_url(url, policy)
    addresses = _resolve(parts.hostname, port, deadline)
    refused = [address for address in addresses if not address_allowed(address, policy)]
    if refused or not addresses:
        raise FetchError(f"{parts.hostname} resolves to {refused[0] if refused else 'nothing'}, "
                         "which is not a public address")
    if parts.scheme == "https":
        context = policy.tls_context or ssl.create_default_context()
        connection = _PinnedHTTPS(parts.hostname, port, addresses, deadline, context,
                                  policy.connect_timeout)
    else:
        connection = _PinnedHTTP(parts.hostname, port, addresses, deadline,
                                 policy.connect_timeout)
    return connection, (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


@contextlib.contextmanager
def cut_off_at(deadline: float, connection):
    """The one deadline for everything, even a byte-a-second drip: at ``deadline`` the
    connection's sockets are shut down. Yields an Event that is set once that happened."""
    expired = threading.Event()

    def cut_off():
        expired.set()
        for sock in connection.sockets:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    watchdog = threading.Timer(_remaining(deadline), cut_off)
    watchdog.daemon = True
    watchdog.start()
    try:
        yield expired
    finally:
        watchdog.cancel()


def _fetch_once(url: str, policy: FetchPolicy, headers: dict, deadline: float):
    """One request: a FetchedFeed, or the URL a redirect points to."""
    connection, target = checked_connection(url, policy, deadline)
    with contextlib.ExitStack() as stack:
        expired = stack.enter_context(cut_off_at(deadline, connection))
        stack.callback(connection.close)
        return _get(connection, target, url, policy, headers, deadline, expired)


def _get(connection, target: str, url: str, policy: FetchPolicy, headers: dict,
         deadline: float, expired: threading.Event):
    try:
        connection.request("GET", target, headers=headers)
        response = connection.getresponse()
        if response.status in REDIRECT_STATUSES:
            location = response.getheader("Location")
            if not location:
                raise FetchError(f"HTTP {response.status} without a Location")
            return urljoin(url, location.strip())
        if response.status == 304:
            return FetchedFeed(url=url, not_modified=True)
        if response.status != 200:
            raise FetchError(f"HTTP {response.status}")
        body = read_capped(response, policy.max_bytes, deadline)
        if expired.is_set():
            raise TimeoutError
        return FetchedFeed(url=url, body=body, etag=_validator(response.getheader("ETag")),
                           modified=_validator(response.getheader("Last-Modified")))
    except (OSError, ValueError, http.client.HTTPException) as error:
        if expired.is_set() or isinstance(error, TimeoutError):
            raise TimeoutError from None
        if isinstance(error, ssl.SSLError):
            raise FetchError(f"TLS: {error}") from None
        raise FetchError(f"fetch failed: {error}") from None


def _validator(value: str | None) -> str | None:
    """An ETag or Last-Modified we will send back: one clean line, or nothing."""
    text = clean_text(value)
    return text if text and len(text) <= 128 and text.isascii() else None


def read_capped(response: http.client.HTTPResponse, max_bytes: int, deadline: float) -> bytes:
    """The body, read in chunks until ``deadline``; FetchError past ``max_bytes``."""
    declared = response.getheader("Content-Length")
    if declared and declared.strip().isdigit() and int(declared) > max_bytes:
        raise FetchError(f"the body is larger than {max_bytes} bytes")
    chunks, size = [], 0
    while True:
        _remaining(deadline)
        chunk = response.read1(_CHUNK)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > max_bytes:
            raise FetchError(f"the body is larger than {max_bytes} bytes")
        chunks.append(chunk)


@dataclass
class PollResult:
    url: str
    added: int = 0
    skipped: int = 0  # known or invalid entries
    not_modified: bool = False
    error: str | None = None


def enqueue_polls() -> int:
    """One task per feed, so one slow feed neither delays the others nor needs a
    task time limit of N deadlines; returns how many were published."""
    return sum(send_task_now(jobs.POLL_FEED, url) for url in current_app.config["FEEDS"])


@dataclass
class FeedPoll:
    """One feed fetched and parsed (``start_poll``), its entries still to add. The caller
    adds each entry (``add``) and then records the feed's state (``finish``), committing
    after each step: every article is its own transaction, so an entry that fails keeps
    the articles added before it."""

    state: FeedState
    result: PollResult
    entries: list = field(default_factory=list)
    fetched: FetchedFeed | None = None  # a new body, whose validators ``finish`` keeps

    def add(self, entry) -> None:
        _add_entry(entry, self.result)

    def finish(self) -> PollResult:
        """Records when the feed was checked, what went wrong, and (after a new body)
        the validators for the next conditional GET."""
        state, result = self.state, self.result
        if self.fetched is not None:
            state.etag, state.modified = self.fetched.etag, self.fetched.modified
        if result.error:
            log.warning("feed %s: %s", result.url, result.error)
        state.checked_at, state.last_error = utcnow(), result.error
        db.session.merge(state)
        return result


def start_poll(url: str) -> FeedPoll:
    """Fetch and parse one feed (conditionally, with the validators kept last time);
    writes nothing."""
    poll = FeedPoll(state=db.session.get(FeedState, url) or FeedState(url=url),
                    result=PollResult(url=url))
    try:
        fetched = fetch(url, FetchPolicy.from_config(current_app.config),
                        etag=poll.state.etag, modified=poll.state.modified)
    except FetchError as error:
        poll.result.error = str(error)
        return poll
    if fetched.not_modified:
        poll.result.not_modified = True
        return poll
    # A stream, never bytes: feedparser opens bytes that name a local file.
    parsed = feedparser.parse(io.BytesIO(fetched.body))
    if parsed.bozo and not parsed.entries:
        poll.result.error = f"not a feed: {parsed.get('bozo_exception')}"
    else:
        poll.entries, poll.fetched = list(parsed.entries), fetched
    return poll


def _add_entry(entry, result: PollResult) -> None:
    stamp = entry.get("published_parsed") or entry.get("updated_parsed")
    content = entry.get("content") or []
    data = ArticleInput(
        title=entry.get("title", ""),
        url=entry.get("link", ""),
        guid=entry.get("id"),
        summary=entry.get("summary", ""),
        body_html=content[0].get("value", "") if content else "",
        author=entry.get("author"),
        categories=[tag.get("term", "") for tag in entry.get("tags", [])],
        published_at=datetime.fromtimestamp(timegm(stamp), UTC) if stamp else None,
    )
    try:
        _, created = add_article(data, ArticleSource.FEED, feed_url=result.url)
    except InvalidArticle as error:
        log.warning("feed entry %r skipped: %s", data.url or data.title, error)
        result.skipped += 1
        return
    if created:
        result.added += 1
    else:
        result.skipped += 1
