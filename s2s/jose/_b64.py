"""base64url without padding (RFC 7515 §2), the one encoder and the one strict decoder."""

from __future__ import annotations

import binascii

__all__ = ["b64url_decode", "b64url_encode"]

_URLSAFE = bytes.maketrans(b"+/", b"-_")
# '-'/'_' become the standard alphabet, while '+', '/', '=' and whitespace become '!', which strict
# binascii refuses: one alphabet, no padding, no whitespace.
_B64_TABLE = bytes.maketrans(b"-_+/= \t\r\n", b"+/!!!!!!!")
_B64_VALUES = {
    c: i for i, c in enumerate(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
}


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url, without the wrappers of :mod:`base64`."""
    return binascii.b2a_base64(data, newline=False).rstrip(b"=").translate(_URLSAFE).decode("ascii")


def b64url_decode(data: bytes | str) -> bytes:
    """Decode unpadded base64url, refusing any other alphabet, padding and non-zero spare bits.

    Raises ValueError (``binascii.Error`` and ``UnicodeEncodeError`` are ValueErrors).
    """
    if isinstance(data, str):
        data = data.encode("ascii")
    rem = len(data) % 4
    if rem == 1:
        raise ValueError("bad base64url length")
    if rem:
        # The unused low bits of the last character must be zero (one canonical encoding only).
        last = _B64_VALUES.get(data[-1])
        if last is None or last & (0x0F if rem == 2 else 0x03):
            raise ValueError("non-canonical base64url")
        return binascii.a2b_base64(data.translate(_B64_TABLE) + b"=" * (4 - rem), strict_mode=True)
    return binascii.a2b_base64(data.translate(_B64_TABLE), strict_mode=True)
