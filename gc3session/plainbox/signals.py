"""Signals of the PlainBox layer: callables that call their listeners.

PlainBox declares the manager's notifications (``on_device_context_added``,
...) as morris signals.  Ported listeners connect to them and tests watch
them with ``connect``/``disconnect``; firing is calling the signal with the
event's arguments.  That is all of morris's contract the layer needs, so it
is written here rather than depended upon.
"""

from __future__ import annotations

from typing import Any, Callable


class Signal:
    """Listeners called in the order they connected, each time the signal is called.

    A listener that raises stops the firing and the exception reaches the
    caller, as with morris: a broken listener is not silently skipped.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._listeners: list[Callable[..., Any]] = []

    def connect(self, listener: Callable[..., Any]) -> None:
        """Call ``listener`` with the arguments of every later firing."""
        self._listeners.append(listener)

    def disconnect(self, listener: Callable[..., Any]) -> None:
        """Stop calling ``listener``; ValueError if it is not connected."""
        try:
            self._listeners.remove(listener)
        except ValueError:
            raise ValueError(f"{listener!r} is not connected to the signal {self.name}") from None

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        for listener in list(self._listeners):
            listener(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Signal {self.name} ({len(self._listeners)} listeners)>"


__all__ = ["Signal"]
