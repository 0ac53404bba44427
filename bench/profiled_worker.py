"""A Celery worker under cProfile, for ``bench/dispatch.py --profile FILE``:

    python bench/profiled_worker.py FILE -A workers.celery_app worker --pool solo

The stats so far are written to FILE after every task (Celery's exit path skips
``python -m cProfile``'s writing, and the bench stops the worker with a signal).
The clock is the process's CPU time, the bench's figure: waiting for the relay, the
database or a core held by another process is not counted."""

import cProfile
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from celery import signals  # noqa: E402
from celery.__main__ import main  # noqa: E402

profile = cProfile.Profile(time.process_time)
OUTPUT = sys.argv.pop(1)


@signals.task_postrun.connect
def _dump(**_kwargs) -> None:
    profile.dump_stats(OUTPUT)  # stops the profile
    profile.enable()


if __name__ == "__main__":
    sys.argv[0] = "celery"
    profile.enable()
    main()
