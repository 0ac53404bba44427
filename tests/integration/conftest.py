"""Fixtures that several integration test modules use."""

from __future__ import annotations

import subprocess
import sys

import pytest

from newsletter.devstack import free_port, wait_for_port
from tests.helpers import ROOT, subprocess_env


@pytest.fixture
def start_receiver(app):
    """Starts a `flask bounces serve` with these settings on a free port: its port."""
    processes = []

    def start(**settings) -> int:
        port = free_port()
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "newsletter", "bounces", "serve",
             "--host", "127.0.0.1", "--port", str(port)],
            env=subprocess_env(app, **settings), cwd=ROOT, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL))
        wait_for_port(port, timeout=30)
        return port

    try:
        yield start
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=15)


@pytest.fixture
def receiver(start_receiver):
    """A running `flask bounces serve` on a free port: its port."""
    return start_receiver()
