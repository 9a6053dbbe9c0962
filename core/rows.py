"""A model's rows bound as the ORM's compiler binds them for an ``INSERT``, for the statements the gateway writes
itself (a run of deliveries, the inbox's and the outbox's ``ON CONFLICT`` inserts): one way to turn a row into its
parameters, so that what those statements store is what ``save()`` would have stored for the fields they write
(none of those models has a generated field or a ``db_default``, which ``save()`` leaves to the database).
"""

from collections.abc import Sequence
from functools import cache
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model


class ExpressionValue(ValueError):
    """A row holds an expression (``F()``, a function): only the compiler can bind it."""


@cache
def insert_fields(model: type[Model]) -> tuple[Field, ...]:
    """The columns an ``INSERT`` of ``model`` writes: every concrete field but an auto-made primary key (the
    database makes it), in the model's order (the compiler's)."""
    return tuple(field for field in model._meta.concrete_fields if field is not model._meta.auto_field)


def insert_params(rows: Sequence[Model], db: BaseDatabaseWrapper) -> list[Any]:
    """Every row's value of each of ``insert_fields``, row after row: ``pre_save`` for an insert (an ``auto_now``
    field takes its time), then ``get_db_prep_save`` on ``db``. Raises ``ExpressionValue`` for an expression."""
    fields = insert_fields(type(rows[0]))
    values = [field.pre_save(row, True) for row in rows for field in fields]
    if any(hasattr(value, "resolve_expression") for value in values):
        raise ExpressionValue("a row's value is an expression")
    return [field.get_db_prep_save(value, db) for field, value in zip(fields * len(rows), values, strict=True)]
