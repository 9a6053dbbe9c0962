"""The gateway's Celery tasks: one naming scheme ("<app>.<task>", given explicitly), and one beat schedule (the
settings' ``CELERY_BEAT_SCHEDULE``) that names only tasks that exist."""

import re
from pathlib import Path

from django.apps import apps
from django.conf import settings

from mns_site.celery import app as celery_app

# Our installed apps (the ones in this repository) that have a tasks module.
APPS_WITH_TASKS = {
    config.name
    for config in apps.get_app_configs()
    if Path(config.path).is_relative_to(settings.BASE_DIR) and (Path(config.path) / "tasks.py").exists()
}


def our_tasks() -> dict[str, str]:
    """Every task the worker registers from our apps: {name: the module that defines it}."""
    celery_app.loader.import_default_modules()  # the autodiscovery a worker does at start-up
    return {
        name: task.__module__
        for name, task in celery_app.tasks.items()
        if task.__module__.split(".")[0] in APPS_WITH_TASKS
    }


def test_every_app_with_tasks_registers_them_with_the_worker() -> None:
    assert {"core", "maxima", "registry", "handshake", "mailboxes", "federation", "entrypoints"} <= APPS_WITH_TASKS
    assert {module.split(".")[0] for module in our_tasks().values()} == APPS_WITH_TASKS


def test_every_task_is_named_after_its_app_and_itself() -> None:
    misnamed = {
        name: module
        for name, module in our_tasks().items()
        if module != f"{name.split('.')[0]}.tasks" or not re.fullmatch(r"[a-z]+\.[a-z][a-z_]*", name)
    }
    assert misnamed == {}


def test_every_beat_entry_is_keyed_by_the_registered_task_it_runs() -> None:
    schedule = settings.CELERY_BEAT_SCHEDULE
    assert {key: entry["task"] for key, entry in schedule.items()} == {key: key for key in schedule}
    assert set(schedule) - set(our_tasks()) == set()


def test_the_worker_runs_the_settings_schedule_and_no_other() -> None:
    assert celery_app.conf.beat_schedule == settings.CELERY_BEAT_SCHEDULE
    assert sorted(celery_app.conf.beat_schedule) == [
        "core.heartbeat",
        "core.heartbeat_sends",
        "entrypoints.check",
        "entrypoints.publish",
        "federation.compact",
        "federation.reconcile",
        "federation.sync",
        "handshake.clean",
        "mailboxes.expire",
        "maxima.purge",
        "maxima.supervise_node",
        "maxima.sweep_inbound",
        "maxima.sweep_outbound",
        "onchain.watch",
        "registry.name_holds_expire",
        "transparency.compute",
    ]
