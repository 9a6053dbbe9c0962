"""Every endpoint is rate-limited and size-limited, and the limits are published.

The walk goes over every URL pattern Django resolves (so a new endpoint is covered the day it is added): each view
has throttles with a configured rate, or is in ``EXEMPT`` with the reason; and a body over the path's limit is
refused with 413 before anything reads it, on every route, writing nothing.
"""

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from core.limits import GUNICORN_LIMITS
from core.middleware import limit_for
from mns_site.tests.security_support import row_counts
from testsupport.processes import child_env, free_port, gunicorn, process, wait_for

pytestmark = pytest.mark.django_db
README = Path(settings.BASE_DIR) / "README.md"

# Routes without DRF throttles, each with the reason (a prefix of the route).
EXEMPT = {
    "admin/login/": "its own limit per client address (MNS_ADMIN_LOGIN_PER_MINUTE, mns_site.admin_site)",
    "admin/": "behind the staff login, whose attempts are limited (admin/login/)",
    "maxima/hook/": "its own limits per sender key and in all (MNS_HOOK_RATE_*), not per client address",
    "onchain/hook/": "the node's coin events, behind the hook secret; its own limit in all (MNS_CHAIN_HOOK_PER_MINUTE)",
    "api/v1/health": "probed by load balancers; the checks run at most every MNS_HEALTH_CACHE_SECONDS",
}


def routes() -> Iterator[tuple[str, URLPattern]]:
    def walk(patterns: list, prefix: str) -> Iterator[tuple[str, URLPattern]]:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            else:
                yield prefix + str(pattern.pattern), pattern

    return walk(get_resolver().url_patterns, "")


def example_path(route: str) -> str:
    """A concrete path for a route: every converter or group filled with a plausible value."""
    path = re.sub(r"<(?:\w+:)?(\w+)>", "x1", route)
    path = re.sub(r"\(\?P<\w+>[^)]*\)", "x1", path)
    return "/" + path.lstrip("^").rstrip("$").replace("\\", "")


def view_class(pattern: URLPattern) -> type | None:
    return getattr(pattern.callback, "cls", None) or getattr(pattern.callback, "view_class", None)


def exemption(route: str) -> str | None:
    return next((reason for prefix, reason in EXEMPT.items() if route.startswith(prefix)), None)


def test_every_route_has_rate_limits_with_a_configured_rate_or_a_stated_exemption() -> None:
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    unlimited, checked = [], 0
    for route, pattern in routes():
        cls = view_class(pattern)
        throttles = cls().get_throttles() if cls is not None and hasattr(cls, "get_throttles") else []
        if not throttles:
            if exemption(route) is None:
                unlimited.append(route)
            continue
        checked += 1
        scope = getattr(cls, "throttle_scope", None)
        assert "ip" in {getattr(t, "scope", None) for t in throttles}, route
        assert scope is None or scope in rates, f"{route}: scope {scope!r} has no rate"
    assert unlimited == []
    assert checked >= 20


@pytest.mark.parametrize("route", [route for route, _ in routes()])
def test_a_body_over_the_limit_is_refused_413_on_every_route_and_nothing_is_written(client: Client, route: str) -> None:
    path = example_path(route)
    before = row_counts()
    response = client.generic("POST", path, b"{" + b" " * limit_for(path) + b"}", content_type="application/json")
    assert (response.status_code, json.loads(response.content)["error"]) == (413, "request_too_large")
    assert row_counts() == before


def test_the_body_limit_runs_before_anything_that_reads_the_body() -> None:
    middleware = settings.MIDDLEWARE
    assert middleware.index("core.middleware.RequestSizeLimitMiddleware") < min(
        middleware.index(name)
        for name in (
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.sessions.middleware.SessionMiddleware",
        )
    )
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE <= settings.MNS_MAX_REQUEST_BYTES


def test_the_well_known_policy_publishes_every_rate(client: Client) -> None:
    limits = json.loads(client.get("/.well-known/mns.json").content)["limits"]
    assert limits["rates"] == settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    assert set(limits["rates"]) >= {"ip", "lookup", "write", "submit"}
    assert limits["maxima_per_sender_per_minute"] == settings.MNS_HOOK_RATE_PER_SENDER_PER_MINUTE
    assert limits["maxima_per_minute"] == settings.MNS_HOOK_RATE_PER_MINUTE
    assert limits["max_request_bytes"] == settings.MNS_MAX_REQUEST_BYTES


def test_the_readme_documents_every_limit_and_its_setting() -> None:
    text = README.read_text()
    section = text[text.index("### Limits") :]
    section = section[: section.index("\n## ")]
    for setting in (
        "MNS_THROTTLE_PER_IP",
        "MNS_THROTTLE_LOOKUP",
        "MNS_THROTTLE_WRITE",
        "MNS_THROTTLE_SUBMIT",
        "MNS_HOOK_RATE_PER_SENDER_PER_MINUTE",
        "MNS_HOOK_RATE_PER_MINUTE",
        "MNS_ADMIN_LOGIN_PER_MINUTE",
        "MNS_MAX_REQUEST_BYTES",
        "MNS_MAX_HOOK_BYTES",
        "MNS_SHED_AFTER_MS",
        ".well-known/mns.json",
        " ".join(GUNICORN_LIMITS),
    ):
        assert setting in section, setting


@pytest.mark.slow
def test_gunicorn_refuses_huge_or_too_many_headers_before_django(tmp_path: Path) -> None:
    """The real web server, with the project's command line: a header over 8190 bytes or over 50 header fields
    gets gunicorn's 431, a request line over 4094 its 414; a normal request gets Django's answer."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/api/v1/no-such-thing"
    log = tmp_path / "web.log"
    with process(gunicorn(bind=f"127.0.0.1:{port}"), env=child_env(MNS_VAR_DIR=str(tmp_path)), log=log):
        wait_for(lambda: _answers(url), timeout=30, what="gunicorn", log=log)
        assert requests.get(url, timeout=5).status_code == 404  # Django's own JSON 404
        huge = requests.get(url, headers={"X-Huge": "a" * 9000}, timeout=5)
        many = requests.get(url, headers={f"X-H{n}": "1" for n in range(60)}, timeout=5)
        long_line = requests.get(url + "?" + "q" * 5000, timeout=5)
    assert (huge.status_code, many.status_code, long_line.status_code) == (431, 431, 414)
    assert b"error" not in huge.content  # refused by gunicorn: Django never saw it


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 404
    except requests.RequestException:
        return False


def test_gunicorn_is_installed_with_the_limit_options() -> None:
    """The options are gunicorn's (a typo would stop the web server from starting)."""
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    for option in GUNICORN_LIMITS[::2]:
        assert option in result.stdout
