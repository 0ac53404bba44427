"""The wheel carries every package, the templates and the migrations (CI installs it and
runs .ci/wheel_smoke.py); here, the pieces that can be checked without building it."""

import tomllib
from pathlib import Path

import pytest

from newsletter import create_app, default_instance_path, resource_dir
from newsletter.config import ConfigError, load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_python_package_of_the_tree_is_in_the_wheel():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {".".join(init.parent.relative_to(ROOT).parts)
               for top in ("newsletter", "workers") for init in (ROOT / top).rglob("__init__.py")}
    listed = set(setuptools["packages"])
    assert on_disk <= listed, f"add to [tool.setuptools] packages: {sorted(on_disk - listed)}"
    for package, folder in setuptools["package-dir"].items():
        assert package in listed and (ROOT / folder).is_dir()


def test_templates_and_migrations_resolve_to_the_top_level_folders_in_the_source_tree():
    assert resource_dir("templates") == ROOT / "templates"
    assert (resource_dir("migrations") / "versions").is_dir()
    assert default_instance_path() == str(ROOT / "instance")


def test_the_instance_folder_is_configurable(tmp_path):
    folder = tmp_path / "state"
    app = create_app({"TESTING": True, "INSTANCE_PATH": str(folder)})
    assert app.instance_path == str(folder) and folder.is_dir()
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{folder / 'newsletter.db'}"
    assert app.extensions["migrate"].directory == str(ROOT / "migrations")


def test_a_relative_instance_folder_is_refused_with_the_variables_name():
    with pytest.raises(ConfigError, match="NEWSLETTER_INSTANCE_PATH"):
        load_settings({"NEWSLETTER_INSTANCE_PATH": "instance"})
    assert load_settings({"NEWSLETTER_INSTANCE_PATH": "~/news"})["INSTANCE_PATH"] == str(
        Path("~/news").expanduser())
