"""The hello-world Flask app that bench/subscribe.py measures the subscribe endpoint against."""

from flask import Flask

app = Flask(__name__)


@app.route("/api/v1/subscriptions", methods=["GET", "POST"])
def hello():
    return "Hello, World!"
