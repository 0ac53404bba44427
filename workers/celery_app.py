"""The Celery entry point: ``celery -A workers.celery_app worker|beat``."""

from newsletter import create_app

flask_app = create_app()
celery_app = flask_app.extensions["celery"]
celery_app.conf.include = ["workers.tasks"]
