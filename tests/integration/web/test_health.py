"""The health probes: live while the process answers; ready only while the database
and Redis answer, naming the part that does not, and never refused or cookied."""

from __future__ import annotations

import socket
import threading

from newsletter import create_app
from newsletter.devstack import free_port, start_embedded_redis
from tests.helpers import app_config, wait_until


def probe(client, path: str):
    response = client.get(path)
    assert "Set-Cookie" not in response.headers
    assert response.headers["Cache-Control"] == "no-store"
    return response.status_code, response.get_json()


def test_live_and_ready_answer_without_login_or_cookie(app, client):
    for _ in range(30):  # a probe every few seconds, from one address
        assert probe(client, "/healthz/live") == (200, {"status": "ok"})
        assert probe(client, "/healthz/ready") == (200, {"status": "ok"})
    assert client.post("/healthz/ready").status_code == 405


def test_ready_names_redis_while_it_is_down_and_recovers(app, client, monkeypatch,
                                                         tmp_path):
    port = free_port()
    own_redis = start_embedded_redis(tmp_path / "redis", port)
    try:
        monkeypatch.setitem(app.config, "REDIS_URL", f"redis://127.0.0.1:{port}/0")
        assert probe(client, "/healthz/ready") == (200, {"status": "ok"})
        own_redis.terminate()
        own_redis.wait(timeout=10)
        wait_until(lambda: probe(client, "/healthz/ready") == (
            503, {"status": "unavailable", "failed": ["redis"]}), timeout=10,
            what="ready naming redis")
        assert probe(client, "/healthz/live") == (200, {"status": "ok"})
        own_redis = start_embedded_redis(tmp_path / "redis", port)
        wait_until(lambda: probe(client, "/healthz/ready") == (200, {"status": "ok"}),
                   timeout=10, what="ready again")
    finally:
        own_redis.terminate()
        own_redis.wait(timeout=10)


def unreachable_app(database_url: str, redis_url: str, smtp_server):
    return create_app(app_config(database_url, redis_url, smtp_server.port))


def test_ready_names_a_database_that_refuses(redis_url, smtp_server, tmp_path):
    missing = tmp_path / "no-such-folder" / "newsletter.db"  # SQLite cannot open it
    with unreachable_app(f"sqlite:///{missing}", redis_url, smtp_server).test_client() as web:
        assert probe(web, "/healthz/ready") == (
            503, {"status": "unavailable", "failed": ["database"]})
        assert probe(web, "/healthz/live") == (200, {"status": "ok"})


def test_ready_answers_within_its_deadline_when_the_database_hangs(redis_url, smtp_server):
    # A database host that accepts the connection and never says a word: the probe
    # still answers, naming the database, and leaks nothing of the error.
    silent = socket.create_server(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    answers: list = []
    try:
        web = unreachable_app(f"postgresql+psycopg://postgres:hunter2@127.0.0.1:{port}/x",
                              redis_url, smtp_server).test_client()
        asker = threading.Thread(
            target=lambda: answers.append(web.get("/healthz/ready")), daemon=True)
        asker.start()
        wait_until(lambda: answers, timeout=10, what="an answer while the database hangs")
        response = answers[0]
        assert (response.status_code, response.get_json()) == (
            503, {"status": "unavailable", "failed": ["database"]})
        assert b"hunter2" not in response.data and str(port).encode() not in response.data
    finally:
        silent.close()
