"""Signals of the PlainBox layer: callables that call their listeners.

PlainBox declares the manager's notifications (``on_device_context_added``,
...) as morris signals.  Ported listeners connect to them (optionally asking
for the signal itself, ``pass_signal=True``) and tests watch them with
``connect``/``disconnect``; firing is calling the signal with the event's
arguments, or ``fire(args, kwargs)``.  That is the part of morris's contract
the layer needs, so it is written here rather than depended upon.
"""

from __future__ import annotations

from typing import Any, Callable


class Signal:
    """Listeners called in the order they connected, each time the signal is fired.

    A listener that raises stops the firing and the exception reaches the
    caller, as with morris: a broken listener is not silently skipped.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._listeners: list[tuple[Callable[..., Any], bool]] = []

    @property
    def listeners(self) -> list[Callable[..., Any]]:
        """The connected listeners, in the order they are called."""
        return [listener for listener, _ in self._listeners]

    def connect(self, listener: Callable[..., Any], pass_signal: bool = False) -> None:
        """Call ``listener`` with the arguments of every later firing (and ``signal=self`` if asked)."""
        self._listeners.append((listener, pass_signal))

    def disconnect(self, listener: Callable[..., Any], pass_signal: bool = False) -> None:
        """Stop calling ``listener`` (connected with the same ``pass_signal``); ValueError if it is not."""
        try:
            self._listeners.remove((listener, pass_signal))
        except ValueError:
            raise ValueError(f"{listener!r} is not connected to the signal {self.name}") from None

    def fire(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Call every listener with ``args`` and ``kwargs``."""
        for listener, pass_signal in list(self._listeners):
            if pass_signal:
                listener(*args, signal=self, **kwargs)
            else:
                listener(*args, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self.fire(args, kwargs)

    def __repr__(self) -> str:
        return f"<Signal {self.name} ({len(self._listeners)} listeners)>"


__all__ = ["Signal"]
