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
    if type(data) is not bytes and isinstance(data, str):
        data = data.encode("ascii")
    rem = len(data) & 3
    if rem:
        # The unused low bits of the last character must be zero (one canonical encoding only);
        # no entry: not a base64url character, or a length of 1 mod 4 (never valid).
        if _SPARE_BITS.get(data[-1] | rem << 8, 1):
            raise ValueError("bad base64url length" if rem == 1 else "non-canonical base64url")
        return _a2b(data.translate(_B64_TABLE) + _PADDING[rem], strict_mode=True)
    return _a2b(data.translate(_B64_TABLE), strict_mode=True)


_a2b = binascii.a2b_base64
_PADDING = (b"", b"===", b"==", b"=")
# (last character | length % 4 << 8) -> its unused low bits, for the lengths that have some:
# 2 (4 spare bits) and 3 (2 spare bits). A length of 1 mod 4 is never valid (no entry).
_SPARE_BITS = {
    c | rem << 8: value & (0x0F if rem == 2 else 0x03) for c, value in _B64_VALUES.items() for rem in (2, 3)
}
