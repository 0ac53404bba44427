"""Dev only: the mails the local SMTP catcher kept, at /dev/mail.

Registered only when NEWSLETTER_DEV_MAILBOX is set, which the dev stack does.
"""

from email import policy
from email.parser import BytesParser
from pathlib import Path

from flask import Blueprint, abort, current_app, render_template

bp = Blueprint("devmail", __name__, url_prefix="/dev/mail")


def _mailbox() -> Path:
    return Path(current_app.config["DEV_MAILBOX"])


def _read(path: Path):
    return BytesParser(policy=policy.default).parsebytes(path.read_bytes())


@bp.get("/")
def index():
    paths = sorted(_mailbox().glob("*.eml"), reverse=True)[:200]
    return render_template("web/devmail_index.html",
                           mails=[(path.stem, _read(path)) for path in paths])


@bp.get("/<name>")
def show(name: str):
    path = _mailbox() / f"{name}.eml"
    if "/" in name or not path.is_file():
        abort(404)
    message = _read(path)
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    return render_template("web/devmail_show.html", message=message,
                           text=text.get_content() if text else "",
                           html=html.get_content() if html else "",
                           raw=path.read_text(errors="replace"))
