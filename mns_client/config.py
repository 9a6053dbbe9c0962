"""The client's files: settings, the box key pairs and the access tokens, in ``~/.config/mns/`` or ``$MNS_HOME``.

```
config.json     the node's RPC URL and password, the default gateway and name, what is known of each gateway
box-keys.json   the X25519 box key pairs, the current one last; older ones are kept to open older messages
tokens.json     the mailbox access tokens, by gateway and name
```

The folder is created 0700 and every file 0600 (the password, the private keys and the tokens are secrets), written
whole to a temporary file and renamed, so a crash never leaves half a file. A secret file that others can read
is refused, as ssh does, rather than used. Nothing here prints or logs a secret.
"""

import json
import os
import stat
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .protocol.codecs import from_hex, to_hex
from .protocol.crypto import box_keypair
from .protocol.errors import MNSError

CONFIG_FILE = "config.json"
BOX_KEYS_FILE = "box-keys.json"
TOKENS_FILE = "tokens.json"
FILE_MODE = 0o600
DIR_MODE = 0o700


class ConfigError(MNSError):
    """The client's files are missing, unreadable, malformed or too open."""

    code = "config_error"


def default_home() -> Path:
    """``$MNS_HOME``, else ``$XDG_CONFIG_HOME/mns``, else ``~/.config/mns``."""
    if os.environ.get("MNS_HOME"):
        return Path(os.environ["MNS_HOME"]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "mns"


@dataclass
class Settings:
    """``config.json``. ``gateways`` maps a gateway's URL to what the client learnt of it (its Maxima identity)."""

    node_url: str | None = None
    node_password: str | None = field(default=None, repr=False)
    gateway: str | None = None
    name: str | None = None
    gateways: dict[str, dict[str, Any]] = field(default_factory=dict)
    names: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Where the on-chain entry-point list is (tokenid, owner, script) and the highest seq seen (docs/protocol.md).
    entry_points: dict[str, Any] = field(default_factory=dict)
    # How the gateway reaches this node (mns_client.reply): auto, direct, contact or max; and what auto found, with
    # the p2pidentity it was measured for ({"p2pidentity": …, "via": …}): measured again when the node moves.
    reply_via: str | None = None
    reachability: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": {"rpc_url": self.node_url, "password": self.node_password},
            "gateway": self.gateway,
            "name": self.name,
            "gateways": self.gateways,
            "names": self.names,
            "entry_points": self.entry_points,
            "reply_via": self.reply_via,
            "reachability": self.reachability,
        }

    @classmethod
    def from_dict(cls, data: Any) -> "Settings":
        if not isinstance(data, dict):
            raise ConfigError(f"{CONFIG_FILE} must hold a JSON object")
        node = data.get("node") or {}
        settings = cls(
            node_url=node.get("rpc_url"),
            node_password=node.get("password"),
            gateway=data.get("gateway"),
            name=data.get("name"),
            gateways=data.get("gateways") or {},
            names=data.get("names") or {},
            entry_points=data.get("entry_points") or {},
            reply_via=data.get("reply_via"),
            reachability=data.get("reachability") or {},
        )
        for value in (settings.node_url, settings.node_password, settings.gateway, settings.name):
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{CONFIG_FILE}: node, gateway and name values are strings")
        if not all(isinstance(v, dict) for v in (settings.gateways, settings.names, settings.entry_points)):
            raise ConfigError(f"{CONFIG_FILE}: gateways, names and entry_points are JSON objects")
        if settings.reply_via not in (None, "auto", "direct", "contact", "max"):
            raise ConfigError(f"{CONFIG_FILE}: reply_via is auto, direct, contact or max")
        if not isinstance(settings.reachability, dict):
            raise ConfigError(f"{CONFIG_FILE}: reachability is a JSON object")
        return settings


@dataclass(frozen=True)
class BoxKey:
    """One X25519 pair of ``nacl-sealedbox-v1``; ``repr`` never shows the private half."""

    public: bytes
    private: bytes = field(repr=False)
    created_at: int

    def to_dict(self) -> dict[str, Any]:
        return {"public": to_hex(self.public), "private": to_hex(self.private), "created_at": self.created_at}

    @classmethod
    def from_dict(cls, data: Any) -> "BoxKey":
        try:
            key = cls(public=from_hex(data["public"]), private=from_hex(data["private"]), created_at=data["created_at"])
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"{BOX_KEYS_FILE}: a key has public, private (0x hex) and created_at") from None
        if len(key.public) != 32 or len(key.private) != 32:
            raise ConfigError(f"{BOX_KEYS_FILE}: box keys are 32 bytes")
        return key

    @classmethod
    def generate(cls) -> "BoxKey":
        private, public = box_keypair()
        return cls(public=public, private=private, created_at=int(time.time() * 1000))


@dataclass(frozen=True)
class AccessToken:
    """A mailbox's access token, as ``maxdecrypt`` opened it: ``Authorization: MNS-Token <token_id>:<secret>``."""

    token_id: str
    secret: str = field(repr=False)


class Home:
    """The client's folder. Every read goes to the disk, so two commands running at once see each other's writes."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_home()

    # -- settings

    def settings(self) -> Settings:
        data = self._read(CONFIG_FILE, secret=True)
        return Settings() if data is None else Settings.from_dict(data)

    def save_settings(self, settings: Settings) -> None:
        self._write(CONFIG_FILE, settings.to_dict())

    # -- box keys

    def box_keys(self) -> list[BoxKey]:
        """Every box key pair, oldest first (the last is the current one)."""
        data = self._read(BOX_KEYS_FILE, secret=True)
        if data is None:
            return []
        if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
            raise ConfigError(f'{BOX_KEYS_FILE} must hold {{"keys": [...]}}')
        return [BoxKey.from_dict(item) for item in data["keys"]]

    def current_box_key(self) -> BoxKey:
        keys = self.box_keys()
        if not keys:
            raise ConfigError(f"no box key in {self.path}: run `mns init` first")
        return keys[-1]

    def add_box_key(self, key: BoxKey | None = None) -> BoxKey:
        """Add a new current box key pair (a fresh one unless given); older pairs are kept."""
        key = key or BoxKey.generate()
        keys = [*self.box_keys(), key]
        self._write(BOX_KEYS_FILE, {"keys": [item.to_dict() for item in keys]})
        return key

    def drop_box_key(self, public: bytes) -> None:
        """Forget one pair (a rotation the gateway refused), keeping the others."""
        keys = [item for item in self.box_keys() if item.public != public]
        self._write(BOX_KEYS_FILE, {"keys": [item.to_dict() for item in keys]})

    # -- access tokens

    def token(self, gateway: str, name: str) -> AccessToken | None:
        entry = self._tokens().get(_token_key(gateway, name))
        if not isinstance(entry, dict):
            return None
        token_id, secret = entry.get("token_id"), entry.get("secret")
        if not isinstance(token_id, str) or not isinstance(secret, str):
            return None
        return AccessToken(token_id=token_id, secret=secret)

    def save_token(self, gateway: str, name: str, token: AccessToken) -> None:
        tokens = self._tokens()
        tokens[_token_key(gateway, name)] = {"token_id": token.token_id, "secret": token.secret}
        self._write(TOKENS_FILE, tokens)

    def forget_token(self, gateway: str, name: str) -> None:
        tokens = self._tokens()
        if tokens.pop(_token_key(gateway, name), None) is not None:
            self._write(TOKENS_FILE, tokens)

    def _tokens(self) -> dict[str, Any]:
        data = self._read(TOKENS_FILE, secret=True)
        if data is not None and not isinstance(data, dict):
            raise ConfigError(f"{TOKENS_FILE} must hold a JSON object")
        return data or {}

    # -- files

    def ensure(self) -> None:
        """Create the folder (0700) if it is missing."""
        try:
            self.path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create {self.path}: {exc.strerror}") from None

    def _read(self, filename: str, *, secret: bool) -> Any:
        path = self.path / filename
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        if secret and stat.S_IMODE(mode) & 0o077:
            raise ConfigError(f"{path} holds secrets but others may read it: run chmod 600 {path}")
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        except ValueError:
            raise ConfigError(f"{path} is not valid JSON") from None

    def _write(self, filename: str, data: Any) -> None:
        """Write ``data`` as JSON to a new 0600 file beside the target, then rename it over the target."""
        self.ensure()
        target = self.path / filename
        try:
            fd, temporary = tempfile.mkstemp(prefix=f".{filename}.", dir=self.path)
            try:
                os.fchmod(fd, FILE_MODE)
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump(data, handle, indent=2, sort_keys=True)
                    handle.write("\n")
                os.replace(temporary, target)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise ConfigError(f"cannot write {target}: {exc.strerror}") from None


def _token_key(gateway: str, name: str) -> str:
    return f"{gateway.rstrip('/')}|{name}"
