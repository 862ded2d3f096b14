"""Child process of the store concurrency and crash tests.

``_store_child.py write URL COUNT TAG``
    Print ``READY``, wait for a line on stdin (so that every child starts
    writing at once), then save COUNT records (one by one and in batches of
    five), then save every fifth one again with a new value.  After each
    save returns it prints ``<id> <value>`` for every record it wrote, so the
    last line of an id is the value the store must hold.

``_store_child.py replace URL ID``
    Print ``READY``; then for each line ``go BASE`` read from stdin, fork a
    writer and print ``PID <pid>``.  The writer replaces record ID over and
    over with payloads ``BASE+1``, ``BASE+2``, ..., printing ``WROTE n``
    after each replace returned, until it is killed; this process then
    prints ``DEAD <pid> <wait status>``.  Forking keeps each round cheap
    (the imports are done once) and exercises ``pre_fork``/``post_fork``.
    :func:`payload` makes each payload large and self-checking, so a torn
    record cannot pass for a whole one.
"""

from __future__ import annotations

import hashlib
import os
import sys
import traceback

from _store_objects import Item

from gc3session.persistence import Store, make_store

PAYLOAD_BYTES = 256 * 1024


def payload(n: int) -> dict[str, object]:
    """Payload number ``n``: its number and PAYLOAD_BYTES derived from it."""
    block = hashlib.sha256(b"%d" % n).digest()
    return {"n": n, "blob": block * (PAYLOAD_BYTES // len(block))}


def write(url: str, count: int, tag: str) -> None:
    store = make_store(url)
    store.list()  # connect and set up the schema before the start signal
    print("READY", flush=True)
    sys.stdin.readline()
    items = []
    for n in range(count):
        if n % 2 == 0:
            item = Item(f"{tag}-{n}")
            store.save(item)
            written = [item]
        else:
            written = [Item(f"{tag}-{n}-{k}") for k in range(5)]
            store.save_many(written)
        items.extend(written)
        sys.stdout.write("".join(f"{i.persistent_id} {i.payload}\n" for i in written))
        sys.stdout.flush()
    for item in items[::5]:
        item.payload += "-again"
        item.changed = True
        store.save(item)
        print(item.persistent_id, item.payload, flush=True)
    store.close()


def replace(url: str, record_id: str) -> None:
    store = make_store(url)
    store.list()
    print("READY", flush=True)
    for line in sys.stdin:
        base = int(line.split()[1])
        store.pre_fork()
        pid = os.fork()
        if pid == 0:
            _replace_forever(store, record_id, base)
        _say("PID", pid)
        _, status = os.waitpid(pid, 0)
        _say("DEAD", pid, status)


def _say(*words: object) -> None:
    """Print one line with a single ``write``: a writer killed mid-line must not leave half
    of one (``print`` writes word by word when Python runs unbuffered, PYTHONUNBUFFERED=1),
    which the parent would read glued to the next line."""
    os.write(1, (" ".join(map(str, words)) + "\n").encode())


def _replace_forever(store: Store, record_id: str, base: int) -> None:
    """The forked writer: replace the record until killed (it never returns)."""
    try:
        store.post_fork()
        n = base
        while True:
            n += 1
            store.replace(record_id, Item(payload(n)))
            _say("WROTE", n)
    except BaseException:
        traceback.print_exc()  # the parent shows it: a writer must only die of the kill
        sys.stderr.flush()
    finally:
        os._exit(1)


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif sys.argv[1] == "replace":
        replace(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown mode {sys.argv[1]!r}")
