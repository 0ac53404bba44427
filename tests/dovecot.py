"""A real Dovecot IMAP server for tests (Debian's dovecot-imapd), on a loopback port.

Temporary configuration: one passwd-file user, a maildir in a temporary folder,
implicit TLS (imaps) and STARTTLS (imap, plaintext login disabled) with a
self-signed certificate made here; the client trusts
that certificate through NEWSLETTER_BOUNCE_IMAP_CA_FILE, so TLS is verified as
in production, never switched off.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from newsletter.devstack import free_port, wait_for_port

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
CONFIG = """
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
disable_plaintext_auth = yes
auth_mechanisms = plain
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
mail_location = maildir:{root}/mail/%u
mail_uid = {user}
mail_gid = {group}
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={user} gid={group} home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {starttls_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  chroot =
}}
"""


@dataclass
class Dovecot:
    root: Path
    port: int
    starttls_port: int
    user: str
    password: str
    cert: Path

    def url(self, folder: str = "INBOX", done: str = "Processed", starttls=False) -> str:
        scheme, port = ("imap", self.starttls_port) if starttls else ("imaps", self.port)
        return (f"{scheme}://{self.user}:{self.password}@localhost:{port}/{folder}"
                f"?processed={done}")


def available() -> bool:
    return os.path.exists(DOVECOT) and shutil.which("openssl") is not None


def start() -> tuple[Dovecot, subprocess.Popen]:
    root = Path(tempfile.mkdtemp(prefix="newsletter-dovecot-"))
    root.chmod(0o755)  # dovecot's unprivileged processes read inside
    system_user = "dovecot"
    entry = pwd.getpwnam(system_user)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(root / "key.pem"), "-out", str(root / "cert.pem")],
        check=True, capture_output=True)
    (root / "passwd").write_text("bounces:{PLAIN}mailbox-password\n")
    (root / "mail").mkdir()
    os.chown(root / "mail", entry.pw_uid, entry.pw_gid)
    port, starttls_port = free_port(), free_port()
    (root / "dovecot.conf").write_text(CONFIG.format(
        root=root, port=port, starttls_port=starttls_port, user=system_user, group=system_user))
    process = subprocess.Popen([DOVECOT, "-F", "-c", str(root / "dovecot.conf")],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, timeout=20)
        wait_for_port(starttls_port, timeout=20)
    except RuntimeError:
        process.kill()
        log = (root / "dovecot.log").read_text() if (root / "dovecot.log").exists() else ""
        raise RuntimeError(f"dovecot did not start: {process.stdout.read()!r} {log}") from None
    return (Dovecot(root, port, starttls_port, "bounces", "mailbox-password",
                    root / "cert.pem"), process)


def stop(server: Dovecot, process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
    shutil.rmtree(server.root, ignore_errors=True)
