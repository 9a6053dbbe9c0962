"""The MNS Dapp as the gateway serves it (/app/), its MiniDapp zip, and its JavaScript tests (``node --test``), which
check the browser's implementation of the wire formats against ``docs/vectors/``."""

import json
import re
import subprocess
import zipfile
from pathlib import Path

import pytest
from django.test import Client

from mns_site.tests.dapp_support import DAPP, Built, build_dapp, installed


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build_dapp(tmp_path_factory.mktemp("dapp"))


@pytest.fixture
def served(built: Built, settings: object) -> Built:
    settings.MNS_DAPP_DIR = built.site
    return built


def test_the_javascript_reproduces_and_opens_the_shared_vectors() -> None:
    node = installed()
    done = subprocess.run([node, "--test", "test/"], cwd=DAPP, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert re.search(r"^# fail 0$", done.stdout, re.M)
    assert int(re.search(r"^# pass (\d+)$", done.stdout, re.M).group(1)) >= 15


def test_app_serves_the_page_with_a_strict_content_security_policy(served: Built, client: Client) -> None:
    response = client.get("/app/")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    csp = response["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self' 'wasm-unsafe-eval';" in csp  # no 'unsafe-inline', no 'unsafe-eval'
    assert "connect-src 'self' http://127.0.0.1:* http://localhost:*" in csp
    assert "frame-ancestors 'none'" in csp
    assert response["Cache-Control"] == "no-cache"
    page = b"".join(response.streaming_content).decode()
    sodium = re.search(r"sodium\.[0-9a-f]{16}\.js", page).group()
    assert re.findall(r"<script[^>]*>", page) == [  # no inline script, no event-handler attributes
        f'<script src="{sodium}">',
        '<script type="module" src="app.js">',
    ]
    assert not re.search(r"\son[a-z]+=", page)


def test_every_file_the_page_names_is_served_and_only_hashed_ones_are_cached_for_ever(
    served: Built, client: Client
) -> None:
    page = (served.site / "index.html").read_text()
    names = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert {"app.js", "style.css", "icon.png"} <= set(names)
    sodium = next(name for name in names if name.startswith("sodium."))
    for name in names:
        response = client.get(f"/app/{name}")
        assert response.status_code == 200, name
        expected = "public, max-age=31536000, immutable" if name == sodium else "no-cache"
        assert response["Cache-Control"] == expected, name
    assert client.get("/app/app.js")["Content-Type"] == "text/javascript; charset=utf-8"


def test_a_path_outside_the_build_is_not_found(served: Built, client: Client) -> None:
    for path in ("/app/..", "/app/.hidden", "/app/nothing.js", "/app/%2e%2e%2fsettings.py"):
        assert client.get(path).status_code == 404, path


def test_the_app_takes_no_post(served: Built, client: Client) -> None:
    assert client.post("/app/", data=b"x", content_type="text/plain").status_code == 405


def test_without_a_build_the_app_says_to_run_make_dapp(settings: object, tmp_path: Path, client: Client) -> None:
    settings.MNS_DAPP_DIR = tmp_path / "missing"
    response = client.get("/app/")
    assert response.status_code == 503
    assert b"make dapp" in response.content


def test_the_minidapp_zip_holds_what_a_minidapp_needs(built: Built) -> None:
    with zipfile.ZipFile(built.zip) as archive:
        assert archive.testzip() is None
        names = set(archive.namelist())
        conf = json.loads(archive.read("dapp.conf"))
        icon = archive.read(conf["icon"])
        page = archive.read("index.html").decode()
    assert {"dapp.conf", "index.html", "icon.png", "app.js", "mns.js"} <= names
    assert all("/" not in name for name in names)  # at the zip's root, as MDS unpacks it
    assert conf["name"] == "MNS mail"
    assert conf["browser"] == "internal"
    assert re.fullmatch(r"\d+\.\d+\.\d+", conf["version"])
    assert conf["description"]
    assert icon.startswith(b"\x89PNG\r\n\x1a\n")
    for name in re.findall(r'(?:src|href)="([^"]+)"', page):
        assert name in names, name
