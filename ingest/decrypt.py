"""Decrypt the encrypted fields of Cloudflare Logpush records.

Cloudflare encrypts ``Metadata``, ``RequestBody`` and ``ResponseBody``: a fresh
AES-256-GCM key per record, wrapped with RSA-OAEP (SHA-256) by the public key
uploaded to the gateway. Each value is ``{"type": "encrypted", "key": …, "iv": …,
"data": …}`` with base64 ``key`` (the wrapped AES key), ``iv`` (the GCM nonce) and
``data`` (ciphertext followed by the 16-byte GCM tag). The plaintext is JSON text.

``Decryptor.open(value)`` returns the decrypted JSON value, or raises
``DecryptError`` with a one-line reason (wrong key, tampered data, bad base64);
the reason never contains key material or plaintext. Unwrapped keys are cached
per wrapped key, since a record's fields may share one (RSA is the slow part).
Thread-safe for reading: the parser thread owns its Decryptor.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any, Final

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ingest.errors import ConfigError, DecryptError

__all__ = ["DecryptError", "Decryptor", "is_encrypted", "load_private_key", "read_private_key"]

_OAEP: Final = padding.OAEP(
    mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None
)
_CACHE_SIZE: Final = 4096


def is_encrypted(value: object) -> bool:
    """Whether a field holds Cloudflare's encrypted-value object."""
    return isinstance(value, dict) and value.get("type") == "encrypted" and "data" in value


def read_private_key(path: Path) -> bytes:
    """The PEM bytes of the key file at ``path`` (checked as a key: ``ConfigError``)."""
    try:
        pem = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"cannot read private key {path}: {err.strerror}") from err
    load_private_key(pem, source=str(path))
    return pem


def load_private_key(pem: bytes, *, source: str) -> rsa.RSAPrivateKey:
    """An RSA private key from PEM bytes; ConfigError (naming ``source``) otherwise."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{source} is not an unencrypted PEM private key") from err
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"{source} is not an RSA private key")
    return key


class Decryptor:
    """Decrypts encrypted field objects with one RSA private key."""

    def __init__(self, private_key: rsa.RSAPrivateKey) -> None:
        self._key = private_key
        self._unwrapped: dict[str, AESGCM] = {}

    @classmethod
    def from_file(cls, path: Path) -> Decryptor:
        """A Decryptor for the PEM key in ``path``."""
        return cls(load_private_key(read_private_key(path), source=str(path)))

    def open(self, value: dict[str, Any]) -> Any:
        """The decrypted JSON value (a string when the plaintext is not JSON)."""
        try:
            wrapped = str(value["key"])
            nonce = base64.b64decode(str(value["iv"]), validate=True)
            data = base64.b64decode(str(value["data"]), validate=True)
        except (KeyError, binascii.Error, ValueError):
            raise DecryptError("encrypted field is malformed (key, iv or data)") from None
        cipher = self._cipher(wrapped)
        try:
            plaintext = cipher.decrypt(nonce, data, None)
        except (InvalidTag, ValueError):
            raise DecryptError(
                "encrypted field failed authentication (tampered or wrong key)"
            ) from None
        try:
            return orjson.loads(plaintext)
        except orjson.JSONDecodeError:
            return plaintext.decode("utf-8", errors="replace")

    def _cipher(self, wrapped: str) -> AESGCM:
        cipher = self._unwrapped.get(wrapped)
        if cipher is not None:
            return cipher
        try:
            key = self._key.decrypt(base64.b64decode(wrapped, validate=True), _OAEP)
            cipher = AESGCM(key)
        except (ValueError, binascii.Error):
            raise DecryptError(
                "encrypted field's key does not open with this private key"
            ) from None
        if len(self._unwrapped) >= _CACHE_SIZE:
            self._unwrapped.clear()
        self._unwrapped[wrapped] = cipher
        return cipher
