"""A database made before the kernel left ``mns_site`` migrates: the old heartbeat table and its migration rows go,
the new one is there, and every other app's tables (the transport kept its label) are untouched."""

import pytest
from django.core.management import call_command
from django.db import connection

from core.models import Heartbeat
from core.services import heartbeat_record
from maxima.models import NodeState


def tables() -> set[str]:
    return set(connection.introspection.table_names())


@pytest.mark.django_db(transaction=True)
def test_a_database_laid_out_by_the_old_mns_site_app_migrates_to_core() -> None:
    call_command("migrate", "core", "0001", verbosity=0)  # as far as the old main's schema went
    with connection.cursor() as cursor:  # what the old mns_site app left
        cursor.execute("CREATE TABLE mns_site_heartbeat (name varchar(32) PRIMARY KEY, at timestamp NOT NULL)")
        cursor.execute("INSERT INTO mns_site_heartbeat VALUES ('beat', '2026-11-26 12:00:00')")
        cursor.execute(
            "INSERT INTO django_migrations (app, name, applied) VALUES ('mns_site', '0001_initial', '2026-11-26')"
        )
    NodeState.objects.create(pk=1, publickey="0xAB")

    call_command("migrate", verbosity=0)

    assert "mns_site_heartbeat" not in tables()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM django_migrations WHERE app = 'mns_site'")
        assert cursor.fetchone()[0] == 0
    heartbeat_record(name="worker")
    assert list(Heartbeat.objects.values_list("name", flat=True)) == ["worker"]
    assert NodeState.objects.get(pk=1).publickey == "0xAB"
