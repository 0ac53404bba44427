"""The wheel carries every package, the templates and the migrations (CI installs it and
runs .ci/wheel_smoke.py); here, the pieces that can be checked without building it."""

import shutil
import subprocess
import sys
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


def test_building_the_wheel_leaves_no_build_folders_in_the_tree(tmp_path):
    """`pip wheel .` (what `pip install .` runs too) in a copy of the tree: a wheel comes
    out, and no build/ or *.egg-info stays behind in the tree."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, check=True).stdout.decode()
    tree = tmp_path / "tree"
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():  # a file deleted in the worktree is still listed
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, tree / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                            "--disable-pip-version-check", "--wheel-dir", str(tmp_path / "dist"),
                            str(tree)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-2000:]
    assert len(list((tmp_path / "dist").glob("newsletter-*.whl"))) == 1
    left = sorted(path.name for path in tree.iterdir()
                  if path.name == "build" or path.name.endswith(".egg-info"))
    assert left == []


def test_an_instance_folder_that_cannot_be_made_stops_the_app_naming_the_setting(tmp_path):
    """As a service user, the default folder inside a root-owned virtualenv fails like
    this; the message says which setting moves it instead of a PermissionError trace."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match=f"instance folder {blocker}/state cannot be used "
                                          r".*set NEWSLETTER_INSTANCE_PATH"):
        create_app({"TESTING": True, "INSTANCE_PATH": str(blocker / "state")})
