"""The project's exception hierarchy.

Every error the core raises is an ``MNSError`` with a stable snake_case ``code``, so the REST layer can map it to
``{"error": "<code>", "detail": "<message>"}`` without knowing the concrete class. Messages never contain keys,
payloads or ciphertexts.
"""

from typing import Any

# "Maxima Mesasge too big" is the node's own spelling (fixture 19); the corrected spelling is listed too in case a
# later node version fixes it.
PERMANENT_DELIVERY_ERRORS = frozenset(
    {
        "Unknown Address",
        "Maxima Mesasge too big",
        "Maxima Message too big",
        "TxPoW Hash wrong",
    }
)


def is_permanent_delivery_error(error: str | None) -> bool:
    """True when retrying a ``maxima action:send`` with this ``error`` text can never succeed.

    Everything not known to be permanent (ConnectException, timeouts, "Not delivered", anything new) is transient.
    """
    return (error or "").strip() in PERMANENT_DELIVERY_ERRORS


class MNSError(Exception):
    """Base of every project error."""

    code: str = "mns_error"


class Refusal(MNSError):
    """A document or a name refused by a rule: a per-instance ``code``, a ``message`` for a person, and for a
    malformed document the ``field`` at fault. Names, statements and envelopes refuse this way."""

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return self.message


class CodecError(MNSError, ValueError):
    """Bad hex, Mx, Maxima address, key, or an RPC value that cannot be sent safely."""

    code = "codec_error"


class CryptoError(MNSError):
    """A failed decryption, a malformed blob, signature or key."""

    code = "crypto_error"


class RPCError(MNSError):
    """The node said no (or could not be asked).

    ``command`` is the command name (never the whole line: it may carry a private key), ``message`` the node's
    ``error``/``message`` text or our own description, ``reply`` the parsed JSON reply when there was one.
    """

    code = "rpc_error"

    def __init__(self, command: str, message: str, reply: dict[str, Any] | list[Any] | None = None) -> None:
        super().__init__(command, message)
        self.command = command
        self.message = message
        self.reply = reply

    def __str__(self) -> str:
        return f"{self.command}: {self.message}" if self.command else self.message


class NodeAuthError(RPCError):
    """HTTP 401: wrong or missing RPC password."""

    code = "node_auth_failed"


class NodeUnreachable(RPCError):
    """Connection refused or reset, a timeout, a non-JSON body or an unexpected HTTP status."""

    code = "node_unreachable"


class NodeStartingUp(RPCError):
    """``{"status":false,"message":"Maxima still starting up.."}``: ask again in a moment."""

    code = "node_starting_up"


class AddressUnresolved(RPCError):
    """``MAX address invalid..``: the node could not resolve a ``MAX#`` address through its MLS (fixture 177).

    Transient: after the MLS node restarts, the addresses it serves are dark until the owners' nodes register with
    it again (about 4.5 minutes on real nodes, fixture 178b).
    """

    code = "address_unresolved"


class CommandPending(RPCError):
    """``"pending":true``: the RPC user is in read mode, so a write command was queued instead of run."""

    code = "command_pending"


class CommandSplit(RPCError):
    """A JSON array came back where one command was sent: something split the line at a ``;``."""

    code = "command_split"


class DeliveryFailed(RPCError):
    """``maxima action:send`` answered ``status:true`` but ``delivered:false``.

    ``error`` is the node's error text, ``permanent`` whether a retry is pointless (see
    ``PERMANENT_DELIVERY_ERRORS``), ``msgid`` the message id the node assigned, when it gave one.
    """

    code = "delivery_failed"

    def __init__(
        self,
        command: str,
        message: str,
        reply: dict[str, Any] | list[Any] | None = None,
        *,
        error: str | None = None,
        msgid: str | None = None,
        permanent: bool | None = None,
    ) -> None:
        super().__init__(command, message, reply)
        self.error = message if error is None else error
        self.msgid = msgid
        self.permanent = is_permanent_delivery_error(self.error) if permanent is None else permanent
