"""Dev only: the mails the local SMTP catcher kept, at /dev/mail.

Registered only when NEWSLETTER_DEV_MAILBOX is set, and the app refuses that
setting unless debug is on and BASE_URL is a loopback address (config.py
check_dev_mailbox): these pages show every confirm and unsubscribe link.
"""

import re
from email import policy
from email.parser import BytesParser
from pathlib import Path

from flask import Blueprint, abort, current_app, render_template

from newsletter.web.security import mail_document

bp = Blueprint("devmail", __name__, url_prefix="/dev/mail")
MAIL_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")  # the catcher's file names
HEAD_TAG = re.compile(r"<head\b[^>]*>", re.IGNORECASE)
# Links (and the mail's buttons, which are links) open in a new tab: inside the
# sandboxed frame a page's forms could not submit.
NEW_TAB = '<base target="_blank">'


def _mailbox() -> Path:
    return Path(current_app.config["DEV_MAILBOX"])


def _read(path: Path):
    return BytesParser(policy=policy.default).parsebytes(path.read_bytes())


def _path(name: str) -> Path:
    path = _mailbox() / f"{name}.eml"
    if not MAIL_NAME.fullmatch(name) or name.startswith(".") or not path.is_file():
        abort(404)
    return path


@bp.get("/")
def index():
    paths = sorted(_mailbox().glob("*.eml"), reverse=True)[:200]
    return render_template("web/devmail_index.html",
                           mails=[(path.stem, _read(path)) for path in paths])


@bp.get("/<name>")
def show(name: str):
    path = _path(name)
    message = _read(path)
    text = message.get_body(("plain",))
    return render_template("web/devmail_show.html", message=message, name=name,
                           has_html=message.get_body(("html",)) is not None,
                           text=text.get_content() if text else "",
                           raw=path.read_text(errors="replace"))


@bp.get("/<name>/html")
def show_html(name: str):
    """The HTML part for the page's sandboxed iframe, under the mail policy."""
    html = _read(_path(name)).get_body(("html",))
    if html is None:
        abort(404)
    return mail_document(in_new_tabs(html.get_content()), framed_by_self=True)


def in_new_tabs(html: str) -> str:
    if HEAD_TAG.search(html):
        return HEAD_TAG.sub(lambda head: head.group(0) + NEW_TAB, html, count=1)
    return NEW_TAB + html
