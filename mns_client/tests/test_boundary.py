"""The client's boundary, read from the source: every import statement of every module of ``mns_client`` (the tests
aside), function-level (deferred) ones and ``importlib.import_module("…")`` included.

- ``mns_client/protocol/`` is the Django-free core the gateway and simnet share: it imports the standard library,
  the client's dependencies (``pyproject.toml``) and itself, nothing of the user's side (sdk, cli, config, demo,
  listener), of Django or of the gateway.
- The user's side (``mns_client/*.py``) imports the protocol core, itself, the standard library and the client's
  dependencies: it is what ``pip install`` of the client ships, without Django or the gateway.
"""

import ast
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
CLIENT = REPO / "mns_client"
PROTOCOL = "mns_client.protocol"

GATEWAY_PARTS = frozenset(
    {
        "core",
        "maxima",
        "registry",
        "handshake",
        "mailboxes",
        "federation",
        "entrypoints",
        "mns_site",
        "simnet",
        "testsupport",
        "bench",
        "faults",
        "manage",
        "conftest",
    }
)
# The gateway's own stack (requirements/*.txt): named in the message, though any package that is not a client
# dependency is refused anyway.
DJANGO_STACK = frozenset(
    {"django", "rest_framework", "drf_spectacular", "drf_spectacular_sidecar", "whitenoise", "celery", "kombu"}
    | {"redis", "psycopg", "gunicorn", "pytest", "pytest_django"}
)
IMPORT_NAMES = {"pynacl": "nacl"}  # a distribution whose import name differs from its name


def client_dependencies() -> frozenset[str]:
    """The import names of the client's runtime dependencies, from ``pyproject.toml``."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = (canonicalize_name(Requirement(spec).name) for spec in project["dependencies"])
    return frozenset(IMPORT_NAMES.get(name, name) for name in names)


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.Module, package: str) -> Iterator[tuple[int, str, str]]:
    """(line, the statement, each module it imports), relative imports resolved against ``package``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, ast.unparse(node), alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                # ``from pkg import name`` may import a submodule: judge ``pkg.name`` (a name in a module is
                # judged by its module's place anyway).
                yield node.lineno, ast.unparse(node), f"{base}.{alias.name}" if alias.name != "*" else base
        elif isinstance(node, ast.Call) and _is_dynamic_import(node.func) and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield node.lineno, ast.unparse(node), first.value


def _is_dynamic_import(func: ast.expr) -> bool:
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name in {"import_module", "__import__"}


def refusal(target: str, *, in_protocol: bool, dependencies: frozenset[str]) -> str | None:
    """Why ``target`` may not be imported from a client module (None when it may)."""
    top = target.split(".")[0]
    if target == "mns_client.tests" or target.startswith("mns_client.tests."):
        return "the client imports its tests (they are not shipped)"
    if top == "mns_client":
        if in_protocol and not (target == PROTOCOL or target.startswith(PROTOCOL + ".")):
            return f"the protocol core imports the user's side ({target}); only {PROTOCOL} is below it"
        return None
    if top in GATEWAY_PARTS:
        return f"the client imports the gateway ({top})"
    if top in DJANGO_STACK:
        return f"the client imports the gateway's stack ({top}); it needs only {', '.join(sorted(dependencies))}"
    if top in sys.stdlib_module_names or top in dependencies:
        return None
    return f"{top} is not a client dependency (pyproject.toml: {', '.join(sorted(dependencies))})"


def violations(path: Path, source: str, dependencies: frozenset[str]) -> list[str]:
    """One line per forbidden import in ``source`` (the module at ``path``): file, line, statement, why."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    in_protocol = module == PROTOCOL or module.startswith(PROTOCOL + ".")
    found = []
    for line, statement, target in imported(ast.parse(source, filename=str(path)), package):
        reason = refusal(target, in_protocol=in_protocol, dependencies=dependencies)
        if reason:
            found.append(f"{path.relative_to(REPO)}:{line}: {statement}  <- {reason}")
    return found


def client_modules() -> list[Path]:
    return sorted(path for path in CLIENT.rglob("*.py") if "tests" not in path.relative_to(CLIENT).parts)


def test_the_scan_covers_the_protocol_core_and_the_users_side() -> None:
    names = {str(path.relative_to(CLIENT)) for path in client_modules()}

    assert {"protocol/crypto.py", "protocol/rpc.py", "sdk.py", "cli.py", "__main__.py"} <= names
    assert not any(name.startswith("tests") for name in names)


def test_the_client_imports_nothing_of_django_or_the_gateway_and_the_core_nothing_of_the_users_side() -> None:
    dependencies = client_dependencies()

    found = [line for path in client_modules() for line in violations(path, path.read_text(), dependencies)]

    assert not found, "forbidden imports in mns_client:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("relative", "source", "expected"),
    [
        (
            "protocol/crypto.py",
            "import os\n\n\ndef late():\n    from ..sdk import Client\n",
            "mns_client/protocol/crypto.py:5: from ..sdk import Client  <- the protocol core imports the user's side",
        ),
        (
            "protocol/__init__.py",
            "from mns_client import config\n",
            "mns_client/protocol/__init__.py:1: from mns_client import config  <- the protocol core imports the user's",
        ),
        (
            "protocol/rpc.py",
            "def later():\n    import django.conf\n",
            "mns_client/protocol/rpc.py:2: import django.conf  <- the client imports the gateway's stack (django)",
        ),
        (
            "sdk.py",
            "from registry import services\n",
            "mns_client/sdk.py:1: from registry import services  <- the client imports the gateway (registry)",
        ),
        (
            "cli.py",
            "import importlib\nimportlib.import_module('entrypoints.services')\n",
            "mns_client/cli.py:2: importlib.import_module('entrypoints.services')  <- the client imports the gateway",
        ),
        (
            "config.py",
            "import yaml\n",
            "mns_client/config.py:1: import yaml  <- yaml is not a client dependency",
        ),
    ],
)
def test_a_forbidden_import_is_named_with_its_file_and_line(relative: str, source: str, expected: str) -> None:
    found = violations(CLIENT / relative, source, client_dependencies())

    assert len(found) == 1
    assert found[0].startswith(expected)


@pytest.mark.parametrize(
    ("relative", "source"),
    [
        ("protocol/crypto.py", "from .errors import MNSError\nfrom . import codecs\nimport nacl.public\n"),
        ("protocol/entrypoints.py", "from mns_client.protocol.codecs import to_hex\n"),
        ("cli.py", "from .protocol.codecs import to_hex\nfrom .sdk import Client\nimport requests\n"),
    ],
)
def test_the_allowed_imports_pass(relative: str, source: str) -> None:
    assert violations(CLIENT / relative, source, client_dependencies()) == []
