"""Store benchmark: save, load, replace and remove rates of each store, beside their anchors.

    python3 -m benchmarks.stores [--quick] [--sizes 1000,10000,100000] [--no-gc3pie]

For each size N and each store (filesystem, SQLite, PostgreSQL) the store is
filled with N tasks of about 2 KB in one ``save_many`` call (timed: the bulk
save), then samples of single operations are timed on the full store, at full
durability and at ``durable=False``:

* ``save`` of a new task, ``load`` of a task not in memory, ``replace`` of an
  existing record, ``remove`` of one.

Beside each figure stands its anchor, measured in the same run on the same
disk, doing the same work with nothing but the raw primitives; single
operations of ours and of the anchor take turns, so that both see the same
bursts of load on a shared machine:

* filesystem: atomic file writes (tmp ``O_EXCL``, write, fsync, rename,
  directory fsync) for single writes; all files written, one ``syncfs``, the
  renames and one fsync per shard directory for the bulk; ``open``+``read``
  for a load; ``unlink`` + directory fsync for a remove;
* SQLite: raw ``sqlite3`` on the same schema (WAL, ``synchronous=FULL``, or
  ``OFF`` at durable=False): ``executemany`` in one transaction for the bulk,
  one statement per transaction for single writes, select by primary key;
* PostgreSQL: raw psycopg on the same schema, the same way
  (``synchronous_commit`` on / off).

Two rows are for information, not targets: the bulk save beside the anchor
plus ``pickle.dumps`` of the same tasks, and the load beside the point read
plus unpickling the record (a store must do both; the raw anchors do neither).

At N = 10,000 (1,000 with ``--quick``) GC3Pie 2.6.8 does the same work in its
own virtualenv (see ``benchmarks/_gc3pie.py``); GC3Pie has no bulk save, so its
bulk figure is its single-save rate.  The filesystem anchor and all
"durable=False" figures skip fsync, as GC3Pie's FilesystemStore does.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import pickle
import random
import sqlite3
import sys
from typing import Any, Callable, Iterator

from benchmarks import _common, _gc3pie
from benchmarks._common import PgCluster, Report, make_task, per_op, time_interleaved, time_once

SHARD = 1000
DEFAULT_SIZES = [1_000, 10_000, 100_000]
QUICK_SIZES = [300, 1_000]
GC3PIE_SIZE = 10_000
KINDS = ["filesystem", "sqlite", "postgresql"]


# --- raw anchors ---------------------------------------------------------------------

class RawFiles:
    """Record files in shards of 1000, written with nothing but os calls."""

    def __init__(self, directory: str, data: bytes) -> None:
        self.directory = directory
        self.data = data
        self.durable = True
        libc = ctypes.CDLL(None, use_errno=True)
        self._syncfs = getattr(libc, "syncfs", None)

    def _shard(self, seqno: int) -> str:
        path = os.path.join(self.directory, str(seqno // SHARD))
        if not os.path.isdir(path):
            os.makedirs(path)
            if self.durable:
                _common.fsync_dir(self.directory)
        return path

    def bulk(self, n: int) -> None:
        pending = []
        for seqno in range(1, n + 1):
            shard = self._shard(seqno)
            tmp = os.path.join(shard, f".Task.{seqno}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, self.data)
            os.close(fd)
            pending.append((tmp, os.path.join(shard, f"Task.{seqno}")))
        if self._syncfs is not None:
            fd = os.open(self.directory, os.O_RDONLY)
            try:
                self._syncfs(fd)
            finally:
                os.close(fd)
        else:
            for tmp, _ in pending:
                fd = os.open(tmp, os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)
        for tmp, target in pending:
            os.rename(tmp, target)
        for shard in sorted({os.path.dirname(t) for _, t in pending}):
            _common.fsync_dir(shard)

    def save(self, seqno: int) -> None:
        _common.raw_atomic_write(self._shard(seqno), f"Task.{seqno}", self.data, self.durable)

    replace = save

    def load(self, seqno: int) -> bytes:
        return _common.raw_read(os.path.join(self.directory, str(seqno // SHARD), f"Task.{seqno}"))

    def remove(self, seqno: int) -> None:
        shard = os.path.join(self.directory, str(seqno // SHARD))
        os.unlink(os.path.join(shard, f"Task.{seqno}"))
        if self.durable:
            _common.fsync_dir(shard)

    def set_durable(self, durable: bool) -> None:
        self.durable = durable

    def close(self) -> None:
        pass


_SCHEMA = ["CREATE TABLE raw (id VARCHAR(255) PRIMARY KEY, data {blob} NOT NULL,"
           " state VARCHAR(128), cls VARCHAR(255))",
           "CREATE INDEX raw_state ON raw (state)"]
_CLS = "gc3session.task:Task"


class RawSqlite:
    """The store's schema in a SQLite file, driven by raw ``sqlite3`` (WAL)."""

    def __init__(self, path: str, data: bytes) -> None:
        self.data = data
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        for ddl in _SCHEMA:
            self.conn.execute(ddl.format(blob="BLOB"))
        self.set_durable(True)

    def set_durable(self, durable: bool) -> None:
        self.conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")

    def bulk(self, n: int) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.executemany("INSERT INTO raw VALUES (?, ?, ?, ?)",
                              ((f"Task.{i}", self.data, "NEW", _CLS) for i in range(1, n + 1)))
        self.conn.execute("COMMIT")

    def _one(self, sql: str, params: tuple[Any, ...]) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.execute(sql, params)
        self.conn.execute("COMMIT")

    def save(self, seqno: int) -> None:
        self._one("INSERT INTO raw VALUES (?, ?, ?, ?)", (f"Task.{seqno}", self.data, "NEW", _CLS))

    def replace(self, seqno: int) -> None:
        self._one("UPDATE raw SET data = ?, state = ? WHERE id = ?", (self.data, "NEW", f"Task.{seqno}"))

    def load(self, seqno: int) -> bytes:
        return self.conn.execute("SELECT data FROM raw WHERE id = ?", (f"Task.{seqno}",)).fetchone()[0]

    def remove(self, seqno: int) -> None:
        self._one("DELETE FROM raw WHERE id = ?", (f"Task.{seqno}",))

    def close(self) -> None:
        self.conn.close()


class RawPostgres:
    """The store's schema in a PostgreSQL database, driven by raw psycopg."""

    def __init__(self, connect_args: dict[str, Any], data: bytes) -> None:
        import psycopg

        self.data = data
        self.conn = psycopg.connect(**connect_args)
        self.reader = psycopg.connect(**connect_args, autocommit=True)
        with self.conn.transaction():
            for ddl in _SCHEMA:
                self.conn.execute(ddl.format(blob="BYTEA"))
        self.conn.commit()
        self.set_durable(True)

    def set_durable(self, durable: bool) -> None:
        self.conn.execute(f"SET synchronous_commit = {'on' if durable else 'off'}")
        self.conn.commit()

    def bulk(self, n: int) -> None:
        with self.conn.cursor() as cursor:
            cursor.executemany("INSERT INTO raw VALUES (%s, %s, %s, %s)",
                               [(f"Task.{i}", self.data, "NEW", _CLS) for i in range(1, n + 1)])
        self.conn.commit()

    def _one(self, sql: str, params: tuple[Any, ...]) -> None:
        self.conn.execute(sql, params)
        self.conn.commit()

    def save(self, seqno: int) -> None:
        self._one("INSERT INTO raw VALUES (%s, %s, %s, %s)", (f"Task.{seqno}", self.data, "NEW", _CLS))

    def replace(self, seqno: int) -> None:
        self._one("UPDATE raw SET data = %s, state = %s WHERE id = %s", (self.data, "NEW", f"Task.{seqno}"))

    def load(self, seqno: int) -> bytes:
        return self.reader.execute("SELECT data FROM raw WHERE id = %s", (f"Task.{seqno}",)).fetchone()[0]

    def remove(self, seqno: int) -> None:
        self._one("DELETE FROM raw WHERE id = %s", (f"Task.{seqno}",))

    def close(self) -> None:
        self.conn.close()
        self.reader.close()


def unpickle_record(data: bytes) -> Any:
    """Unpickle a record's two pickles (constructor arguments, state) with plain pickle."""
    stream = io.BytesIO(data)
    stream.seek(data.index(b"\n") + 1)
    unpickler = pickle.Unpickler(stream)
    return unpickler.load(), unpickler.load()


# --- one store, one size ----------------------------------------------------------------

@contextlib.contextmanager
def locations(kind: str, n: int, pg: PgCluster | None) -> Iterator[tuple[str, Callable[[bytes], Any], str]]:
    """(store URL, raw anchor constructor, GC3Pie URL) in fresh scratch space."""
    with _common.scratch(f"{kind}-{n}") as scratch:
        if kind == "filesystem":
            yield (os.path.join(scratch, "store"),
                   lambda data: RawFiles(os.path.join(scratch, "raw"), data),
                   os.path.join(scratch, "gc3pie"))
        elif kind == "sqlite":
            yield (f"sqlite:///{scratch}/store.db",
                   lambda data: RawSqlite(os.path.join(scratch, "raw.db"), data),
                   f"sqlite:///{scratch}/gc3pie.db")
        else:
            assert pg is not None
            ours, raw, theirs = pg.new_database(), pg.new_database(), pg.new_database()
            yield pg.url(ours), lambda data: RawPostgres(pg.connect_args(raw), data), pg.url(theirs)


def bench_store(report: Report, kind: str, n: int, sample: int, pg: PgCluster | None,
                gc3pie: bool, results: dict[tuple[str, int, str], tuple[float, float]]) -> None:
    """Bulk save N tasks, then time samples of single operations at both durabilities."""
    from gc3session.persistence import make_store

    rng = random.Random(n)
    with locations(kind, n, pg) as (url, make_raw, gc3pie_url):
        gc3 = None
        if gc3pie:
            kind_name = {"filesystem": "fs", "sqlite": "sqlite", "postgresql": "pg"}[kind]
            gc3 = _gc3pie.run([{"op": "store", "kind": kind_name, "url": gc3pie_url,
                                "n": n, "sample": sample}])[0]
        tasks = [make_task(i) for i in range(n)]
        _common.write_back_unsynced()
        store = make_store(url, durable=True)
        with _common.peak_memory() as mem:
            bulk_s, _ = time_once(lambda: store.save_many(tasks))
        ids = [str(t.persistent_id) for t in tasks]
        data = store.read_record(ids[0])
        pickle_s, _ = time_once(lambda: [pickle.dumps(t, 4) for t in tasks])
        tasks.clear()  # free them before the loads (the store's cache is weak)
        store.close()
        raw = make_raw(data)
        raw_bulk_s, _ = time_once(lambda: raw.bulk(n))
        gc3_save = 1 / gc3["save_s"] if gc3 else None
        report.row(f"{kind}: bulk save_many, durable", n, n / bulk_s, "/s", n / raw_bulk_s,
                   gc3_save, mem["mib"])
        results[(kind, n, "bulk")] = (n / bulk_s, n / raw_bulk_s)
        report.row(f"{kind}: bulk save_many, vs anchor + pickle.dumps", n, n / bulk_s, "/s",
                   n / (raw_bulk_s + pickle_s))
        if gc3:
            results[(kind, n, "bulk gc3")] = (n / bulk_s, gc3_save)
        picked = rng.sample(range(1, n + 1), 6 * sample)
        next_new = n + 1_000_000
        for durable in (True, False):
            label = "durable" if durable else "durable=False"
            store = make_store(url, durable=durable)
            # opened before the clock starts, as the anchor's connection is: the first call
            # makes the engine and checks the schema, and its mean over 200 calls would
            # count that (tens of ms on a busy machine) as every operation's
            store.read_record(ids[-1])
            raw.set_durable(durable)
            base = 0 if durable else 3 * sample
            load_ids = picked[base:base + sample]
            replace_ids = picked[base + sample:base + 2 * sample]
            remove_ids = picked[base + 2 * sample:base + 3 * sample]
            new_tasks = [make_task(i) for i in range(sample)]
            replacements = [make_task(i) for i in range(sample)]
            raw_new = list(range(next_new, next_new + sample))
            next_new += sample
            loads = time_interleaved((store.load, [ids[i - 1] for i in load_ids]),
                                     (raw.load, load_ids),
                                     (lambda i: unpickle_record(raw.load(i)), load_ids))
            figures = {
                "save": time_interleaved((store.save, new_tasks), (raw.save, raw_new)),
                "load": loads[:2],
                "replace": time_interleaved(
                    (lambda p, store=store: store.replace(p[0], p[1]),
                     [(ids[i - 1], t) for i, t in zip(replace_ids, replacements)]),
                    (raw.replace, replace_ids)),
                "remove": time_interleaved((store.remove, [ids[i - 1] for i in remove_ids]),
                                           (raw.remove, remove_ids)),
            }
            if durable:
                figures["load, vs read + unpickle"] = [loads[0], loads[2]]
            for op, (ours, anchor) in figures.items():
                ours_rate, anchor_rate = 1 / per_op(ours), 1 / per_op(anchor)
                gc3_rate = 1 / gc3[f"{op}_s"] if gc3 and not durable else None
                report.row(f"{kind}: {op}, {label}", n, ours_rate, "/s", anchor_rate, gc3_rate)
                results[(kind, n, f"{op} {label}")] = (ours_rate, anchor_rate)
                if gc3_rate:
                    results[(kind, n, f"{op} gc3")] = (ours_rate, gc3_rate)
            store.close()
        raw.close()


def judge(report: Report, results: dict[tuple[str, int, str], tuple[float, float]],
          sizes: list[int], gc3_size: int) -> None:
    """Turn the figures into the list of targets (issue 15's table)."""
    gc3_targets = {("filesystem", "save"): 3, ("filesystem", "replace"): 3,
                   ("filesystem", "remove"): 3, ("filesystem", "bulk"): 5, ("sqlite", "bulk"): 50,
                   **{("postgresql", op): 3 for op in ("save", "load", "replace", "remove")},
                   **{("sqlite", op): 3 for op in ("save", "load", "replace", "remove")}}
    for (kind, n, what), (ours, other) in sorted(results.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        ratio = ours / other
        if kind == "filesystem" and what == "save durable":
            report.target(f"filesystem single save >= 0.8x atomic-write anchor, N={n:,}",
                          f"{ratio:.2f}x", ratio >= 0.8)
        elif kind != "filesystem" and what == "bulk":
            report.target(f"{kind} bulk save_many >= 0.6x raw executemany, N={n:,}",
                          f"{ratio:.2f}x", ratio >= 0.6)
        elif what == "load, vs read + unpickle durable":
            report.target(f"{kind} load <= 1.5x raw point read + unpickling, N={n:,}",
                          f"{other / ours:.2f}x the anchor's time", other / ours <= 1.5)
        elif what.endswith("gc3") and n == gc3_size and (kind, what.split()[0]) in gc3_targets:
            op = what.split()[0]
            need = gc3_targets[kind, op]
            how = "durable, vs its save loop" if op == "bulk" else "durable=False"
            report.target(f"{kind} {op} ({how}) >= {need}x GC3Pie, N={n:,}", f"{ratio:.2f}x",
                          ratio >= need)


def encoding(report: Report, n: int) -> None:
    """Per-record cost of the encoding every store shares, step by step, beside ``pickle.dumps``.

    ``encode()`` (what a save runs before any I/O) against pickling the
    same task with ``pickle.dumps`` alone, taking turns; then its steps
    alone: the payload's pickling, the summary, the state and the header.
    """
    from gc3session.persistence.idfactory import Id
    from gc3session.persistence.record import encode_summary, header_line, task_state, task_summary
    from gc3session.persistence.serialization import _fast_payload, encode

    tasks = [make_task(i) for i in range(n)]
    for seqno, task in enumerate(tasks, 1):
        task.persistent_id = Id("Task", seqno)
    reduced = [task.__reduce_ex__(4) for task in tasks]
    ours, anchor = time_interleaved((lambda t: encode(t, lambda _obj: None), tasks),
                                    (lambda t: pickle.dumps(t, 4), tasks))
    report.section(f"encoding {n:,} tasks: encode() beside pickle.dumps of the same task")
    report.row("encode(): pickle, summary, state, header", n, 1 / per_op(ours), "/s",
               1 / per_op(anchor))
    steps = {
        "  its pickling of the payload (two pickles)":
            (lambda r: _fast_payload(r[1][1:], (r[2], None, None)), reduced),
        "  its summary (task_summary + encode_summary)":
            (lambda t: encode_summary(task_summary(t, "NEW")), tasks),
        "  its state (task_state)": (task_state, tasks),
        "  its header line": (lambda t: header_line(type(t), "NEW", b"{}"), tasks),
    }
    for label, (step, items) in steps.items():
        report.row(label, n, 1 / per_op(time_interleaved((step, items))[0]), "/s")
    report.note(f"per record: encode {per_op(ours) * 1e6:.1f} us, pickle.dumps"
                f" {per_op(anchor) * 1e6:.1f} us: {(per_op(ours) - per_op(anchor)) * 1e6:.1f} us"
                " of Python work around the pickling")


def main(argv: list[str] | None = None) -> int:
    return measure(argv).finish()


def measure(argv: list[str] | None = None) -> Report:
    """Run the benchmark with command-line arguments ``argv``; return its report (rows, targets)."""
    args = _common.parse_args(__doc__.split("\n\n")[0], DEFAULT_SIZES, QUICK_SIZES, argv)
    sample = 30 if args.quick else 200
    gc3_size = QUICK_SIZES[-1] if args.quick else GC3PIE_SIZE
    report = Report("gc3session stores: figures beside anchors measured in this run, and GC3Pie 2.6.8")
    report.note(f"task record {_common.record_size()} bytes; {sample} sampled operations per figure;"
                f" GC3Pie at N={gc3_size:,}; ratios: >1 means ours is faster")
    results: dict[tuple[str, int, str], tuple[float, float]] = {}
    encoding(report, 300 if args.quick else 5_000)
    with contextlib.ExitStack() as stack:
        try:
            pg: PgCluster | None = stack.enter_context(PgCluster())
        except (RuntimeError, OSError) as err:
            _common.warn(f"PostgreSQL skipped: {err}")
            pg = None
        kinds = [k for k in KINDS if k != "postgresql" or pg is not None]
        for n in args.sizes:
            report.section(f"N = {n:,}")
            for kind in kinds:
                bench_store(report, kind, n, min(sample, n // 6), pg,
                            gc3pie=not args.no_gc3pie and n == gc3_size, results=results)
    judge(report, results, args.sizes, gc3_size)
    return report


if __name__ == "__main__":
    sys.exit(main())
