"""The newsletter web application: ``create_app`` builds and configures it."""

from __future__ import annotations

import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from newsletter.config import check_secret_key, load_settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger(__name__)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(
        __name__,
        instance_path=str(PROJECT_ROOT / "instance"),
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=None,  # pages carry their own small CSS
    )
    app.config.update(load_settings())
    app.config.update(config or {})
    check_secret_key(app.config)
    _derive_settings(app)

    from newsletter.extensions import cors, csrf, db, limiter, login_manager, migrate

    db.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"))
    csrf.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    cors.init_app(app, resources={r"/api/*": {"origins": app.config["CORS_ORIGINS"]}})

    from newsletter.celery_setup import celery_init_app
    from newsletter.mail.transport import SMTPTransport

    celery_init_app(app)
    app.extensions["smtp"] = SMTPTransport(app.config)

    from newsletter.web import register_blueprints

    register_blueprints(app)
    if app.config["PROXY_COUNT"]:
        # Trust X-Forwarded-* from that many proxies, so per-IP limits see the reader's IP.
        hops = app.config["PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    from newsletter import cli

    cli.register(app)
    return app


def _generated_secret(path: Path) -> str:
    """A secret made once and kept in the instance folder (mode 0600)."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # another process may be writing it this very moment
            if text := path.read_text().strip():
                return text
            time.sleep(0.1)
        raise RuntimeError(f"{path} is empty; delete it to have a new one made") from None
    with os.fdopen(descriptor, "w") as file:
        file.write(secrets.token_hex(32))
    return path.read_text().strip()


def _derive_settings(app: Flask) -> None:
    """Settings computed from others, and the names the extensions expect."""
    config = app.config
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    default_database = f"sqlite:///{Path(app.instance_path) / 'newsletter.db'}"
    database_url = config["DATABASE_URL"] or default_database
    config["SQLALCHEMY_DATABASE_URI"] = database_url
    if database_url.startswith("sqlite"):
        # Wait for a writer instead of failing with "database is locked".
        config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"connect_args": {"timeout": 30}})
    host = urlsplit(config["BASE_URL"]).hostname or "localhost"
    config["LIST_ID"] = config["LIST_ID"] or f"<newsletter.{host}>"
    config["SESSION_COOKIE_SECURE"] = config["BASE_URL"].startswith("https://")
    config["SESSION_COOKIE_SAMESITE"] = "Lax"
    config["SESSION_COOKIE_HTTPONLY"] = True
    config["REMEMBER_COOKIE_SECURE"] = config["SESSION_COOKIE_SECURE"]
    config["REMEMBER_COOKIE_HTTPONLY"] = True
    # The cookie lives as long as the longest session may; the server decides earlier
    # (idle timeout, absolute lifetime, logout: newsletter/services/sessions.py).
    config["PERMANENT_SESSION_LIFETIME"] = config["SESSION_MAX_AGE"]
    config["SESSION_REFRESH_EACH_REQUEST"] = False
    config["SUPPRESSION_KEY"] = config["SUPPRESSION_KEY"] or _generated_secret(
        Path(app.instance_path) / "suppression-key")
    config["WTF_CSRF_TIME_LIMIT"] = None  # a form left open overnight still submits
    config["RATELIMIT_STORAGE_URI"] = config["REDIS_URL"]
    # Redis down must not turn a subscribe into a 500: fall back to per-process limits.
    config["RATELIMIT_IN_MEMORY_FALLBACK_ENABLED"] = True
    config["RATELIMIT_SWALLOW_ERRORS"] = True
    config["RATELIMIT_STORAGE_OPTIONS"] = {"socket_connect_timeout": 1, "socket_timeout": 1}
    config["RATELIMIT_HEADERS_ENABLED"] = True
    config["MAX_CONTENT_LENGTH"] = 32 * 1024 * 1024  # a CSV of a few hundred thousand rows
    in_production = not (config.get("DEBUG") or config.get("TESTING"))
    if in_production and not config["BASE_URL"].startswith("https://") and host not in {
            "127.0.0.1", "localhost"}:
        log.warning("NEWSLETTER_BASE_URL is not https: RFC 8058 one-click unsubscribe "
                    "links must be https for Gmail and Yahoo")
