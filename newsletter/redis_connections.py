"""Every Redis client of the app, made here: from ``NEWSLETTER_REDIS_URL``, or under
Sentinel (``NEWSLETTER_REDIS_SENTINELS`` and ``NEWSLETTER_REDIS_SENTINEL_MASTER``) a
client that asks the sentinels for the current master and follows a failover.

Under Sentinel, ``REDIS_URL`` still gives the database number and the master's
password; its host and port are not used. ``REDIS_SENTINEL_PASSWORD`` is the
sentinels' own password, when they have one.

Also what Celery's broker and the rate limiter's storage are told, so every use of
Redis follows the same master.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import redis
from redis.sentinel import Sentinel


def _url_parts(config: Mapping[str, Any]) -> tuple[int, str | None]:
    """The database number and the password REDIS_URL names."""
    parts = urlsplit(config["REDIS_URL"])
    path = parts.path.strip("/")
    return (int(path) if path.isdigit() else 0,
            unquote(parts.password) if parts.password else None)


def sentinel_mode(config: Mapping[str, Any]) -> bool:
    return bool(config.get("REDIS_SENTINELS"))


def client(config: Mapping[str, Any], *, connect_timeout: float,
           timeout: float) -> redis.Redis:
    """A client of the current master, with these socket timeouts (seconds)."""
    if not sentinel_mode(config):
        return redis.Redis.from_url(config["REDIS_URL"], socket_connect_timeout=connect_timeout,
                                    socket_timeout=timeout)
    db, password = _url_parts(config)
    sentinel = Sentinel(
        list(config["REDIS_SENTINELS"]),
        sentinel_kwargs={"password": config.get("REDIS_SENTINEL_PASSWORD") or None,
                         "socket_connect_timeout": connect_timeout, "socket_timeout": timeout},
        socket_connect_timeout=connect_timeout, socket_timeout=timeout)
    return sentinel.master_for(config["REDIS_SENTINEL_MASTER"], db=db, password=password)


def celery_broker(config: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Celery's broker URL and the transport options it needs besides the usual ones."""
    if not sentinel_mode(config):
        return config["REDIS_URL"], {}
    db, password = _url_parts(config)
    auth = f":{quote(password, safe='')}@" if password else ""
    url = ";".join(f"sentinel://{auth}{_netloc(host, port)}/{db}"
                   for host, port in config["REDIS_SENTINELS"])
    options: dict[str, Any] = {"master_name": config["REDIS_SENTINEL_MASTER"]}
    if config.get("REDIS_SENTINEL_PASSWORD"):
        options["sentinel_kwargs"] = {"password": config["REDIS_SENTINEL_PASSWORD"]}
    return url, options


def limiter_storage(config: Mapping[str, Any], *, connect_timeout: float,
                    timeout: float) -> tuple[str, dict[str, Any]]:
    """Flask-Limiter's storage URI and options."""
    timeouts = {"socket_connect_timeout": connect_timeout, "socket_timeout": timeout}
    if not sentinel_mode(config):
        return config["REDIS_URL"], timeouts
    db, password = _url_parts(config)
    hosts = ",".join(_netloc(host, port) for host, port in config["REDIS_SENTINELS"])
    sentinel_kwargs = dict(timeouts)
    if config.get("REDIS_SENTINEL_PASSWORD"):
        sentinel_kwargs["password"] = config["REDIS_SENTINEL_PASSWORD"]
    options = {**timeouts, "db": db, "sentinel_kwargs": sentinel_kwargs,
               "use_replicas": False}  # a replica's counts lag: limits read the master
    if password:
        options["password"] = password
    return f"redis+sentinel://{hosts}/{config['REDIS_SENTINEL_MASTER']}", options


def _ipv6(text: str) -> str:
    try:
        return str(ipaddress.IPv6Address(text))
    except ValueError:
        return ""


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_sentinels(value: str) -> tuple[tuple[str, int], ...]:
    """``host:port,host:port`` (``[v6]:port`` for an IPv6 address); empty: no Sentinel."""
    sentinels = []
    for item in str(value).split(","):
        item = item.strip()
        if not item:
            continue
        host, colon, port = item.rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = _ipv6(host[1:-1])
        elif not re.fullmatch(r"[A-Za-z0-9._-]+", host):
            host = ""
        if not colon or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"expected host:port,host:port (e.g. 10.0.0.5:26379), got {item!r}")
        sentinels.append((host, int(port)))
    return tuple(sentinels)
