"""The README tells the truth: the files it points to are in the repository, and its banner is the real one."""

import re

import pytest

from core.health import run_checks
from core.services import heartbeat_record
from mns_site.management.commands.rungateway import status_line
from testsupport import REPO

README = (REPO / "README.md").read_text()


def test_the_design_doc_ships_in_the_repository_and_is_what_readme_and_env_example_cite() -> None:
    env_example = (REPO / ".env.example").read_text()
    assert (REPO / "docs" / "design.md").read_text().startswith("# MNS gateway: the design")
    assert "(docs/design.md)" in README
    assert "docs/design.md §5" in env_example
    assert "docs/design.md §6" in env_example
    for text in (README, env_example):
        assert "../shared" not in text
        assert "DESIGN §" not in text


def test_every_file_the_readme_links_to_exists() -> None:
    links = re.findall(r"\]\(((?:docs|dapp)/[^)#]*)\)", README)
    assert {"docs/design.md", "docs/performance.md", "docs/reliability.md", "docs/systemd/"} <= set(links)
    assert [link for link in links if not (REPO / link).exists()] == []


def test_the_dated_result_tables_live_in_docs_not_in_the_readme() -> None:
    # One exception, which issue #18 asks for: the latest whole bench run, row by row, under "Performance".
    tables = [at for at in range(len(README)) if README.startswith("| scenario |", at)]
    assert len(tables) == 1
    assert README.rindex("\n## ", 0, tables[0]) == README.index("\n## Performance")
    assert "| scenario | thru/s |" in (REPO / "docs" / "performance.md").read_text()
    assert "all nine faults pass in 6 min" in (REPO / "docs" / "reliability.md").read_text()


@pytest.mark.django_db
def test_the_readme_banner_lists_the_checks_make_run_really_shows(settings: object) -> None:
    settings.MINIMA_RPC_URL = "http://127.0.0.1:9/"  # make run always has a node (simnet's node 0 by default)
    for name in ("worker", "sender", "beat"):
        heartbeat_record(name=name)
    names = list(run_checks())
    line = status_line({"status": "ok", "checks": {name: {"ok": True} for name in names}})
    assert "node ok" in line
    assert f"```\n{line}\n" in README
