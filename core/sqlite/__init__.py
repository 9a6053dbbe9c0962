"""Django's SQLite backend whose writers queue on a file lock instead of SQLite's sleeping busy handler
(``base.DatabaseWrapper``)."""
