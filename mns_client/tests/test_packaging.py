"""The installable client, checked from its metadata without building it: ``pyproject.toml`` describes the
``mns-client`` distribution (``mns_client`` and its protocol core, the ``mns`` script, three dependencies), and
both ways of starting the command print its help. No network; a few subprocesses of about a second each."""

import importlib
import os
import subprocess
import sys
import tomllib
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from mns_client.tests.test_boundary import GATEWAY_PARTS

REPO = Path(__file__).resolve().parents[2]


def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def packaged() -> set[str]:
    """The packages setuptools puts in the wheel: those under the checkout that match ``packages.find``'s include
    and not its exclude (its own rule: a directory with an ``__init__.py``, reached through packages only)."""
    find = pyproject()["tool"]["setuptools"]["packages"]["find"]

    def walk(directory: Path, prefix: str) -> set[str]:
        found = set()
        for child in sorted(directory.iterdir()):
            if child.is_dir() and (child / "__init__.py").is_file():
                name = f"{prefix}{child.name}"
                found |= {name, *walk(child, f"{name}.")}
        return found

    return {
        name
        for name in walk(REPO, "")
        if any(fnmatchcase(name, pattern) for pattern in find["include"])
        and not any(fnmatchcase(name, pattern) for pattern in find.get("exclude", []))
    }


def pins() -> dict[str, Version]:
    lines = (REPO / "requirements" / "base.txt").read_text().splitlines()
    pairs = (line.split("#")[0].strip().split("==") for line in lines)
    return {canonicalize_name(pair[0]): Version(pair[1]) for pair in pairs if len(pair) == 2}


def without_client_environment() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if not name.startswith("MNS_")}


def test_the_mns_script_is_the_cli_main() -> None:
    scripts = pyproject()["project"]["scripts"]

    module, _, attribute = scripts["mns"].partition(":")

    assert scripts == {"mns": "mns_client.cli:main"}
    assert callable(getattr(importlib.import_module(module), attribute))


def test_the_wheel_holds_the_client_and_its_protocol_core_and_nothing_of_the_gateway() -> None:
    packages = packaged()

    assert packages == {"mns_client", "mns_client.protocol"}
    assert not {name.split(".")[0] for name in packages} & GATEWAY_PARTS


def test_the_client_depends_only_on_requests_pynacl_and_cryptography() -> None:
    requirements = [Requirement(spec) for spec in pyproject()["project"]["dependencies"]]

    assert sorted(canonicalize_name(req.name) for req in requirements) == ["cryptography", "pynacl", "requests"]


def test_the_gateways_pins_satisfy_the_clients_ranges() -> None:
    """``make venv`` installs the client with --no-deps over requirements/base.txt: the pins must fit its ranges."""
    pinned = pins()

    for spec in pyproject()["project"]["dependencies"]:
        requirement = Requirement(spec)
        version = pinned[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version), f"base.txt pins {requirement.name}=={version}, not {spec}"


def test_the_entry_point_prints_the_help_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    module, _, attribute = pyproject()["project"]["scripts"]["mns"].partition(":")
    main = getattr(importlib.import_module(module), attribute)

    code = main(["--help"])

    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("usage: mns ")
    assert "exit codes:" in out


def test_python_m_mns_client_prints_the_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mns_client", "--help"],
        cwd=REPO,
        env=without_client_environment(),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: mns ")
    assert "exit codes:" in done.stdout


def test_the_installed_mns_command_prints_the_help(tmp_path: Path) -> None:
    """The script ``make venv`` puts next to this Python (``pip install --no-deps -e .``), run from elsewhere."""
    script = Path(sys.executable).parent / "mns"
    if not script.is_file():
        reason = f"{script} is not installed: make venv installs it (pip install --no-deps -e .)"
        if os.environ.get("MNS_REQUIRE_SERVICES", "") == "1":
            pytest.fail(f"MNS_REQUIRE_SERVICES=1 but {reason}")
        pytest.skip(reason)

    done = subprocess.run(
        [str(script), "--help"],
        cwd=tmp_path,
        env=without_client_environment(),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: mns ")
    assert "exit codes:" in done.stdout
