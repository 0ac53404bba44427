"""The systemd units and the environment file in deploy/: systemd accepts them, and
they keep the promises a send depends on (a warm shutdown that outlasts a batch, one
node name per worker, every queue consumed, state outside the virtualenv)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from newsletter import jobs
from newsletter.config import ENV_PREFIX, SETTINGS, ConfigError, load_settings
from newsletter.config_checks import LEASE_MARGIN
from newsletter.keys import check_keys

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SERVICES = sorted(DEPLOY.glob("*.service"))
VENV_BIN = "/opt/newsletter/venv/bin/"
WORKERS = ("newsletter-worker-transactional.service", "newsletter-worker-bulk.service",
           "newsletter-worker-webhooks.service")


def unit(path: Path) -> dict[str, list[str]]:
    """``Key`` -> its values in order (a key may repeat), continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    values: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def one(path: Path, key: str) -> str:
    [value] = unit(path)[key]
    return value


def test_every_process_has_a_unit():
    names = {path.name for path in SERVICES}
    assert names == {"newsletter-web.service", "newsletter-beat.service",
                     "newsletter-bounces.service", *WORKERS}
    target = unit(DEPLOY / "newsletter.target")
    assert {name for line in target["Wants"] for name in line.split()} == names


def test_systemd_analyze_verify_accepts_the_units(tmp_path):
    """verify needs the ExecStart programs to exist: the copies run this virtualenv's."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        if os.environ.get("CI") == "true":
            pytest.fail("systemd-analyze is missing in CI (.ci/run installs systemd)")
        pytest.skip("systemd-analyze not installed (apt-get install systemd)")
    copies = []
    for path in [*SERVICES, DEPLOY / "newsletter.target"]:
        copy = tmp_path / path.name
        copy.write_text(path.read_text().replace(VENV_BIN, f"{Path(sys.executable).parent}/"))
        copies.append(str(copy))
    result = subprocess.run([analyze, "verify", "--man=no", *copies], capture_output=True,
                            text=True, cwd=tmp_path)
    # A bad value (KillMode=bogus) is only a warning for systemd: any output fails too.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.parametrize("path", SERVICES, ids=lambda path: path.stem)
def test_each_service_runs_as_the_service_user_with_state_outside_the_venv(path):
    values = unit(path)
    assert one(path, "User") == "newsletter" and one(path, "Group") == "newsletter"
    assert one(path, "EnvironmentFile") == "/etc/newsletter/newsletter.env"
    assert "NEWSLETTER_INSTANCE_PATH=/var/lib/newsletter" in values["Environment"]
    assert one(path, "StateDirectory") == "newsletter"
    assert one(path, "ExecStart").startswith(VENV_BIN)
    # SIGTERM to the main process alone, so it can stop its children in order.
    assert one(path, "KillMode") == "mixed"
    assert one(path, "PartOf") == "newsletter.target"


def test_workers_have_their_own_node_names_and_consume_every_queue():
    queues, nodes = set(), []
    for name in WORKERS:
        command = one(DEPLOY / name, "ExecStart").split()
        nodes.append(command[command.index("-n") + 1])
        queues |= set(command[command.index("-Q") + 1].split(","))
    assert nodes == ["transactional@%%H", "bulk@%%H", "webhooks@%%H"]  # %% is a literal % in a unit
    default_prefix = load_settings({})["TASK_QUEUE"]
    assert queues == {jobs.queue_name(default_prefix, job.queue)
                      for job in jobs.REGISTRY.values()}


def test_the_bulk_worker_may_finish_a_batch_before_it_is_killed():
    """A batch at 1 message a second, with the margin the lease check uses."""
    batch_size = load_settings({})["SEND_BATCH_SIZE"]
    stop_timeout = int(one(DEPLOY / "newsletter-worker-bulk.service", "TimeoutStopSec"))
    assert stop_timeout >= LEASE_MARGIN * batch_size / 1.0


def environment_file() -> dict[str, str]:
    """The example file read as systemd reads an EnvironmentFile (quotes stripped)."""
    values = {}
    for line in (DEPLOY / "newsletter.env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip().removeprefix('"').removesuffix('"')
    return values


def test_the_example_environment_file_names_only_real_settings_with_valid_values():
    values = environment_file()
    known = {ENV_PREFIX + setting.name for setting in SETTINGS}
    assert set(values) <= known, f"not settings: {sorted(set(values) - known)}"
    settings = load_settings(values)  # every value given parses
    assert settings["SMTP_SECURITY"] == "starttls"
    # Copied unchanged, it refuses to start: the secret key is left for the operator.
    with pytest.raises(ConfigError, match="NEWSLETTER_SECRET_KEY"):
        check_keys(settings)


def test_the_example_settings_that_are_commented_out_are_real_settings_too():
    text = (DEPLOY / "newsletter.env.example").read_text()
    named = set(re.findall(r"^#(NEWSLETTER_[A-Z_]+)=", text, flags=re.MULTILINE))
    assert named and named <= {ENV_PREFIX + setting.name for setting in SETTINGS}
