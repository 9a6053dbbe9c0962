"""The layering of docs/architecture.md, held against every import of the code, deferred ones included.

Each part may import only the parts below it. A lower part that must act on a higher one takes a registration
from it (``maxima.routing.register_type``, ``core.health.register``, ``handshake.services.register_completion``,
``federation.services.kinds.register``, …) instead of importing it. Tests are left out: a test may wire parts
together.
"""

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = "mns_client.protocol"
DOMAIN = ["maxima", "onchain", "federation", "registry", "handshake", "mailboxes"]

# What each part may import, besides itself, the standard library and third-party packages.
ALLOWED: dict[str, set[str]] = {
    PROTOCOL: set(),
    "mns_client": {PROTOCOL},
    "simnet": {PROTOCOL},
    "core": {PROTOCOL},
    "maxima": {PROTOCOL, "core"},
    "onchain": {PROTOCOL, "core", "maxima"},
    "federation": {PROTOCOL, "core", "maxima", "onchain"},
    "registry": {PROTOCOL, "core", "maxima", "onchain", "federation"},
    "handshake": {PROTOCOL, "core", "maxima", "onchain", "federation", "registry"},
    "mailboxes": {PROTOCOL, "core", "maxima", "onchain", "federation", "registry", "handshake"},
    "registration": {PROTOCOL, "core", *DOMAIN},
    "transparency": {PROTOCOL, "core", *DOMAIN},
    "entrypoints": {PROTOCOL, "core", *DOMAIN, "transparency"},
    "mns_site": {PROTOCOL, "mns_client", "simnet", "core", *DOMAIN, "registration", "transparency", "entrypoints"},
    "testsupport": {
        PROTOCOL,
        "mns_client",
        "simnet",
        "core",
        *DOMAIN,
        "registration",
        "transparency",
        "entrypoints",
        "mns_site",
    },
    "interop": set(),  # starts real Minima nodes: the standard library only
}
ALLOWED["bench"] = ALLOWED["testsupport"] | {"testsupport"}
ALLOWED["faults"] = ALLOWED["testsupport"] | {"testsupport"}
# No web framework below the gateway: the client and simnet run without Django installed.
DJANGO_FREE = {PROTOCOL, "mns_client", "simnet", "interop"}
FRAMEWORKS = {"django", "rest_framework", "drf_spectacular", "celery", "kombu"}


def part_of(module: str) -> str | None:
    if module == PROTOCOL or module.startswith(PROTOCOL + "."):
        return PROTOCOL
    top = module.split(".")[0]
    return top if top in ALLOWED else None


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if relative.parts[0] in {".venv", "var", "node_modules", "docs"} or "tests" in relative.parts:
            continue
        name = ".".join(relative.with_suffix("").parts).removesuffix(".__init__")
        if part_of(name) is not None:
            found.append((name, path))
    return found


def imports(name: str, path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports, at any depth (function-level imports too), absolute or relative."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
        elif _is_dynamic_import(node):
            found.append((node.lineno, node.args[0].value))
    return found


def _is_dynamic_import(node: ast.AST) -> bool:
    """``importlib.import_module("x")``, ``__import__("x")``, Django's ``import_string("x.y")`` with a literal."""
    if not isinstance(node, ast.Call) or not node.args or not isinstance(node.args[0], ast.Constant):
        return False
    name = getattr(node.func, "attr", getattr(node.func, "id", ""))
    return name in {"import_module", "__import__", "import_string"} and isinstance(node.args[0].value, str)


def violations() -> list[str]:
    wrong = []
    for name, path in modules():
        mine = part_of(name)
        for line, imported in imports(name, path):
            theirs = part_of(imported)
            where = f"{path.relative_to(ROOT)}:{line} imports {imported}"
            if mine in DJANGO_FREE and imported.split(".")[0] in FRAMEWORKS:
                wrong.append(f"{where}: {mine} runs without Django")
            elif theirs is not None and theirs != mine and theirs not in ALLOWED[mine]:
                wrong.append(f"{where}: {mine} may not import {theirs}")
    return sorted(set(wrong))


# Top-level files and folders that hold no code of a part.
NOT_PARTS = {"conftest.py", "manage.py", "gunicorn.conf.py", "docs", "var", ".venv", "node_modules", "dapp", "interop"}


def test_every_top_level_package_is_a_part() -> None:
    """A new top-level package must be placed in the layers, or its imports (and imports of it) go unchecked."""
    tops = {path.relative_to(ROOT).parts[0] for path in ROOT.rglob("*.py")}
    assert tops - set(ALLOWED) - {"mns_client"} - NOT_PARTS == set()


def test_a_dynamic_import_with_a_literal_is_read_as_an_import(tmp_path: Path) -> None:
    path = tmp_path / "x.py"
    path.write_text("import importlib\nimportlib.import_module('registration.services')\n__import__('mailboxes')\n")
    assert {module for _line, module in imports("core.x", path)} >= {"registration.services", "mailboxes"}


def test_every_import_goes_down_the_layers() -> None:
    assert violations() == []


def test_the_parts_import_each_other_in_no_cycle() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules():
        for _line, imported in imports(name, path):
            theirs = part_of(imported)
            if theirs is not None and theirs != part_of(name):
                graph[part_of(name)].add(theirs)
    done: set[str] = set()

    def visit(part: str, trail: tuple[str, ...]) -> None:
        assert part not in trail, " -> ".join((*trail, part))
        if part not in done:
            for lower in graph[part]:
                visit(lower, (*trail, part))
            done.add(part)

    for part in list(graph):
        visit(part, ())


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def f():\n    from registration import services\n", "core/x.py:2 imports registration.services"),
        ("from mailboxes.models import Mailbox\n", "core/x.py:1 imports mailboxes.models"),
    ],
)
def test_the_check_finds_a_forbidden_import_even_inside_a_function(tmp_path: Path, source: str, expected: str) -> None:
    path = tmp_path / "x.py"
    path.write_text(source)
    found = [f"core/x.py:{line} imports {module}" for line, module in imports("core.x", path)]
    assert expected in found
    assert part_of(expected.split(" imports ")[1]) not in ALLOWED["core"]


def test_relative_imports_are_read_as_the_modules_they_name(tmp_path: Path) -> None:
    path = tmp_path / "cli.py"
    path.write_text("from .sdk import Client\nfrom .protocol.codecs import to_hex\n")
    assert {module for _line, module in imports("mns_client.cli", path)} >= {"mns_client.sdk", PROTOCOL + ".codecs"}
