"""GET /metrics: only for a token with metrics:read, and the figures it carries are the
ledger's and the queues' after a real send (a real worker writing its histograms in
prometheus-client's multi-process mode)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event, update

from newsletter.db import unit_of_work
from newsletter.editors import accounts
from newsletter.extensions import db
from newsletter.models import Subscriber, SubscriberStatus
from newsletter.queue import send_task_now
from tests.factories import add_article, add_editor, add_subscribers, send_now
from tests.helpers import (
    start_celery_worker,
    stop_processes,
    subprocess_env,
    wait_until_sent,
)


def token_with(app, *scopes: str) -> str:
    add_editor(app, "ops@example.com", "owner")
    with app.app_context(), unit_of_work():
        token, _ = accounts.create_api_token("ops@example.com", "prometheus", list(scopes))
    return token


def scrape(client, token: str) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def total(samples, name: str, **labels) -> float:
    wanted = set(labels.items())
    return sum(value for (sample, sample_labels), value in samples.items()
               if sample == name and wanted <= set(sample_labels))


def test_metrics_refuse_without_the_scope_and_compute_nothing(app, client):
    token = token_with(app, "subscribers:read")
    statements = []

    def seen(_conn, _cursor, statement, *_args):
        statements.append(statement)

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", seen)
        try:
            assert client.get("/metrics").status_code == 401
            assert client.get("/metrics", headers={"Authorization": "Bearer nl_nonsense"}
                              ).status_code == 401
            denied = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        finally:
            event.remove(db.engine, "before_cursor_execute", seen)
    assert denied.status_code == 403
    assert denied.get_json()["missing_scope"] == "metrics:read"
    assert not [s for s in statements if "deliveries" in s or "count(" in s.lower()]
    assert b"newsletter_" not in denied.data


def test_an_editor_cannot_hold_the_metrics_scope(app, client):
    add_editor(app, "owner@example.com", "owner")  # the first editor is always an owner
    add_editor(app, "ed@example.com", "editor")
    with app.app_context():
        try:
            accounts.create_api_token("ed@example.com", "prometheus", ["metrics:read"])
        except accounts.EditorError as error:
            assert "metrics:read" in str(error)
        else:
            raise AssertionError("an editor got a metrics token")


def test_queue_lengths_and_http_requests_are_counted(app, client):
    token = token_with(app, "metrics:read")
    before = scrape(client, token)
    for _ in range(3):
        assert client.get("/healthz/live").status_code == 200
    client.get("/no/such/page/12345")
    with app.app_context():
        for _ in range(4):  # nobody consumes this test's queues
            assert send_task_now("workers.tasks.sweep_deliveries")
    after = scrape(client, token)
    queue = f"{app.config['TASK_QUEUE']}.maintenance"
    assert total(after, "newsletter_queue_length", queue=queue) == 4
    assert total(after, "newsletter_queue_length",
                 queue=f"{app.config['TASK_QUEUE']}.bulk") == 0
    assert total(after, "newsletter_http_requests_total", route="/healthz/live",
                 status="200") - total(before, "newsletter_http_requests_total",
                                       route="/healthz/live", status="200") == 3
    # An unknown path is one label value, whatever the path: no label per probe.
    assert total(after, "newsletter_http_requests_total", route="(unmatched)") >= 1
    assert not [labels for (name, labels) in after if "12345" in str(labels)]
    assert total(after, "newsletter_redis_up") == 1


def test_metrics_after_a_real_send(app, client, mailbox, tmp_path, monkeypatch):
    token = token_with(app, "metrics:read")
    folder = tmp_path / "prometheus"
    folder.mkdir()
    monkeypatch.setitem(app.config, "METRICS_MULTIPROC_DIR", str(folder))
    ids = add_subscribers(app, 14)
    with app.app_context(), unit_of_work():  # two readers who get nothing
        db.session.execute(update(Subscriber).where(Subscriber.id.in_(ids[:2]))
                           .values(status=SubscriberStatus.UNSUBSCRIBED))
    add_article(app)
    env = subprocess_env(app, SEND_BATCH_SIZE=5)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    worker = start_celery_worker(env, 2)
    try:
        digest_id = send_now(app)
        progress = wait_until_sent(app, digest_id)
    finally:
        stop_processes(worker)
    assert progress["sent"] == 12 and len(mailbox.messages) == 12
    samples = scrape(client, token)
    assert total(samples, "newsletter_subscribers", status="active") == 12
    assert total(samples, "newsletter_subscribers", status="unsubscribed") == 2
    assert total(samples, "newsletter_deliveries_total", status="sent") == 12
    assert total(samples, "newsletter_deliveries_total", status="failed") == 0
    assert total(samples, "newsletter_deliveries_open") == 0
    assert total(samples, "newsletter_sends", status="sending") == 0
    relay = f"127.0.0.1:{app.config['SMTP_PORT']}"
    # Written by the worker's processes, read from their files by the web process.
    assert total(samples, "newsletter_smtp_send_seconds_count", relay=relay,
                 outcome="sent") == 12
    assert total(samples, "newsletter_batch_seconds_count") >= 3  # 12 readers, 5 a batch
    assert (("newsletter_relay_circuit_open", (("relay", relay),)) in samples
            and total(samples, "newsletter_relay_circuit_open") == 0)
    assert total(samples, "newsletter_send_hard_bounce_percent") == 0
