"""The client's files: where they are, their permissions, the box keys, the tokens, and refusing unsafe files."""

import json
import os
import stat
from pathlib import Path

import pytest

from mns_client.config import AccessToken, BoxKey, ConfigError, Home, Settings, default_home


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def read(home: Home, filename: str) -> object:
    readers = {
        "config.json": home.settings,
        "box-keys.json": home.box_keys,
        "tokens.json": lambda: home.token("g", "n"),
    }
    return readers[filename]()


def test_the_home_is_mns_home_else_xdg_config_home_else_dot_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNS_HOME", "/somewhere/mns-home")
    assert default_home() == Path("/somewhere/mns-home")
    monkeypatch.delenv("MNS_HOME")
    monkeypatch.setenv("XDG_CONFIG_HOME", "/xdg")
    assert default_home() == Path("/xdg/mns")
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert default_home() == Path.home() / ".config" / "mns"


def test_a_new_home_is_created_0700_with_its_files_0600(tmp_path: Path) -> None:
    home = Home(tmp_path / "mns")

    home.add_box_key()
    home.save_settings(Settings(node_url="http://127.0.0.1:9005", node_password="pw"))
    home.save_token("http://gw", "alice", AccessToken(token_id="t" * 16, secret="s" * 43))

    assert mode(home.path) == 0o700
    assert sorted(p.name for p in home.path.iterdir()) == ["box-keys.json", "config.json", "tokens.json"]
    assert {mode(p) for p in home.path.iterdir()} == {0o600}


def test_an_existing_home_without_files_reads_as_empty(tmp_path: Path) -> None:
    home = Home(tmp_path)

    assert home.settings() == Settings()
    assert home.box_keys() == []
    assert home.token("http://gw", "alice") is None


def test_there_is_no_current_box_key_before_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mns init"):
        Home(tmp_path).current_box_key()


def test_a_new_box_key_becomes_current_and_older_ones_are_kept_in_order(tmp_path: Path) -> None:
    home = Home(tmp_path)

    first = home.add_box_key()
    second = home.add_box_key()

    assert home.current_box_key() == second
    assert home.box_keys() == [first, second]
    home.drop_box_key(second.public)
    assert home.box_keys() == [first]


def test_settings_round_trip_through_the_file(tmp_path: Path) -> None:
    home = Home(tmp_path)
    settings = Settings(
        node_url="http://127.0.0.1:9005",
        node_password="pw",
        gateway="http://gw",
        name="alice",
        gateways={"http://gw": {"identity": "0x30"}},
        names={"alice": {"gateway": "http://gw"}},
    )

    home.save_settings(settings)

    assert home.settings() == settings


def test_tokens_are_kept_by_gateway_and_name_and_can_be_forgotten(tmp_path: Path) -> None:
    home = Home(tmp_path)
    token = AccessToken(token_id="abcdefghijklmnop", secret="secret")

    home.save_token("http://gw/", "alice", token)

    assert home.token("http://gw", "alice") == token
    assert home.token("http://other", "alice") is None
    assert home.token("http://gw", "bob") is None
    home.forget_token("http://gw", "alice")
    assert home.token("http://gw", "alice") is None


@pytest.mark.parametrize("filename", ["config.json", "box-keys.json", "tokens.json"])
def test_a_secret_file_others_can_read_is_refused_not_used(tmp_path: Path, filename: str) -> None:
    home = Home(tmp_path)
    home.add_box_key()
    home.save_settings(Settings(node_password="pw"))
    home.save_token("http://gw", "alice", AccessToken(token_id="abcdefghijklmnop", secret="s"))
    os.chmod(tmp_path / filename, 0o644)

    with pytest.raises(ConfigError, match="chmod 600"):
        read(home, filename)


@pytest.mark.parametrize(
    ("filename", "text"),
    [
        ("config.json", "{not json"),
        ("config.json", "[]"),
        ("config.json", '{"node": {"rpc_url": 5}}'),
        ("box-keys.json", '{"keys": [{"public": "0x00"}]}'),
        ("box-keys.json", '{"keys": [{"public": "0x00", "private": "0x00", "created_at": 1}]}'),
        ("tokens.json", "[]"),
    ],
)
def test_a_malformed_file_is_a_config_error(tmp_path: Path, filename: str, text: str) -> None:
    path = tmp_path / filename
    path.write_text(text)
    os.chmod(path, 0o600)
    home = Home(tmp_path)

    with pytest.raises(ConfigError):
        read(home, filename)


def test_the_box_key_file_holds_hex_and_reprs_never_show_secrets(tmp_path: Path) -> None:
    home = Home(tmp_path)
    key = home.add_box_key()
    stored = json.loads((tmp_path / "box-keys.json").read_text())["keys"][0]

    assert stored["public"] == "0x" + key.public.hex().upper()
    assert stored["private"] == "0x" + key.private.hex().upper()
    assert key.private.hex() not in repr(key).lower()
    assert "pw" not in repr(Settings(node_password="pw"))
    assert "s3cret" not in repr(AccessToken(token_id="abcdefghijklmnop", secret="s3cret"))


def test_a_failed_write_leaves_the_previous_file_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = Home(tmp_path)
    first = home.add_box_key()

    def broken_dump(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("mns_client.config.json.dump", broken_dump)
    with pytest.raises(ConfigError, match="cannot write"):
        home.add_box_key(BoxKey.generate())
    monkeypatch.undo()

    assert home.box_keys() == [first]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["box-keys.json"]
