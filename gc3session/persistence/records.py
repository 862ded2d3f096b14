"""Reading a store's records as tools do: in batches, and for the ids they refer to.

``gsession fsck`` and ``gsession copy`` read every record of a store and
need, for each, either its bytes or the error that says why not, and the ids
of the records it refers to, without trusting that those load.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from ..exceptions import LoadError
from .decoding import Decoder
from .store import Store

#: Records read per batch (one query per batch on SQL stores).
READ_BATCH = 500


class _Reference:
    """Stands for a referenced record that cannot be loaded, while its parent is decoded."""

    def __init__(self, pid: str) -> None:
        self.persistent_id = pid


class _ReferenceRecorder(dict):  # type: ignore[type-arg]
    """A decoder memo that notes every id the record refers to.

    The decoder looks each reference up in its memo before fetching it, so
    every reference passes through here: it is noted and answered with the
    object loaded through the store, or, if that fails (a missing or damaged
    record), with a stand-in, so that the record itself is judged on its own
    bytes and a bad child is reported once, as itself.
    """

    def __init__(self, root: str, load: Callable[[str], Any]) -> None:
        super().__init__()
        self.root = root
        self.refs: dict[str, None] = {}
        self._load = load

    def __getitem__(self, key: str) -> Any:
        try:
            return super().__getitem__(key)
        except KeyError:
            if key == self.root:
                raise
        self.refs[key] = None
        try:
            obj = self._load(key)
        except LoadError:
            obj = _Reference(key)
        super().__setitem__(key, obj)
        return obj

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        try:
            return self[key]
        except KeyError:
            return default


def record_references(store: Store, pid: str, data: bytes) -> list[str]:
    """Decode record ``pid`` (its bytes ``data``) alone; return the ids it refers to.

    :raises LoadError: (a subclass) if the record cannot be decoded.
    """
    memo = _ReferenceRecorder(pid, store.load)
    decoder = Decoder(lambda _pid: data, store.location, memo, trusted=store.trusted)
    decoder.decode(pid, data)
    return list(memo.refs)


def read_records(store: Store, ids: list[str]) -> Iterator[tuple[str, "bytes | LoadError"]]:
    """``(id, bytes)`` or ``(id, the LoadError that says why not)`` for each of ``ids``.

    Records are read :data:`READ_BATCH` at a time: one query per batch on SQL
    stores instead of one round trip per record.
    """
    for start in range(0, len(ids), READ_BATCH):
        chunk = ids[start:start + READ_BATCH]
        batch = store.read_records(chunk)  # leaves out what read_record explains below
        for pid in chunk:
            if pid in batch:
                yield pid, batch.pop(pid)
                continue
            try:
                yield pid, store.read_record(pid)
            except LoadError as err:
                yield pid, err


__all__ = ["READ_BATCH", "read_records", "record_references"]
