"""The hello-world Flask app that bench/subscribe.py measures the subscribe endpoint against."""

from flask import Flask

app = Flask(__name__)


@app.route("/api/v1/subscriptions", methods=["GET", "POST"])
def hello():
    return "Hello, World!"


@app.route("/r/<link_token>/<copy_token>")
def hello_redirect(link_token, copy_token):
    """What bench/redirect.py measures the tracked-link redirect against."""
    return "Hello, World!"
