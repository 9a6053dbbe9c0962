"""Minima's text encodings: ``0x`` hex, ``Mx`` base 32, RSA public keys and Maxima addresses.

Pure functions over bytes and str, no I/O. Everything that parses is strict and raises ``CodecError``: these
strings end up inside RPC command lines, so a parser that lets a space, a ``;`` or a quote through would be an
injection hole (see ``maxima/REFERENCE.md`` §1 and §2).
"""

import base64
import binascii
import hashlib
import ipaddress
import json
import re
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_der_public_key

from .errors import CodecError

# ---------------------------------------------------------------------------------------------------------- hex


def to_hex(data: bytes) -> str:
    """``"0x"`` + uppercase hex, as nodes write it."""
    return "0x" + bytes(data).hex().upper()


def from_hex(text: str) -> bytes:
    """Decode ``0x``/``0X`` hex; an even number of ASCII hex digits only (no spaces, no sign).

    ``binascii.a2b_hex`` is that strict itself (unlike ``bytes.fromhex``, which skips spaces), and a message's
    ciphertext passes through here: a regex over its 128 K digits cost 1.6 ms, this 0.04 ms
    (``docs/performance.md``)."""
    if not isinstance(text, str) or text[:2] not in ("0x", "0X"):
        raise CodecError("expected 0x followed by an even number of hex digits")
    try:
        return binascii.a2b_hex(text[2:])
    except ValueError:  # binascii.Error (an odd count, a digit that is not hex) or a character that is not ASCII
        raise CodecError("expected 0x followed by an even number of hex digits") from None


# ----------------------------------------------------------------------------------------------------------- Mx

# Java's BigInteger.toString(32) digits 0-9a-v, with i->w, l->y, o->z, uppercased (REFERENCE §2 "Mx encoding").
_MX_DIGITS = "0123456789ABCDEFGHWJKYMNZPQRSTUV"
_RFC_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_TO_MX = str.maketrans(_RFC_B32, _MX_DIGITS)
_MX_TO_JAVA = str.maketrans("WYZ", "ILO")  # Mx's digits as ``int(…, 32)`` reads them (Java's, uppercased)
_MX_RE = re.compile(f"Mx[{_MX_DIGITS}]+")
_MX_MAX_DATA = 0xFFFF  # the length is a uint16
_MX_MAX_TEXT = 2 + (8 * (3 + _MX_MAX_DATA + 4) + 4) // 5


def _mx_checksum(data: bytes) -> bytes:
    return hashlib.sha3_256(data).digest()[:4]


def mx_encode(data: bytes) -> str:
    """Minima's Mx text: base 32 of the integer ``0x01 ‖ uint16-BE(len) ‖ data ‖ SHA3-256(data)[:4]``."""
    data = bytes(data)
    if len(data) > _MX_MAX_DATA:
        raise CodecError("Mx data is limited to 65535 bytes")
    raw = b"\x01" + len(data).to_bytes(2, "big") + data + _mx_checksum(data)
    # Left-pad to whole 5-byte groups so RFC 4648 base 32 writes the same big integer, then drop leading zeros.
    padded = bytes(-len(raw) % 5) + raw
    digits = base64.b32encode(padded).decode("ascii").translate(_TO_MX)
    return "Mx" + digits.lstrip("0")


def mx_decode(text: str) -> bytes:
    """Reverse ``mx_encode``; checks the marker byte, the length, the checksum and that the text is canonical."""
    if not isinstance(text, str) or len(text) > _MX_MAX_TEXT or not _MX_RE.fullmatch(text):
        raise CodecError("expected Mx followed by base-32 digits")
    if text[2] == "0":  # the one spelling of a value has no leading zero (``mx_encode`` strips them)
        raise CodecError("Mx text is not in canonical form")
    # Python reads Java's base-32 digits itself, in linear time: a key decodes in about 9 us, where RFC 4648's decoder
    # (Python code) and encoding the value again to check its spelling took 60-70 us. Each value has one spelling
    # without a leading zero, so no other check of it is needed.
    value = int(text[2:].translate(_MX_TO_JAVA), 32)
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    if len(raw) < 7 or raw[0] != 1:
        raise CodecError("not an Mx value")
    size = int.from_bytes(raw[1:3], "big")
    data, checksum = raw[3:-4], raw[-4:]
    if len(data) != size:
        raise CodecError("Mx length field does not match")
    if checksum != _mx_checksum(data):
        raise CodecError("Mx checksum is wrong")
    return data


# ----------------------------------------------------------------------------------------------------- RSA keys

RSA_SPKI_PREFIX = bytes.fromhex("30819F300D06092A864886F70D010101050003818D0030818902818100")
RSA_SPKI_LENGTH = 162
RSA_KEY_BITS = 1024


def _key_bytes(value: str | bytes) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str) and value[:2] in ("0x", "0X"):
        return from_hex(value)
    if isinstance(value, str) and value.startswith("Mx"):
        return mx_decode(value)
    raise CodecError("a public key is 0x hex, Mx text or DER bytes")


def parse_public_key(value: str | bytes) -> bytes:
    """Return the 162-byte X.509 SPKI DER of a Maxima RSA-1024 public key given as ``0x…``, ``Mx…`` or DER."""
    der = _key_bytes(value)
    if len(der) != RSA_SPKI_LENGTH or not der.startswith(RSA_SPKI_PREFIX):
        raise CodecError("not a 162-byte RSA-1024 SubjectPublicKeyInfo")
    try:
        key = load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm):
        raise CodecError("the public key does not load") from None
    if not isinstance(key, RSAPublicKey) or key.key_size != RSA_KEY_BITS:
        raise CodecError("not an RSA-1024 public key")
    if key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo) != der:
        raise CodecError("the public key is not in canonical DER")
    return der


def public_key_hex(der: bytes) -> str:
    """The canonical ``0x…`` uppercase text of a (validated) public key."""
    return to_hex(parse_public_key(der))


def canonical_public_key(value: object) -> str:
    """The one spelling of a Maxima public key, ``0x`` + upper-case hex of its DER, from ``0x``/``0X`` hex in any
    case, ``Mx…`` text or DER bytes. ``CodecError`` for anything else (a non-text value included): a caller for
    whom a bad key is simply "no key" catches it."""
    if not isinstance(value, str | bytes | bytearray | memoryview):
        raise CodecError("a public key is 0x hex, Mx text or DER bytes")
    return to_hex(parse_public_key(value))


# ------------------------------------------------------------------------------------------- Maxima addresses

_LABEL_RE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_PORT_RE = re.compile(r"[1-9][0-9]{0,4}")
_MAX_ADDRESS_TEXT = 4096


def _is_hostname(host: str) -> bool:
    labels = host.split(".")
    if len(host) > 253 or not all(_LABEL_RE.fullmatch(label) for label in labels):
        return False
    if all(label.isdigit() for label in labels):
        return _is_ipv4(host)  # all-numeric names must be a real dotted quad, not "999.1"
    return True


def _is_ipv4(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


def _is_ipv6(host: str) -> bool:
    if not host.isascii() or "%" in host:  # no zone ids: they would carry arbitrary text
        return False
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        return False
    return True


def validate_host(host: str) -> str:
    """A hostname (letters, digits, ``-``, ``_``, dots), an IPv4 literal or an IPv6 literal (without brackets)."""
    if not isinstance(host, str) or not (_is_hostname(host) or _is_ipv6(host)):
        raise CodecError("invalid host")
    return host


def validate_port(port: int) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise CodecError("invalid port")
    return port


def _split_host_port(text: str) -> tuple[str, int]:
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep or not _is_ipv6(host):
            raise CodecError("invalid [IPv6]:port")
    else:
        host, sep, port = text.rpartition(":")
        if not sep or ":" in host:  # an IPv6 literal must be in brackets, or host:port is ambiguous
            raise CodecError("a Maxima address needs host:port")
    if not _PORT_RE.fullmatch(port):
        raise CodecError("invalid port")
    return validate_host(host), validate_port(int(port))


@dataclass(frozen=True)
class MaximaAddress:
    """``Mx<key>@host:port``: a 162-byte RSA key (an MLS or per-host key) and the node's P2P host and port."""

    key: bytes
    host: str
    port: int

    def __post_init__(self) -> None:
        if not isinstance(self.key, bytes):
            raise CodecError("the key must be bytes")
        parse_public_key(self.key)
        validate_host(self.host)
        validate_port(self.port)

    @classmethod
    def parse(cls, text: str) -> "MaximaAddress":
        if not isinstance(text, str) or len(text) > _MAX_ADDRESS_TEXT:
            raise CodecError("invalid Maxima address")
        mx, sep, host_port = text.partition("@")
        if not sep or not mx.startswith("Mx"):
            raise CodecError("a Maxima address is Mx<key>@host:port")
        host, port = _split_host_port(host_port)
        return cls(key=parse_public_key(mx), host=host, port=port)

    @property
    def key_hex(self) -> str:
        return to_hex(self.key)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{mx_encode(self.key)}@{host}:{self.port}"


@dataclass(frozen=True)
class PermanentAddress:
    """``MAX#0x<identity key>#Mx<MLS key>@host:port``: resolved through that MLS (REFERENCE §4)."""

    identity: bytes
    mls: MaximaAddress

    def __post_init__(self) -> None:
        if not isinstance(self.identity, bytes) or not isinstance(self.mls, MaximaAddress):
            raise CodecError("invalid permanent address")
        parse_public_key(self.identity)

    @classmethod
    def parse(cls, text: str) -> "PermanentAddress":
        if not isinstance(text, str) or len(text) > _MAX_ADDRESS_TEXT or not text.startswith("MAX#"):
            raise CodecError("a permanent address is MAX#0x<key>#Mx<key>@host:port")
        identity, sep, mls = text[4:].partition("#")
        if not sep or identity[:2] not in ("0x", "0X"):
            raise CodecError("a permanent address is MAX#0x<key>#Mx<key>@host:port")
        return cls(identity=parse_public_key(identity), mls=MaximaAddress.parse(mls))

    @property
    def identity_hex(self) -> str:
        return to_hex(self.identity)

    def __str__(self) -> str:
        return f"MAX#{to_hex(self.identity)}#{self.mls}"


def parse_address(text: str) -> MaximaAddress | PermanentAddress:
    """Parse either form of Maxima address."""
    if isinstance(text, str) and text.startswith("MAX#"):
        return PermanentAddress.parse(text)
    return MaximaAddress.parse(text)


def canonical_json(value: object) -> bytes:
    """The project's canonical JSON (signed statements and letters): sorted keys, no whitespace, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
