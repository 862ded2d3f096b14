"""Headless Chromium for the report tests and benchmark: load a page, dump its DOM, screenshot it.

Chromium runs as Debian packages it (``chromium``), as root, with the
sandbox off and everything that would reach the network off (component
updates, sync, background networking, QUIC): without those flags it tries the
network at start and is refused.  Each call gets a fresh profile directory
and its own process group, which is killed whole when the call times out (the
browser starts several helper processes).

:func:`png_pixels` decodes the screenshots by hand (``zlib`` and ``struct``,
no imaging library): 8-bit RGB or RGBA, not interlaced, which is what
Chromium writes.
"""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import tempfile
import zlib
from collections import Counter
from collections.abc import Sequence

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--mute-audio"]
#: Headless Chromium lays pages out at least this wide, whatever ``--window-size`` says.
MIN_WIDTH = 500


class ChromiumError(RuntimeError):
    """Chromium is missing, failed, or took too long; the message says which and how."""


def find() -> str | None:
    """The Chromium executable on ``PATH``, or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def run(binary: str, args: Sequence[str], timeout: float = 90.0) -> str:
    """Run headless Chromium with ``args``; return its stdout.

    A page that opens a dialog (``alert()``) never finishes loading in
    headless Chromium: that ends in the timeout.

    :raises ChromiumError: it exited with a status other than 0, or did not
        finish within ``timeout`` seconds (its whole process group is killed).
    """
    with tempfile.TemporaryDirectory(prefix="gc3session-chromium-") as profile:
        proc = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile}", *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise ChromiumError(f"chromium {' '.join(args)} did not finish in {timeout:.0f} s") from None
    if proc.returncode != 0:
        noise = ("dbus", "unexpected operator")
        lines = [line for line in err.decode(errors="replace").splitlines()
                 if not any(word in line for word in noise)]
        raise ChromiumError(f"chromium {' '.join(args)} exited with {proc.returncode}:\n"
                            + "\n".join(lines[-20:]))
    return out.decode("utf-8")


def dump_dom(binary: str, page: str, width: int = 1200, height: int = 900) -> str:
    """The DOM of ``page`` (a file path) after its scripts ran, serialized as HTML."""
    return run(binary, [f"--window-size={width},{height}", "--dump-dom", "file://" + page])


def screenshot(binary: str, page: str, png: str, width: int = 1000, height: int = 1400) -> None:
    """Write a ``width`` x ``height`` PNG screenshot of ``page`` to ``png``.

    (With ``--blink-settings=scriptEnabled=false`` headless Chromium writes
    neither a screenshot nor a DOM dump: take a page without scripts instead.)

    :raises ChromiumError: Chromium failed, or exited without writing ``png``.
    """
    run(binary, [f"--window-size={width},{height}", f"--screenshot={png}", "file://" + page])
    if not os.path.isfile(png):
        raise ChromiumError(f"chromium exited without writing the screenshot {png}")


def png_pixels(path: str) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit, non-interlaced RGB(A) PNG: (width, height, one ``bytes`` of RGB per row)."""
    with open(path, "rb") as stream:
        data = stream.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG file")
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
    if header is None:
        raise ValueError(f"{path} has no IHDR chunk")
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in (2, 6) or interlace:
        raise ValueError(f"{path}: only 8-bit RGB/RGBA non-interlaced PNGs are decoded here")
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    rows, previous = [], bytes(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        _unfilter(kind, line, previous, bpp)
        previous = bytes(line)
        rows.append(previous if bpp == 3 else b"".join(previous[i:i + 3] for i in range(0, stride, 4)))
    return width, height, rows


def _unfilter(kind: int, line: bytearray, up: bytes, bpp: int) -> None:
    """Undo one scanline's PNG filter in place (types 0 to 4 of the PNG specification)."""
    if kind == 0:
        return
    if kind == 2:
        line[:] = bytes((a + b) & 0xFF for a, b in zip(line, up))
        return
    for i in range(len(line)):
        left = line[i - bpp] if i >= bpp else 0
        if kind == 1:
            line[i] = (line[i] + left) & 0xFF
        elif kind == 3:
            line[i] = (line[i] + ((left + up[i]) >> 1)) & 0xFF
        elif kind == 4:
            upper_left = up[i - bpp] if i >= bpp else 0
            p = left + up[i] - upper_left
            pa, pb, pc = abs(p - left), abs(p - up[i]), abs(p - upper_left)
            pred = left if pa <= pb and pa <= pc else up[i] if pb <= pc else upper_left
            line[i] = (line[i] + pred) & 0xFF
        else:
            raise ValueError(f"unknown PNG filter type {kind}")


def colours(rows: list[bytes]) -> Counter[tuple[int, int, int]]:
    """How many pixels have each RGB colour."""
    counts: Counter[tuple[int, int, int]] = Counter()
    for row in rows:
        counts.update(zip(row[0::3], row[1::3], row[2::3]))
    return counts
