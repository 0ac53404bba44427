"""The keys the data depends on come from settings, never from a file generated on
first use: a process without them, or with another suppression key than its
database's, stops at start with one line naming the setting."""

from __future__ import annotations

import os
import sys

import pytest

from tests.helpers import run, subprocess_env

FLASK = (sys.executable, "-m", "flask", "--app", "newsletter")


def production_env(instance, database_url: str, **settings: str) -> dict[str, str]:
    """An operator's environment: FLASK_DEBUG unset, nothing but what is given."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("NEWSLETTER_") and key != "FLASK_DEBUG"}
    env.update(NEWSLETTER_INSTANCE_PATH=str(instance), NEWSLETTER_DATABASE_URL=database_url)
    env.update({f"NEWSLETTER_{name}": value for name, value in settings.items()})
    return env


def generated_keys(instance) -> dict[str, str]:
    result = run(*FLASK, "keys", "generate", env=production_env(instance, "sqlite://"))
    assert result.returncode == 0, result.stderr
    pairs = dict(line.split("=", 1) for line in result.stdout.splitlines())
    return {name.removeprefix("NEWSLETTER_"): value for name, value in pairs.items()}


def test_keys_generate_runs_before_any_key_exists_and_its_output_starts_the_app(tmp_path):
    keys = generated_keys(tmp_path / "instance")
    assert set(keys) == {"SECRET_KEY", "SUPPRESSION_KEY", "BOUNCE_KEY"}
    assert all(len(value) == 64 for value in keys.values())
    assert generated_keys(tmp_path / "instance") != keys  # fresh every time
    database = f"sqlite:///{tmp_path / 'news.db'}"
    env = production_env(tmp_path / "instance", database, **keys)
    upgraded = run(*FLASK, "db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    listed = run(*FLASK, "digest", "list", env=env)
    assert listed.returncode == 0, listed.stderr


@pytest.mark.parametrize("settings, named", [
    ({"SECRET_KEY": "k" * 64}, "NEWSLETTER_SUPPRESSION_KEY is not set"),
    ({"SECRET_KEY": "k" * 64, "SUPPRESSION_KEY": "short"}, "NEWSLETTER_SUPPRESSION_KEY"),
    ({"SUPPRESSION_KEY": "s" * 64}, "NEWSLETTER_SECRET_KEY is not set"),
    ({"SECRET_KEY": "k" * 64, "SUPPRESSION_KEY": "s" * 64, "BOUNCE_KEY": "pinned"},
     "NEWSLETTER_BOUNCE_KEY"),
])
def test_a_missing_or_malformed_key_stops_the_process_with_one_line(tmp_path, settings, named):
    instance = tmp_path / "instance"
    result = run(*FLASK, "digest", "list",
                 env=production_env(instance, f"sqlite:///{tmp_path / 'news.db'}", **settings))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert named in lines[0] and "flask --app newsletter keys generate" in lines[0]
    assert not (instance / "suppression-key").exists()  # nothing generated on the side


def test_an_instance_folder_with_a_key_an_earlier_version_made_says_where_it_is(tmp_path):
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / "suppression-key").write_text("e" * 64)
    result = run(*FLASK, "digest", "list", env=production_env(
        instance, f"sqlite:///{tmp_path / 'news.db'}", SECRET_KEY="k" * 64))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "NEWSLETTER_SUPPRESSION_KEY" in lines[0]
    assert str(instance / "suppression-key") in lines[0]


def test_another_suppression_key_than_the_databases_refuses_to_start(app, clean_state,
                                                                    tmp_path):
    """A second host, a restore or a new virtualenv started with a fresh key would let
    every erased address subscribe again: it stops instead, naming the setting."""
    first = run(*FLASK, "digest", "list", env=subprocess_env(
        app, INSTANCE_PATH=str(tmp_path / "host-a")))
    assert first.returncode == 0, first.stderr  # the first start records the key

    other = run(*FLASK, "digest", "list", env=subprocess_env(
        app, INSTANCE_PATH=str(tmp_path / "host-b"), SUPPRESSION_KEY="x" * 64))
    assert other.returncode != 0
    lines = other.stderr.strip().splitlines()
    assert len(lines) == 1 and "NEWSLETTER_SUPPRESSION_KEY is not the key" in lines[0]

    again = run(*FLASK, "digest", "list", env=subprocess_env(
        app, INSTANCE_PATH=str(tmp_path / "host-b")))
    assert again.returncode == 0, again.stderr
