"""Building the MNS Dapp for the tests: ``npm ci`` (only when ``dapp/node_modules`` is missing) and ``build.mjs``.

Without Node.js/npm (or when the build fails) the Dapp's tests are skipped with the reason, except under
``MNS_REQUIRE_SERVICES=1`` (CI), where they fail.
"""

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import _unavailable
from testsupport import REPO

DAPP = REPO / "dapp"


@dataclass(frozen=True)
class Built:
    site: Path  # what /app/ serves
    zip: Path  # the MiniDapp


def node_tools() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable("Node.js and npm are needed for the Dapp (apt-get install nodejs npm)")
    return node, npm  # type: ignore[return-value]


def installed() -> str:
    """``node``, once ``dapp/node_modules`` holds the locked packages (``npm ci`` when it does not)."""
    node, npm = node_tools()
    if not all((DAPP / "node_modules" / package).is_dir() for package in ("libsodium-wrappers", "playwright-core")):
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=DAPP, capture_output=True, text=True, timeout=600, check=False
        )
        if done.returncode != 0:
            _unavailable(f"npm ci failed in dapp/: {done.stderr[-2000:]}")
    return node


def build_dapp(out: Path) -> Built:
    node = installed()
    built = Built(site=out / "site", zip=out / "mns.mds.zip")
    args = [node, "build.mjs", "--out", str(built.site), "--zip", str(built.zip)]
    done = subprocess.run(args, cwd=DAPP, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        pytest.fail(f"the Dapp's build failed:\n{done.stdout}\n{done.stderr}")
    return built
