"""Human or bot: the verdict on one click, from what the request shows at that moment.

The signals (see docs/analytics.md): the method (a HEAD request is a link checker),
the user agent (crawlerdetect's maintained patterns; none at all is a bot too),
known scanner networks (``scanner_networks.txt``), and the time since the copy was
sent (no reader opens a mail and clicks within seconds). The burst shape of a
copy's clicks is judged in Redis by ``clicks.py``. Nothing here is stored but the
verdict and its reason.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

from crawlerdetect import CrawlerDetect

from newsletter.models import Verdict

NETWORKS_FILE = Path(__file__).with_name("scanner_networks.txt")
# A message cannot reach an inbox, be opened and a link clicked in less.
TOO_SOON_SECONDS = 3
# Mail clients and proxies that fetch images for the reader, not the reader's eyes.
_PREFETCHERS = ("googleimageproxy", "yahoomailproxy", "ggpht.com", "outlook-imageproxy")
# Mail security scanners that crawlerdetect does not know by name.
_SCANNER_WORDS = ("barracuda", "proofpoint", "mimecast", "safelinks", "urldefense",
                  "trendmicro", "forcepoint", "sophos", "ironport", "cisco-esa")
_APPLE_PROXY = ipaddress.ip_network("17.0.0.0/8")  # Apple Mail Privacy Protection fetches


@dataclass(frozen=True)
class Judged:
    verdict: Verdict
    reason: str


def load_networks(text: str) -> tuple:
    """The networks of a ``scanner_networks.txt``; ValueError names a bad line."""
    networks = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if line:
            try:
                networks.append(ipaddress.ip_network(line))
            except ValueError:
                raise ValueError(f"{NETWORKS_FILE.name} line {number}: not a network: "
                                 f"{line!r}") from None
    return tuple(networks)


@cache
def scanner_networks() -> tuple:
    return load_networks(NETWORKS_FILE.read_text())


@cache
def _scanner_ranges() -> dict[int, tuple[tuple[int, int], ...]]:
    """IP version -> (first, last) address numbers: a click compares integers, it does
    not walk ipaddress objects."""
    ranges: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
    for network in scanner_networks():
        ranges[network.version].append((int(network.network_address),
                                        int(network.broadcast_address)))
    return {version: tuple(found) for version, found in ranges.items()}


@cache
def _detector() -> CrawlerDetect:
    return CrawlerDetect()


@lru_cache(maxsize=4096)
def is_crawler(user_agent: str) -> bool:
    lowered = user_agent.lower()
    return any(word in lowered for word in _SCANNER_WORDS) or bool(
        _detector().isCrawler(user_agent))


def _address(text: str | None):
    try:
        return ipaddress.ip_address(text or "")
    except ValueError:
        return None


def in_scanner_network(address: str | None) -> bool:
    ip = _address(address)
    if ip is None:
        return False
    number = int(ip)
    return any(first <= number <= last for first, last in _scanner_ranges()[ip.version])


def judge_click(method: str, user_agent: str | None, address: str | None,
                seconds_since_sent: float) -> Judged:
    """The verdict before the burst check (which needs the copy's recent clicks)."""
    user_agent = (user_agent or "").strip()[:512]
    if method == "HEAD":
        return Judged(Verdict.BOT, "head")
    if not user_agent:
        return Judged(Verdict.BOT, "no user agent")
    if is_crawler(user_agent):
        return Judged(Verdict.BOT, "user agent")
    if in_scanner_network(address):
        return Judged(Verdict.BOT, "scanner network")
    if seconds_since_sent < TOO_SOON_SECONDS:
        return Judged(Verdict.BOT, "too soon")
    return Judged(Verdict.HUMAN, "browser")


def judge_open(method: str, user_agent: str | None, address: str | None) -> Judged:
    """An open pixel fetched by a person's mail client, a provider's proxy, or a bot."""
    user_agent = (user_agent or "").strip()[:512]
    lowered = user_agent.lower()
    ip = _address(address)
    if any(name in lowered for name in _PREFETCHERS):
        return Judged(Verdict.PROXY, "image proxy")
    if ip is not None and ip in _APPLE_PROXY:
        return Judged(Verdict.PROXY, "apple privacy protection")
    if method == "HEAD" or not user_agent or is_crawler(user_agent) or in_scanner_network(
            address):
        return Judged(Verdict.BOT, "scanner")
    return Judged(Verdict.HUMAN, "mail client")
