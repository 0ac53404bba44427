"""The newsletter web application: ``create_app`` builds and configures it."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from newsletter import logging_setup, redis_connections
from newsletter.config import ConfigError, load_settings
from newsletter.config_checks import (
    check_dev_mailbox,
    check_send_settings,
    ensure_instance_folder,
)
from newsletter.keys import check_keys

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent  # the repository, when running from the source tree
log = logging.getLogger(__name__)


def resource_dir(name: str) -> Path:
    """``templates``, ``static`` or ``migrations``: inside the package in an installed wheel
    (newsletter/templates), at the repository's top level in the source tree and
    in an editable install."""
    packaged = PACKAGE_DIR / name
    return packaged if packaged.is_dir() else PROJECT_ROOT / name


def default_instance_path() -> str | None:
    """``instance/`` in the source tree; None (Flask's ``<prefix>/var/newsletter-instance``,
    e.g. inside the virtualenv) for an installed package."""
    if (PROJECT_ROOT / "pyproject.toml").is_file() and (PROJECT_ROOT / "templates").is_dir():
        return str(PROJECT_ROOT / "instance")
    return None


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """The app. Started from the environment alone (web, workers, beat, commands), a
    setting it cannot run with stops the process with one line naming it; a caller
    passing settings in code (the tests) gets the ConfigError."""
    if config is not None:
        return _create_app(config)
    try:
        return _create_app({})
    except ConfigError as error:
        raise SystemExit(f"newsletter: {error}") from None


def _create_app(config: dict[str, Any]) -> Flask:
    settings = {**load_settings(), **config}
    # First: start-up warnings get its format.
    logging_setup.configure(settings["LOG_LEVEL"], settings["LOG_FORMAT"])
    app = Flask(
        __name__,
        instance_path=settings["INSTANCE_PATH"] or default_instance_path(),
        template_folder=str(resource_dir("templates")),
        # CSS and scripts of the pages, served from the app (the CSP allows no inline script).
        static_folder=str(resource_dir("static")),
    )
    app.config.update(settings)
    _missing_keys(app)
    check_keys(app.config)
    check_dev_mailbox(app.config)
    check_send_settings(app.config)
    _derive_settings(app)

    from newsletter.extensions import babel, cors, csrf, db, limiter, login_manager, migrate
    from newsletter.mail.language import TRANSLATIONS
    from newsletter.web import security
    from newsletter.web.common import select_locale

    security.init_app(app)  # first: body caps apply before CSRF reads a form

    db.init_app(app)
    migrate.init_app(app, db, directory=str(resource_dir("migrations")))
    csrf.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    babel.init_app(app, locale_selector=select_locale,
                   default_translation_directories=str(TRANSLATIONS))
    cors.init_app(app, resources={r"/api/*": {"origins": app.config["CORS_ORIGINS"]}})

    from newsletter.celery_setup import celery_init_app
    from newsletter.delivery.single_mail import PooledMail
    from newsletter.mail.relays import relays_from_config
    from newsletter.mail.transport import SMTPTransport

    celery_init_app(app)
    # Single mails (confirmation, welcome, notices): the pool, with failover.
    app.extensions["smtp"] = PooledMail(app.config)
    # Digest sends: every relay of the pool, by name.
    app.extensions["smtp_relays"] = {relay.name: SMTPTransport(app.config, relay)
                                     for relay in relays_from_config(app.config)}

    from newsletter.web import register_blueprints

    register_blueprints(app)
    if app.config["PROXY_COUNT"]:
        # Trust X-Forwarded-* from that many proxies, so per-IP limits see the reader's IP.
        hops = app.config["PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    from newsletter import cli

    cli.register(app)
    if not app.config.get("TESTING"):
        # The test suite's app empties its database after start: it checks at first use.
        _check_stored_keys(app)
    return app


def _missing_keys(app: Flask) -> None:
    """The test suite may leave the suppression key out: a random one for this process,
    never a file. Elsewhere a missing key is refused (check_keys); an instance folder
    holding the key an earlier version generated says where the right value is."""
    config = app.config
    if config["SUPPRESSION_KEY"]:
        return
    if config.get("TESTING"):
        config["SUPPRESSION_KEY"] = secrets.token_hex(32)
        return
    generated = Path(app.instance_path) / "suppression-key"
    if generated.is_file():
        raise ConfigError(f"NEWSLETTER_SUPPRESSION_KEY is not set; set it on every host to "
                          f"the key an earlier version generated into {generated}")


def _check_stored_keys(app: Flask) -> None:
    """Refuse to start with another suppression key than the database's. A database
    that cannot be reached now is checked at the key's first use instead."""
    from sqlalchemy.exc import OperationalError

    from newsletter.db import unit_of_work
    from newsletter.extensions import db
    from newsletter.readers import privacy

    with app.app_context():
        try:
            with unit_of_work():
                privacy.check_suppression_key()
        except OperationalError as error:
            log.warning("suppression key not checked at start (database unreachable: %s); "
                        "it is checked at first use", type(error).__name__)
        finally:
            # Processes that fork after start (Celery's prefork pool, gunicorn --preload)
            # must not hand this connection to their children.
            db.session.remove()
            db.engine.dispose()


def _derive_settings(app: Flask) -> None:
    """Settings computed from others, and the names the extensions expect."""
    config = app.config
    ensure_instance_folder(app.instance_path)
    default_database = f"sqlite:///{Path(app.instance_path) / 'newsletter.db'}"
    database_url = config["DATABASE_URL"] or default_database
    config["SQLALCHEMY_DATABASE_URI"] = database_url
    if database_url.startswith("sqlite"):
        # Wait for a writer instead of failing with "database is locked".
        config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"connect_args": {"timeout": 30}})
    else:
        # After a database restart every pooled connection is dead: test each one as it
        # is taken, so the first request or task after the restart does not fail.
        config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"pool_pre_ping": True})
    host = urlsplit(config["BASE_URL"]).hostname or "localhost"
    config["LIST_ID"] = config["LIST_ID"] or f"<newsletter.{host}>"
    config["SESSION_COOKIE_SECURE"] = config["BASE_URL"].startswith("https://")
    config["SESSION_COOKIE_SAMESITE"] = "Lax"
    config["SESSION_COOKIE_HTTPONLY"] = True
    config["REMEMBER_COOKIE_SECURE"] = config["SESSION_COOKIE_SECURE"]
    config["REMEMBER_COOKIE_HTTPONLY"] = True
    # The cookie lives as long as the longest session may; the server decides earlier
    # (idle timeout, absolute lifetime, logout: newsletter/editors/sessions.py).
    config["PERMANENT_SESSION_LIFETIME"] = config["SESSION_MAX_AGE"]
    config["SESSION_REFRESH_EACH_REQUEST"] = False
    config["WTF_CSRF_TIME_LIMIT"] = None  # a form left open overnight still submits
    config["RATELIMIT_STORAGE_URI"], config["RATELIMIT_STORAGE_OPTIONS"] = (
        redis_connections.limiter_storage(config, connect_timeout=1, timeout=1))
    # Redis down must not turn a subscribe into a 500: fall back to per-process limits.
    config["RATELIMIT_IN_MEMORY_FALLBACK_ENABLED"] = True
    config["RATELIMIT_SWALLOW_ERRORS"] = True
    # No X-RateLimit-* headers: they cost Redis round trips on every subscribe request.
    config["RATELIMIT_HEADERS_ENABLED"] = False
    in_production = not (config.get("DEBUG") or config.get("TESTING"))
    if in_production and not config["BASE_URL"].startswith("https://") and host not in {
            "127.0.0.1", "localhost"}:
        log.warning("NEWSLETTER_BASE_URL is not https: RFC 8058 one-click unsubscribe "
                    "links must be https for Gmail and Yahoo")
