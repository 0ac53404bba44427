"""Every error is a clear 4xx page (or JSON for the API), never a bare 500.

Each refused request is logged once, as a warning with the reason (no traceback):
bad input is the client's problem, not ours.
"""

import contextlib
import logging

from flask import Flask, jsonify, make_response, render_template, request
from flask_babel import gettext
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from werkzeug.exceptions import HTTPException, InternalServerError

from newsletter.extensions import db
from newsletter.mail.language import N_

log = logging.getLogger(__name__)


MESSAGES = {
    400: N_("The request could not be understood."),
    401: N_("Authentication is required."),
    403: N_("You may not do that."),
    404: N_("There is no page at this address."),
    405: N_("This address does not accept that kind of request."),
    413: N_("The request is too large."),
    415: N_("Send the request body as application/json."),
    429: N_("Too many requests. Please wait a little and try again."),
    500: N_("Something went wrong on our side. Nothing you sent was lost; please try again."),
    503: N_("We could not save that just now; nothing was recorded. Please try again in a "
            "few seconds."),
}
RETRY_AFTER_OUTAGE = 5  # seconds: a database restart or failover
# Errors that mean the database cannot be reached now (psycopg's own, from the
# subscribe path's direct INSERT, when PostgreSQL's driver is installed).
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (OperationalError, InterfaceError)
with contextlib.suppress(ImportError):
    import psycopg

    DATABASE_UNAVAILABLE += (psycopg.OperationalError, psycopg.InterfaceError)


def wants_json() -> bool:
    if request.path.startswith("/api/"):
        return True
    accepted = request.accept_mimetypes
    return accepted["application/json"] > accepted["text/html"]


def log_refusal(status: int, reason: str) -> None:
    # %r keeps control characters from the path out of the log's lines.
    log.warning("%s %r answered %s: %s", request.method, request.path[:200], status, reason)


def error_response(status: int, message: str | None = None, *, reason: str | None = None):
    message = message or MESSAGES.get(status, "The request failed.")
    if status < 500:
        log_refusal(status, reason or message)
    if wants_json():
        return jsonify(error=message, status=status), status
    # Pages in the reader's language (a message we have no translation for stays as is);
    # the API answers in English, as its clients' code reads it.
    return render_template("web/error.html", status=status, message=gettext(message)), status


def register(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError):
        return error_response(400, N_("The form expired or was sent from elsewhere. "
                                      "Go back, reload the page and try again."),
                              reason=f"CSRF: {error.description}")

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        status = error.code or 500
        message = MESSAGES.get(status) if status != 400 else (error.description or MESSAGES[400])
        return error_response(status, message,
                              reason=f"{type(error).__name__}: {error.description}")

    def database_unavailable(error):
        # The database restarting or failing over: nothing was saved, so say to retry.
        log.warning("%s %r answered 503: database unavailable (%s)", request.method,
                    request.path[:200], type(getattr(error, "orig", error)).__name__)
        with contextlib.suppress(SQLAlchemyError):  # the page must not need the database
            db.session.rollback()
        response = make_response(error_response(503, MESSAGES[503]))
        response.headers["Retry-After"] = str(RETRY_AFTER_OUTAGE)
        return response

    for error_class in DATABASE_UNAVAILABLE:
        app.register_error_handler(error_class, database_unavailable)

    @app.errorhandler(InternalServerError)
    def server_error(error: InternalServerError):
        log.exception("unhandled error", exc_info=error.original_exception)
        return error_response(500)
