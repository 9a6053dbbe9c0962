"""The fault suite: the real stack (gunicorn, PostgreSQL, Redis, Celery worker and beat, simnet) under failures.

Run by ``make faults`` (``python -m faults``), which starts a private PostgreSQL cluster for it: the suite stops
and restarts its database, so it never touches the machine's shared one. Not part of ``make test``.
"""
