"""Editors' TOTP secrets are encrypted at rest with a key from the settings, the key
rotates, and the migration seals the secrets stored before it."""

from __future__ import annotations

import logging
from contextlib import contextmanager

import pyotp
from alembic.script import ScriptDirectory
from flask_migrate import downgrade, upgrade
from sqlalchemy import text

from newsletter.editors import accounts, two_factor
from newsletter.extensions import db
from tests.factories import make_editor
from tests.helpers import audit_rows, csrf_token_from, login

OLD_KEY, NEW_KEY, OTHER_KEY = "o" * 40, "n" * 40, "x" * 40


@contextmanager
def totp_key(app, key: str, *fallbacks: str):
    previous = app.config["TOTP_KEY"], app.config["TOTP_KEY_FALLBACKS"]
    app.config["TOTP_KEY"], app.config["TOTP_KEY_FALLBACKS"] = key, list(fallbacks)
    try:
        yield
    finally:
        app.config["TOTP_KEY"], app.config["TOTP_KEY_FALLBACKS"] = previous


def stored_secret(app, email="editor@example.com") -> str | None:
    with app.app_context():
        value = db.session.execute(text("SELECT totp_secret FROM editors WHERE email = :email"),
                                   {"email": email}).scalar()
        db.session.remove()
        return value


def enrol(app) -> tuple[str, list[str]]:
    with app.app_context():
        editor = accounts.find_editor("editor@example.com")
        secret = two_factor.new_secret()
        codes = two_factor.enrol(editor, secret, pyotp.TOTP(secret).now())
        editor.totp_last_step -= 1  # the enrolment spent this step's code
        db.session.commit()
    return secret, codes


def log_in_with(app, code: str) -> int:
    client = app.test_client()
    login(client)
    token = csrf_token_from(client, "/admin/login/verify")
    return client.post("/admin/login/verify", data={"code": code, "csrf_token": token}
                       ).status_code


def unspend(app) -> None:
    with app.app_context():
        accounts.find_editor("editor@example.com").totp_last_step -= 1
        db.session.commit()


def test_the_secret_is_sealed_and_a_rotated_key_keeps_it_working(app, client, caplog):
    make_editor(app)
    with totp_key(app, OLD_KEY):
        secret, codes = enrol(app)
    sealed = stored_secret(app)
    assert sealed.startswith("gAAAAA") and secret not in sealed  # a Fernet token
    totp = pyotp.TOTP(secret)

    # Rotation: the new key with the old one as a fallback still opens it ...
    with totp_key(app, NEW_KEY, OLD_KEY):
        assert log_in_with(app, totp.now()) == 302
        unspend(app)
        result = app.test_cli_runner().invoke(args=["editors", "reseal-totp"])
        assert result.exit_code == 0 and "1 TOTP secret(s) re-encrypted" in result.output
    assert stored_secret(app) != sealed
    # ... and after the reseal the old key can go.
    with totp_key(app, NEW_KEY):
        assert log_in_with(app, totp.now()) == 302
        unspend(app)
    assert [row.detail for row in audit_rows(app, action="totp_reseal")] == [
        "1 resealed, 0 unreadable"]

    # With a key that does not open it: a clear refusal and an error in the log, no 500;
    # a recovery code still logs in, and the reseal says what it could not read.
    with totp_key(app, OTHER_KEY), caplog.at_level(logging.ERROR):
        assert log_in_with(app, totp.now()) == 401
        assert "opens with no key of NEWSLETTER_TOTP_KEY" in caplog.text
        assert log_in_with(app, codes[0]) == 302
        result = app.test_cli_runner().invoke(args=["editors", "reseal-totp"])
        assert result.exit_code == 1 and "1 secret(s) open with no configured key" in (
            result.output)


def test_without_a_totp_key_the_secret_is_sealed_with_one_derived_from_secret_key(
        app, client):
    make_editor(app)
    assert not app.config["TOTP_KEY"]
    secret, _ = enrol(app)
    assert secret not in stored_secret(app)
    # Rotating SECRET_KEY as documented (the old one a fallback) keeps it readable.
    previous = app.config["SECRET_KEY"]
    app.config["SECRET_KEY"], app.config["SECRET_KEY_FALLBACKS"] = "r" * 40, [previous]
    try:
        assert log_in_with(app, pyotp.TOTP(secret).now()) == 302
    finally:
        app.config["SECRET_KEY"], app.config["SECRET_KEY_FALLBACKS"] = previous, []


def test_the_migration_seals_secrets_stored_in_plain_text(app, client):
    """Down to the schema before the sealing, a plain secret as older versions stored
    it, and up again: sealed with the configured key, and it still logs in."""
    make_editor(app)
    secret = two_factor.new_secret()
    with app.app_context():
        scripts = ScriptDirectory.from_config(
            app.extensions["migrate"].migrate.get_config())
        before = scripts.get_revision("0014").down_revision
        with totp_key(app, NEW_KEY):
            downgrade(revision=before)
            db.session.execute(text("UPDATE editors SET totp_secret = :secret"),
                               {"secret": secret})
            db.session.commit()
            upgrade()
        db.session.remove()
    sealed = stored_secret(app)
    assert sealed.startswith("gAAAAA") and secret not in sealed
    with totp_key(app, NEW_KEY):
        assert log_in_with(app, pyotp.TOTP(secret).now()) == 302
