"""``core.rows``: the parameters of the gateway's own INSERT statements are the ones the ORM's compiler binds."""

from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.db.models import F, Model
from django.db.models.sql import InsertQuery

from core.models import Heartbeat
from core.rows import ExpressionValue, insert_fields, insert_params


def compiled_params(row: Model) -> list[object]:
    """The compiler's parameters for one row (for several, PostgreSQL's compiler may bind a column's values as one
    array for ``UNNEST``; the gateway's statements bind them row after row)."""
    query = InsertQuery(type(row))
    query.insert_values(list(insert_fields(type(row))), [row])
    [(_, params)] = query.get_compiler(connection=connection).as_sql()
    return list(params)


def test_an_auto_made_primary_key_is_left_to_the_database_and_any_other_is_written() -> None:
    assert [field.name for field in insert_fields(Group)] == ["name"]
    assert [field.name for field in insert_fields(Heartbeat)] == ["name", "at", "host", "pid"]


def test_rows_are_bound_as_the_compiler_binds_them_row_after_row() -> None:
    rows = [
        Heartbeat(name="worker", at=datetime(2026, 12, 6, 1, 2, 3, 456789, tzinfo=UTC), host="h", pid=7),
        Heartbeat(name="beat", at=datetime(2026, 1, 1, tzinfo=UTC), pid=None),
    ]
    bound = insert_params(rows, connection)
    assert bound == compiled_params(rows[0]) + compiled_params(rows[1])
    assert (bound[0], bound[4], bound[7]) == ("worker", "beat", None)


def test_a_row_holding_an_expression_is_left_to_the_compiler() -> None:
    with pytest.raises(ExpressionValue):
        insert_params([Heartbeat(name="worker", at=datetime(2026, 1, 1, tzinfo=UTC), pid=F("pid") + 1)], connection)
