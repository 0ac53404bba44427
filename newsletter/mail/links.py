"""Absolute links for mails, built from BASE_URL (tasks have no request to borrow a host from)."""

import re
import secrets
from urllib.parse import urlsplit

from flask import current_app
from werkzeug.routing import MapAdapter


def url_adapter() -> MapAdapter:
    """Builds absolute URLs under BASE_URL; a send makes one per batch."""
    base = urlsplit(current_app.config["BASE_URL"])
    return current_app.url_map.bind(base.netloc, script_name=base.path or "/",
                                    url_scheme=base.scheme)


def external_url(endpoint: str, **values) -> str:
    return url_adapter().build(endpoint, values, force_external=True)


def is_own_site(url: str) -> bool:
    """Does ``url`` lead to a page of this site (under BASE_URL)?"""
    base, target = urlsplit(current_app.config["BASE_URL"]), urlsplit(url.strip())
    root, path = base.path.rstrip("/"), target.path or "/"
    return (target.netloc.lower() == base.netloc.lower()
            and (path == root or path.startswith(root + "/")))


# A key a URL carries as it is (unsubscribe keys are letters, digits, - and _).
_KEY_AS_IT_IS = re.compile(r"[A-Za-z0-9_-]+")


class UnsubscribeUrls:
    """Each reader's unsubscribe URL for a send: the route is built once with a stand-in
    key, and a reader's key takes its place; any other key goes through the route."""

    def __init__(self, adapter: MapAdapter):
        self.adapter = adapter
        stand_in = "key" + secrets.token_hex(8)
        pieces = self._build(stand_in).split(stand_in)
        self.pieces = pieces if len(pieces) == 2 else None

    def _build(self, key: str) -> str:
        return self.adapter.build("public.unsubscribe", {"token": key}, force_external=True)

    def __call__(self, key: str) -> str:
        if self.pieces is not None and _KEY_AS_IT_IS.fullmatch(key):
            return key.join(self.pieces)
        return self._build(key)
