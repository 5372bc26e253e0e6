"""A key store writer run as a separate process by the store tests.

``python -m tests.keys.writer add DIR LABEL N``   adds N keys through update_keyset, then exits.
``python -m tests.keys.writer churn DIR``         rewrites the keyset forever (until killed),
                                                  printing "ready" after its first write.
"""

from __future__ import annotations

import sys

from s2s.keys import FileKeyStore, KeySet, KeyState, generate_key, update_keyset

__all__ = ["add", "churn"]


def add(directory: str, label: str, count: int) -> None:
    store = FileKeyStore(directory)
    for i in range(count):
        key = generate_key("ES256", now=float(i), state=KeyState.RETIRED)
        update_keyset(store, lambda ks, key=key: ks.add(key), attempts=1000)
    print(f"{label} done", flush=True)


def churn(directory: str) -> None:
    store = FileKeyStore(directory)
    pool = [generate_key("ES256", now=float(i), state=KeyState.RETIRED) for i in range(48)]
    size = 8
    first = True
    while True:
        # Alternate between small and large keysets so the file shrinks and grows.
        size = 40 if size == 8 else 8
        update_keyset(store, lambda _ks, n=size: KeySet(tuple(pool[:n])), attempts=1000)
        if first:
            print("ready", flush=True)
            first = False


if __name__ == "__main__":
    mode, directory, *rest = sys.argv[1:]
    if mode == "add":
        add(directory, rest[0], int(rest[1]))
    else:
        churn(directory)
