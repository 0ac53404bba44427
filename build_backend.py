"""setuptools' build backend, minus what it leaves in the checkout.

setuptools builds in ``build/`` and writes ``newsletter.egg-info`` beside the code,
so ``pip install .`` and ``pip wheel .`` left both in the source tree; the wheel
needs neither afterwards. Each hook below runs setuptools' own, then removes those
folders if that build made them. (An editable install keeps its egg-info.)
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from setuptools import build_meta
from setuptools.build_meta import *  # noqa: F403  every other hook, as setuptools has it

LEFTOVERS = ("build", "newsletter.egg-info")  # relative to the project, where pip builds


def _tidy(hook: Callable[..., str]) -> Callable[..., str]:
    def run(*args, **kwargs) -> str:
        made = [Path(name) for name in LEFTOVERS if not Path(name).exists()]
        try:
            return hook(*args, **kwargs)
        finally:
            for path in made:
                shutil.rmtree(path, ignore_errors=True)

    return run


get_requires_for_build_wheel = _tidy(build_meta.get_requires_for_build_wheel)
prepare_metadata_for_build_wheel = _tidy(build_meta.prepare_metadata_for_build_wheel)
build_wheel = _tidy(build_meta.build_wheel)
get_requires_for_build_sdist = _tidy(build_meta.get_requires_for_build_sdist)
build_sdist = _tidy(build_meta.build_sdist)
