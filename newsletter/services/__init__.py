"""The business rules. Views, Celery tasks and CLI commands all call these."""
