"""The crypto the protocol uses: Maxima's RSA scheme (maxsign, maxencrypt) and NaCl sealed boxes.

Pure functions over bytes, no I/O, no encoding. ``cryptography`` and PyNaCl exceptions are caught here and
re-raised as ``CryptoError``; nothing in this module logs. Layouts are the ones confirmed against real nodes in
``docs/vectors/maxima/53-python-crypto-verification.json``.

Maxima's scheme is weak (RSA-1024, PKCS#1 v1.5, AES-CBC without a MAC): it is here for compatibility with what a
bare Minima node can do (``maxima-rsa-v1``); ``nacl-sealedbox-v1`` is the default envelope.
"""

import os
import struct
from collections.abc import Callable

import nacl.exceptions
import nacl.public
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_der_private_key,
    load_der_public_key,
)

from .codecs import RSA_KEY_BITS, parse_public_key
from .errors import CodecError, CryptoError

AES_KEY_LENGTH = 16
AES_BLOCK = 16
IV_LENGTH = 16
RSA_BLOCK = RSA_KEY_BITS // 8  # 128: the size of a signature and of the wrapped AES key
BOX_KEY_LENGTH = 32
_U32 = struct.Struct(">I")


# ------------------------------------------------------------------------------------------------- RSA keys


def generate_maxima_keypair() -> tuple[bytes, bytes]:
    """A fresh RSA-1024 (e=65537) pair like ``maxcreate``: (PKCS#8 DER private, 162-byte SPKI DER public)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    private = key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    public = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return private, public


def _private_key(private_key_der: bytes) -> rsa.RSAPrivateKey:
    try:
        key = load_der_private_key(bytes(private_key_der), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise CryptoError("the private key does not load") from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size != RSA_KEY_BITS:
        raise CryptoError("not an RSA-1024 private key")
    return key


def _public_key(public_key_der: bytes) -> rsa.RSAPublicKey:
    try:
        der = parse_public_key(bytes(public_key_der))
    except (CodecError, TypeError):
        raise CryptoError("not a Maxima RSA-1024 public key") from None
    key = load_der_public_key(der)
    assert isinstance(key, rsa.RSAPublicKey)  # parse_public_key checked it
    return key


class MaximaPrivateKey:
    """A Maxima RSA-1024 private key, loaded and checked once.

    Loading a key (its consistency check) costs about fifty signatures, so whoever signs or opens many messages
    with one key (a node, the bench's seed) keeps one of these; ``maxsign``, ``maxdecrypt`` and
    ``maxima_public_key`` load the key they are given at each call. ``CryptoError`` when the key does not load.
    """

    __slots__ = ("_key",)

    def __init__(self, private_key_der: bytes) -> None:
        self._key = _private_key(private_key_der)

    def __repr__(self) -> str:
        return "MaximaPrivateKey(...)"

    def public_key(self) -> bytes:
        """The 162-byte SPKI DER public key of this key."""
        return self._key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)

    def sign(self, data: bytes) -> bytes:
        """``maxsign`` with this key."""
        return self._key.sign(bytes(data), PKCS1v15(), hashes.SHA256())

    def decrypt(self, blob: bytes) -> bytes:
        """``maxdecrypt`` with this key."""
        if not isinstance(blob, bytes | bytearray):
            raise CryptoError("the blob must be bytes")
        iv, wrapped_key, ciphertext = _split_blob(bytes(blob))
        try:
            aes_key = self._key.decrypt(wrapped_key, PKCS1v15())
        except ValueError:
            raise CryptoError("cannot decrypt") from None
        if len(aes_key) != AES_KEY_LENGTH:  # also what a wrong key usually yields under implicit rejection
            raise CryptoError("cannot decrypt")
        decryptor = _aes_cbc(aes_key, iv).decryptor()
        padded = decryptor.update(ciphertext) + decryptor.finalize()
        unpadder = padding.PKCS7(AES_BLOCK * 8).unpadder()
        try:
            return unpadder.update(padded) + unpadder.finalize()
        except ValueError:
            raise CryptoError("cannot decrypt") from None


def maxima_public_key(private_key_der: bytes) -> bytes:
    """The 162-byte SPKI DER public key that belongs to a PKCS#8 DER private key."""
    return MaximaPrivateKey(private_key_der).public_key()


# --------------------------------------------------------------------------------------------- sign / verify


def maxsign(private_key_der: bytes, data: bytes) -> bytes:
    """SHA256withRSA, PKCS#1 v1.5: the 128-byte signature ``maxsign`` makes (deterministic)."""
    return MaximaPrivateKey(private_key_der).sign(data)


def maxsigner(private_key_der: bytes) -> Callable[[bytes], bytes]:
    """``maxsign`` with the key loaded once (``MaximaPrivateKey``), for whoever signs many statements at a time."""
    return MaximaPrivateKey(private_key_der).sign


def maxverify(public_key_der: bytes, data: bytes, signature: bytes) -> bool:
    """True only for a valid signature; False for any wrong one; ``CryptoError`` for a malformed key."""
    key = _public_key(public_key_der)
    if not isinstance(signature, bytes | bytearray) or len(signature) != RSA_BLOCK:
        return False
    try:
        key.verify(bytes(signature), bytes(data), PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def signed_by(public_key_der: bytes, data: bytes, signature: bytes) -> bool:
    """``maxverify``, with a malformed key counting as "not signed by it" (for documents that name their signer)."""
    try:
        return maxverify(public_key_der, data, signature)
    except CryptoError:
        return False


# ------------------------------------------------------------------------------------- maxencrypt / maxdecrypt


def _field(value: bytes) -> bytes:
    return _U32.pack(len(value)) + value


def _aes_cbc(key: bytes, iv: bytes) -> Cipher:
    return Cipher(algorithms.AES(key), modes.CBC(iv))


def maxencrypt(
    public_key_der: bytes, plaintext: bytes, *, iv: bytes | None = None, aes_key: bytes | None = None
) -> bytes:
    """The ``maxencrypt`` blob: ``u32‖IV(16) ‖ u32‖RSA-PKCS1v15(AES key)(128) ‖ u32‖AES-128-CBC-PKCS5(plaintext)``.

    ``iv`` and ``aes_key`` are for test vectors only; leave them out and fresh random ones are used.
    """
    key = _public_key(public_key_der)
    iv = os.urandom(IV_LENGTH) if iv is None else bytes(iv)
    aes_key = os.urandom(AES_KEY_LENGTH) if aes_key is None else bytes(aes_key)
    if len(iv) != IV_LENGTH or len(aes_key) != AES_KEY_LENGTH:
        raise CryptoError("the IV and the AES key are 16 bytes each")
    padder = padding.PKCS7(AES_BLOCK * 8).padder()
    padded = padder.update(bytes(plaintext)) + padder.finalize()
    encryptor = _aes_cbc(aes_key, iv).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    wrapped_key = key.encrypt(aes_key, PKCS1v15())
    return _field(iv) + _field(wrapped_key) + _field(ciphertext)


def _split_blob(blob: bytes) -> tuple[bytes, bytes, bytes]:
    """The three length-prefixed fields of a maxencrypt blob; every length checked, nothing read past the end."""
    fields = []
    offset = 0
    for _ in range(3):
        if len(blob) - offset < _U32.size:
            raise CryptoError("truncated maxencrypt blob")
        (size,) = _U32.unpack_from(blob, offset)
        offset += _U32.size
        if size > len(blob) - offset:
            raise CryptoError("truncated maxencrypt blob")
        fields.append(blob[offset : offset + size])
        offset += size
    if offset != len(blob):
        raise CryptoError("trailing bytes after the maxencrypt blob")
    iv, wrapped_key, ciphertext = fields
    if len(iv) != IV_LENGTH or len(wrapped_key) != RSA_BLOCK:
        raise CryptoError("malformed maxencrypt blob")
    if not ciphertext or len(ciphertext) % AES_BLOCK:
        raise CryptoError("malformed maxencrypt blob")
    return iv, wrapped_key, ciphertext


def maxdecrypt(private_key_der: bytes, blob: bytes) -> bytes:
    """Open a ``maxencrypt`` blob; ``CryptoError`` on any malformation or a wrong key."""
    if not isinstance(blob, bytes | bytearray):
        raise CryptoError("the blob must be bytes")
    _split_blob(bytes(blob))  # a malformed blob is named as such whatever the key
    return MaximaPrivateKey(private_key_der).decrypt(blob)


# ------------------------------------------------------------------------------------------ NaCl sealed boxes


def box_keypair() -> tuple[bytes, bytes]:
    """A fresh X25519 pair for ``nacl-sealedbox-v1``: (private 32 bytes, public 32 bytes)."""
    private = nacl.public.PrivateKey.generate()
    return bytes(private), bytes(private.public_key)


def seal(box_public: bytes, plaintext: bytes) -> bytes:
    """A NaCl sealed box (anonymous sender) to ``box_public``: 48 bytes longer than the plaintext."""
    try:
        box = nacl.public.SealedBox(nacl.public.PublicKey(bytes(box_public)))
        return box.encrypt(bytes(plaintext))
    except (nacl.exceptions.CryptoError, TypeError):  # nacl's ValueError/TypeError derive from its CryptoError
        raise CryptoError("cannot seal to this box key") from None


def unseal(box_private: bytes, ciphertext: bytes) -> bytes:
    """Open a sealed box; ``CryptoError`` for a wrong key, a bad key or a tampered ciphertext."""
    try:
        box = nacl.public.SealedBox(nacl.public.PrivateKey(bytes(box_private)))
        return box.decrypt(bytes(ciphertext))
    except (nacl.exceptions.CryptoError, TypeError):  # nacl's ValueError/TypeError derive from its CryptoError
        raise CryptoError("cannot open the sealed box") from None
