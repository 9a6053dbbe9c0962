"""Conventions of the gateway's code that one piece of the kernel keeps, checked over the source of every app.

Each convention had copies in the apps that drifted apart; these tests keep a new copy from appearing."""

import ast
from collections.abc import Iterator
from pathlib import Path

from django.apps import apps
from django.conf import settings

# Our installed apps (the ones in this repository, not the packages of a virtualenv inside it, nor the tests'
# own), and the wiring.
APPS = sorted(
    {
        config.name.split(".")[0]
        for config in apps.get_app_configs()
        if Path(config.path).is_relative_to(settings.BASE_DIR) and "site-packages" not in Path(config.path).parts
    }
    - {"testsupport"}
    | {"mns_site"}
)


def _modules() -> Iterator[tuple[str, ast.Module]]:
    """Every module of the gateway's apps but their tests, as (path from the repository, syntax tree)."""
    for app in APPS:
        for path in sorted((Path(settings.BASE_DIR) / app).rglob("*.py")):
            relative = path.relative_to(settings.BASE_DIR).as_posix()
            if "/tests/" not in relative and "/migrations/" not in relative:
                yield relative, ast.parse(path.read_text(), filename=relative)


def _calls(tree: ast.Module) -> Iterator[ast.Call]:
    return (node for node in ast.walk(tree) if isinstance(node, ast.Call))


def test_the_scan_reads_every_app() -> None:
    assert {path.split("/")[0] for path, _ in _modules()} == set(APPS)
    assert set(APPS) >= {"core", "maxima", "federation", "registry", "handshake", "mailboxes", "entrypoints"}


def test_only_the_kernel_names_the_api_throttles() -> None:
    defined = [
        path
        for path, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "THROTTLES" for t in node.targets)
    ]
    assert defined == ["core/api.py"]


def test_only_the_kernel_builds_the_schema_of_an_error() -> None:
    built = [
        path
        for path, tree in _modules()
        for call in _calls(tree)
        if any(isinstance(arg, ast.Name) and arg.id == "ErrorSerializer" for arg in call.args)
    ]
    assert sorted(set(built)) == ["core/api.py", "core/schema.py"]


def test_only_the_kernel_refuses_a_staff_action_without_a_reason() -> None:
    refusing = [
        path
        for path, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value == "reason_required"
    ]
    assert refusing == ["core/staff.py"]


def test_only_the_queue_module_publishes_a_task() -> None:
    """Tasks are enqueued through ``core.queue`` (after the commit, never failing the caller), not by hand."""
    publishing = [
        f"{path}:{call.lineno}"
        for path, tree in _modules()
        for call in _calls(tree)
        if isinstance(call.func, ast.Attribute) and call.func.attr in ("delay", "apply_async", "send_task")
    ]
    assert [where.split(":")[0] for where in publishing] == ["core/queue.py"], publishing


def test_no_app_adds_to_the_beat_schedule_itself() -> None:
    """The one beat schedule is ``CELERY_BEAT_SCHEDULE`` in the settings."""
    adding = [
        path
        for path, tree in _modules()
        for call in _calls(tree)
        if isinstance(call.func, ast.Attribute) and call.func.attr == "add_periodic_task"
    ]
    assert adding == []
