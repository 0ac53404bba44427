"""Every error is a clear 4xx page (or JSON for the API), never a bare 500."""

import logging

from flask import Flask, jsonify, render_template
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from newsletter.web.common import wants_json

log = logging.getLogger(__name__)

MESSAGES = {
    400: "The request could not be understood.",
    401: "Authentication is required.",
    404: "There is no page at this address.",
    405: "This address does not accept that kind of request.",
    413: "The request is too large.",
    415: "Send the request body as application/json.",
    429: "Too many requests. Please wait a little and try again.",
    500: "Something went wrong on our side. Nothing you sent was lost; please try again.",
}


def error_response(status: int, message: str | None = None):
    message = message or MESSAGES.get(status, "The request failed.")
    if wants_json():
        return jsonify(error=message, status=status), status
    return render_template("web/error.html", status=status, message=message), status


def register(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError):
        return error_response(400, "The form expired or was sent from elsewhere. "
                                   "Go back, reload the page and try again.")

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        status = error.code or 500
        message = MESSAGES.get(status) if status != 400 else (error.description or MESSAGES[400])
        return error_response(status, message)

    @app.errorhandler(InternalServerError)
    def server_error(error: InternalServerError):
        log.exception("unhandled error", exc_info=error.original_exception)
        return error_response(500)
