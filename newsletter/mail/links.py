"""Absolute links for mails, built from BASE_URL (tasks have no request to borrow a host from)."""

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
