import pytest

from core.env import EnvError, database_from_url, env_bool, env_choice, env_int, env_list, env_rate, env_url


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("TRUE", True),
        ("yes", True),
        ("on", True),
        ("0", False),
        ("False", False),
        ("no", False),
        ("off", False),
    ],
)
def test_env_bool_understands_the_usual_spellings(raw: str, expected: bool) -> None:
    assert env_bool("X", not expected, env={"X": raw}) is expected


@pytest.mark.parametrize("raw", ["ture", "2", "y e s", "enabled"])
def test_env_bool_refuses_anything_else_naming_the_variable(raw: str) -> None:
    with pytest.raises(EnvError, match=r"^DEBUG="):
        env_bool("DEBUG", False, env={"DEBUG": raw})


def test_an_unset_or_blank_variable_takes_the_default() -> None:
    assert env_bool("X", True, env={}) is True
    assert env_int("X", 7, env={"X": "  "}) == 7


def test_env_int_checks_the_number_and_its_range() -> None:
    assert env_int("N", 1, minimum=1, maximum=10, env={"N": "10"}) == 10
    with pytest.raises(EnvError, match="N='11'"):
        env_int("N", 1, minimum=1, maximum=10, env={"N": "11"})
    with pytest.raises(EnvError, match="an integer"):
        env_int("N", 1, env={"N": "1.5"})


def test_env_choice_is_case_insensitive_but_strict() -> None:
    assert env_choice("LOG_FORMAT", "text", ("text", "json"), env={"LOG_FORMAT": "JSON"}) == "json"
    with pytest.raises(EnvError, match="one of text, json"):
        env_choice("LOG_FORMAT", "text", ("text", "json"), env={"LOG_FORMAT": "xml"})


def test_env_list_splits_on_commas_and_refuses_empty_items() -> None:
    assert env_list("HOSTS", [], env={"HOSTS": "a.example, b.example"}) == ["a.example", "b.example"]
    with pytest.raises(EnvError):
        env_list("HOSTS", [], env={"HOSTS": "a.example,,b"})


def test_env_rate_accepts_drf_rates_only() -> None:
    assert env_rate("R", "1/s", env={"R": "120/min"}) == "120/min"
    with pytest.raises(EnvError, match="a rate like"):
        env_rate("R", "1/s", env={"R": "120 per minute"})


def test_env_url_checks_the_scheme_and_port_and_hides_passwords() -> None:
    assert env_url("REDIS_URL", None, schemes=("redis",), env={"REDIS_URL": "redis://h:6379/0"}) == "redis://h:6379/0"
    with pytest.raises(EnvError) as refused:
        env_url("REDIS_URL", None, schemes=("redis",), env={"REDIS_URL": "http://user:hunter2@h/"})
    assert "hunter2" not in str(refused.value)
    with pytest.raises(EnvError, match="valid port"):
        env_url("REDIS_URL", None, schemes=("redis",), env={"REDIS_URL": "redis://h:99999/0"})


def test_database_from_url_builds_a_postgresql_entry() -> None:
    entry = database_from_url("DATABASE_URL", "postgres://mns:p%40ss@db.internal:6432/mns?sslmode=require")
    assert entry == {
        "ENGINE": "core.postgresql",
        "NAME": "mns",
        "USER": "mns",
        "PASSWORD": "p@ss",
        "HOST": "db.internal",
        "PORT": "6432",
        "OPTIONS": {"sslmode": "require", "connect_timeout": "5"},
    }


def test_database_from_url_refuses_a_url_without_a_database_name() -> None:
    with pytest.raises(EnvError, match="DATABASE_URL"):
        database_from_url("DATABASE_URL", "postgres://mns@db/")
