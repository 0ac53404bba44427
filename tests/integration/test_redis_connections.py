"""Redis under Sentinel, for real: a master, a replica and three sentinels (Debian's
redis-server) started here; the master is killed mid-send. The workers, the sweeper and
the app follow the promoted replica: nobody is missing, and whoever got two copies
(at most two readers) is on the record as resent."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import redis
import redis.sentinel
from redis.sentinel import Sentinel

from newsletter.celery_setup import celery_init_app
from newsletter.db import unit_of_work
from newsletter.devstack import free_port, wait_for_port
from newsletter.issues import digests
from tests.factories import add_article, add_subscribers
from tests.helpers import (
    received_by,
    send_ledger,
    start_celery_worker,
    stop_processes,
    subprocess_env,
    sweep_like_beat_until_sent,
    wait_until,
)

IN_CI = os.environ.get("CI") == "true"
MASTER = "newsletter"
REDIS_SERVER = shutil.which("redis-server")


def start_redis(folder: Path, port: int, *extra: str) -> subprocess.Popen:
    folder.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
         "--save", "", "--appendonly", "no", "--daemonize", "no", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_for_port(port)
    return process


def start_sentinel(folder: Path, port: int, master_port: int) -> subprocess.Popen:
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "sentinel.conf"  # a sentinel rewrites its file: one each
    conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {folder}\n"
                    f"sentinel monitor {MASTER} 127.0.0.1 {master_port} 2\n"
                    f"sentinel down-after-milliseconds {MASTER} 1000\n"
                    f"sentinel failover-timeout {MASTER} 5000\n"
                    f"sentinel parallel-syncs {MASTER} 1\n")
    process = subprocess.Popen([REDIS_SERVER, str(conf), "--sentinel"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    wait_for_port(port)
    return process


@pytest.fixture
def sentinels(tmp_path):
    if REDIS_SERVER is None:
        message = "Debian's redis-server is needed (apt-get install redis-server)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    master_port, replica_port = free_port(), free_port()
    processes = {"master": start_redis(tmp_path / "master", master_port)}
    processes["replica"] = start_redis(tmp_path / "replica", replica_port,
                                       "--replicaof", "127.0.0.1", str(master_port))
    ports = [free_port() for _ in range(3)]
    for number, port in enumerate(ports):
        processes[f"sentinel{number}"] = start_sentinel(tmp_path / f"s{number}", port,
                                                        master_port)
    watcher = Sentinel([("127.0.0.1", port) for port in ports], socket_timeout=1)
    wait_until(lambda: len(watcher.discover_slaves(MASTER)) == 1
               and all(len(redis.Redis(port=port).sentinel_sentinels(MASTER)) == 2
                       for port in ports), 30, "the sentinels to know the replica and each other")
    try:
        yield processes, ports, master_port, watcher
    finally:
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=10)


def test_a_master_killed_mid_send_loses_nobody(app, client, mailbox, sentinels, monkeypatch):
    processes, ports, master_port, watcher = sentinels
    settings = dict(SEND_LEASE=5, SEND_BATCH_SIZE=25, SEND_CONCURRENCY=4,
                    REDIS_SENTINEL_MASTER=MASTER)
    env = subprocess_env(app, **settings,
                         REDIS_SENTINELS=",".join(f"127.0.0.1:{port}" for port in ports))
    # This test's app under Sentinel too (its settings are put back after the test):
    # its enqueues, sweeps and readiness go to whichever Redis is the master.
    for name, value in {**settings, "REDIS_SENTINELS": tuple(
            ("127.0.0.1", port) for port in ports)}.items():
        monkeypatch.setitem(app.config, name, value)
    monkeypatch.delitem(app.extensions, "redis", raising=False)
    celery = celery_init_app(app)
    mailbox.delay = 0.02
    readers = 200 if IN_CI else 400
    add_subscribers(app, readers)
    add_article(app)
    worker = start_celery_worker(env, 2)
    try:
        with app.app_context(), unit_of_work():
            digest_id = digests.send_now().id
        mailbox.wait_for(readers // 4, timeout=60)
        os.killpg(processes["master"].pid, signal.SIGKILL)  # mid-send
        processes["master"].wait(timeout=10)

        def promoted() -> bool:
            try:
                return watcher.discover_master(MASTER)[1] != master_port
            except redis.sentinel.MasterNotFoundError:  # while they agree on a new one
                return False

        wait_until(promoted, 60, "the sentinels to promote the replica")
        wait_until(lambda: client.get("/healthz/ready").status_code == 200, 30,
                   "/healthz/ready to answer 200 after the failover")
        sweep_like_beat_until_sent(app, app, digest_id, timeout=180)
    finally:
        stop_processes(worker)
        celery.close()

    _, counts, rows = send_ledger(app, digest_id)
    got = received_by(mailbox)
    missing = [email for email, _ in rows if got[email] == 0]
    twice = [email for email, _ in rows if got[email] > 1]
    assert len(rows) == readers and missing == []
    assert len(twice) <= 2 and max(got.values()) <= 2
    assert counts["sent"] + counts["unknown"] == readers, counts
    flagged = {email for email, delivery in rows
               if delivery.resent_after_crash or delivery.status.value == "unknown"}
    assert set(twice) <= flagged
    print(f"\nmaster killed: {len(twice)} received twice, {len(flagged)} flagged; "
          f"{Counter(d.status.value for _, d in rows)}")
