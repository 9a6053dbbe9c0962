"""A model's rows as the ORM binds and loads them, for the statements the gateway writes itself.

Written: a row bound as the ORM's compiler binds it for an ``INSERT`` (a run of deliveries, the inbox's and the
outbox's ``ON CONFLICT`` inserts): one way to turn a row into its parameters, so that what those statements store is
what ``save()`` would have stored for the fields they write (none of those models has a generated field or a
``db_default``, which ``save()`` leaves to the database).

Read: model instances from the columns of a hot read written as one statement (a mailbox read, a handshake's
challenge, the inbound claim), converted as a queryset converts them, so that what they return is what the ORM
would have returned, without compiling the ORM's query on every call.
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


def columns(model: type[Model], wanted: set[str] | None = None) -> tuple[str, ...]:
    """The attribute names of ``wanted`` (every concrete field if ``None``) in the model's field order, as
    ``Model.from_db`` takes them; each is its column's name too (the gateway's models set no ``db_column``)."""
    return tuple(field.attname for field in model._meta.concrete_fields if wanted is None or field.attname in wanted)


class RowLoader:
    """Instances of ``model`` from raw values of the columns ``names``, converted as the ORM converts them (SQLite's
    dates and booleans, JSON); the fields not in ``names`` are deferred (read if ever touched)."""

    def __init__(self, db: BaseDatabaseWrapper, model: type[Model], names: tuple[str, ...]) -> None:
        self.model, self.names, self.width = model, names, len(names)
        fields = {field.attname: field for field in model._meta.concrete_fields}
        self.converters = []
        for index, name in enumerate(names):
            column = fields[name].get_col(model._meta.db_table)
            found = db.ops.get_db_converters(column) + column.get_db_converters(db)
            if found:
                self.converters.append((index, column, found))

    def __call__(self, db: BaseDatabaseWrapper, values: Sequence[object]) -> Model:
        values = list(values)
        for index, column, converters in self.converters:
            for convert in converters:
                values[index] = convert(values[index], column, db)
        return self.model.from_db(db.alias, self.names, values)


def no_key_lock(db: BaseDatabaseWrapper, of: str = "") -> str:
    """`` FOR NO KEY UPDATE`` (``OF of``: a table's alias in a join) for a raw ``SELECT`` that locks its rows where
    the database locks rows (PostgreSQL), else nothing: SQLite has one writer at a time, and the writer's
    transaction is the lock (``core/sqlite``). NO KEY: a lock that a foreign-key check does not wait for."""
    if not db.features.has_select_for_no_key_update:
        return ""
    return f" FOR NO KEY UPDATE OF {of}" if of else " FOR NO KEY UPDATE"


_loaders: dict[tuple[str, type[Model], tuple[str, ...]], RowLoader] = {}


def loader(db: BaseDatabaseWrapper, model: type[Model], names: tuple[str, ...]) -> RowLoader:
    """The ``RowLoader`` of ``model``'s ``names`` on ``db``'s kind of database, made once."""
    key = (db.vendor, model, names)
    if key not in _loaders:
        _loaders[key] = RowLoader(db, model, names)
    return _loaders[key]
