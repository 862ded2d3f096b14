"""The execution record of a task: :class:`Run`, its :class:`State` and :class:`History`.

``task.execution`` is a :class:`Run`: the task's state (time-stamped at
every change), exit status, history of messages and attempts, with gc3libs'
attribute names.  Setting any of its attributes marks the owning task
changed, so the session saves it.

These classes are pickled inside every task record, under the name of the
module that makes them public, :mod:`gc3session.task` (see ``__module__``
below): the record format names ``gc3session.task:Run`` whichever module
holds the code, so moving code never changes what records say.
"""

from __future__ import annotations

import enum
import signal as signals
import time
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from .exceptions import InvalidValue

if TYPE_CHECKING:
    from .task import Task

#: Messages kept in a task's history; older ones are dropped first.
HISTORY_LIMIT = 1000
#: Pseudo-signal of a run whose command succeeded but a declared output is missing.
SIGNAL_DATA_STAGING = 121
#: Pseudo-signal of a run whose ``terminated()`` hook raised.
SIGNAL_HOOK_FAILED = 123
#: What the pseudo-signals mean.  They sit above any real signal number, so
#: that an outcome the command cannot report itself still counts as a failure.
_PSEUDO_SIGNALS = {SIGNAL_DATA_STAGING: "missing outputs", SIGNAL_HOOK_FAILED: "terminated() failed"}


class State(str, enum.Enum):
    """The states of a task's execution (gc3libs' ``Run.State``)."""

    NEW = "NEW"
    SUBMITTED = "SUBMITTED"
    RUNNING = "RUNNING"
    TERMINATING = "TERMINATING"
    TERMINATED = "TERMINATED"
    STOPPED = "STOPPED"
    UNKNOWN = "UNKNOWN"

    def __str__(self) -> str:
        return self.value


class History:
    """A bounded list of ``(message, epoch, tags)`` tuples (oldest dropped first).

    ``_messages`` is the attribute name gc3libs tools read.
    """

    def __init__(self, limit: int = HISTORY_LIMIT) -> None:
        self.limit = limit
        self._messages: list[tuple[str, float, tuple[str, ...]]] = []

    def append(self, message: str, *tags: str) -> None:
        """Record ``message`` now; drop the oldest beyond the limit."""
        self._messages.append((str(message), time.time(), tags))
        if len(self._messages) > self.limit:
            del self._messages[: len(self._messages) - self.limit]

    def last(self) -> str | None:
        """The newest message, or None."""
        return self._messages[-1][0] if self._messages else None

    def __iter__(self) -> Iterator[tuple[str, float, tuple[str, ...]]]:
        return iter(self._messages)

    def __len__(self) -> int:
        return len(self._messages)


_State = State  # what ``Run.State`` names, for annotations inside :class:`Run`


class Run:
    """The execution record of a task (``task.execution``).

    ``state`` changes are time-stamped in ``timestamp`` (state name -> epoch)
    and logged in ``history``; ``returncode`` is gc3libs' combination
    ``(exitcode << 8) | signal``.  Any change marks the owning task changed.
    """

    State = State

    #: How many times the engine started the task's command (records written
    #: before the attribute existed read 0).
    attempt: int = 0
    #: What the executor needs to find the current run again (its working
    #: directory, the executor's name, a pid or a key), or None before a run.
    handle: "dict[str, Any] | None" = None
    #: The attempts that ended before the task was put back to NEW
    #: (:meth:`Task.redo`), oldest first, each as :meth:`attempt_summary`
    #: gave it then (records written before the attribute existed read none).
    attempts: "Sequence[dict[str, Any]]" = ()

    def __init__(self, attach: "Task | None" = None) -> None:
        self._ref = attach
        self._state = State.NEW.value
        self._exitcode: int | None = None
        self._signal: int | None = None
        self.timestamp: dict[str, float] = {State.NEW.value: time.time()}
        self.state_last_changed = self.timestamp[State.NEW.value]
        self.history = History()
        self.attempt = 0
        self.handle = None

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        ref = self.__dict__.get("_ref")
        if ref is not None and name != "_ref":
            ref.changed = True

    def __getstate__(self) -> dict[str, Any]:
        # The owning task is re-attached when it is loaded (Task.__setstate__):
        # leaving the back-reference out keeps records free of self-references.
        state = dict(self.__dict__)
        state.pop("_ref", None)
        return state

    @property
    def state(self) -> _State:
        """The current state, a :class:`Run.State` member (equal to its name)."""
        return State(self._state)

    @state.setter
    def state(self, value: "str | _State") -> None:
        try:
            new = State(str(value))
        except ValueError as err:
            raise InvalidValue(f"unknown task state {value!r}; one of "
                               f"{', '.join(s.value for s in State)}") from err
        if new.value == self._state:
            return
        now = time.time()
        message = f"Transition from state {self._state} to state {new.value}"
        if new is State.TERMINATED and self.returncode is not None:
            message += f" (returncode: {self.returncode})"
        self.timestamp[new.value] = now
        self.state_last_changed = now
        self._state = new.value
        self.history.append(message)

    @property
    def exitcode(self) -> int | None:
        """The exit status of the command (None until it terminated normally)."""
        return self._exitcode

    @exitcode.setter
    def exitcode(self, value: int | None) -> None:
        self._exitcode = None if value is None else int(value)

    @property
    def signal(self) -> int | None:
        """The signal that killed the command, 0 if none (None until known)."""
        return self._signal

    @signal.setter
    def signal(self, value: int | None) -> None:
        self._signal = None if value is None else int(value)

    @property
    def returncode(self) -> int | None:
        """``(exitcode << 8) | signal``, or None when neither is known."""
        if self._exitcode is None and self._signal is None:
            return None
        return ((self._exitcode or 0) << 8) | (self._signal or 0)

    @returncode.setter
    def returncode(self, value: "int | tuple[int, int] | None") -> None:
        if value is None:
            self._exitcode = self._signal = None
        elif isinstance(value, tuple):
            self._signal, self._exitcode = int(value[0]), int(value[1])
        else:
            self._exitcode, self._signal = (int(value) >> 8) & 0xFF, int(value) & 0x7F

    @property
    def info(self) -> str | None:
        """The newest history message; assigning appends a message."""
        return self.history.last()

    @info.setter
    def info(self, message: str) -> None:
        self.history.append(message)

    def attempt_summary(self) -> dict[str, Any]:
        """The current attempt as plain data: number, state, exit status, times, directory.

        ``started`` is when the attempt was submitted, ``ended`` when it
        terminated (None while it has not); only time stamps taken since the
        task last became NEW count, so a redone task shows none of the
        previous attempt's.  ``duration`` is ``ended - started`` in seconds.
        """
        since = self.timestamp.get(State.NEW.value, 0.0)

        def stamp(state: State) -> float | None:
            when = self.timestamp.get(state.value)
            return when if when is not None and when >= since else None

        started = stamp(State.SUBMITTED) or stamp(State.RUNNING)
        ended = stamp(State.TERMINATED) if self._state == State.TERMINATED.value else None
        handle = self.handle or {}
        return {"attempt": self.attempt, "state": self._state, "exitcode": self._exitcode,
                "signal": self._signal, "returncode": self.returncode, "started": started,
                "ended": ended, "duration": None if started is None or ended is None
                else max(0.0, ended - started),
                "info": self.info, "workdir": handle.get("workdir")}

    def in_state(self, *names: str) -> bool:
        """True if in one of ``names``; ``ok``/``failed`` mean TERMINATED with rc 0 / not 0."""
        for name in names:
            if name == "ok" and self._state == State.TERMINATED.value and self.returncode == 0:
                return True
            if name == "failed" and self._state == State.TERMINATED.value and self.returncode != 0:
                return True
            if name == self._state:
                return True
        return False


# Records name these classes by their public home (the module docstring says why).
for _cls in (State, History, Run):
    _cls.__module__ = "gc3session.task"
del _cls

def signal_name(number: int | None) -> str | None:
    """The name of a ``Run.signal``: ``SIGKILL`` for 9, what a pseudo-signal means, None for none.

    >>> signal_name(9), signal_name(SIGNAL_HOOK_FAILED), signal_name(0)
    ('SIGKILL', 'terminated() failed', None)
    """
    if not number:
        return None
    if number in _PSEUDO_SIGNALS:
        return _PSEUDO_SIGNALS[number]
    try:
        return signals.Signals(number).name
    except ValueError:
        return f"signal {number}"


__all__ = ["HISTORY_LIMIT", "SIGNAL_DATA_STAGING", "SIGNAL_HOOK_FAILED", "History", "Run", "State",
           "signal_name"]
