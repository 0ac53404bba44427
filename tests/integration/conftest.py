"""Fixtures that several integration test modules use."""

from __future__ import annotations

import subprocess
import sys

import pytest

from newsletter.devstack import free_port, wait_for_port
from tests.helpers import ROOT, subprocess_env


@pytest.fixture
def receiver(app):
    """A running `flask bounces serve` on a free port: its port."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "newsletter", "bounces", "serve",
         "--host", "127.0.0.1", "--port", str(port)],
        env=subprocess_env(app), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, timeout=30)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=15)
