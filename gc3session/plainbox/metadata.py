"""Session metadata: what an application says about its session, PlainBox's fields.

It is saved in every checkpoint and is what a metadata-only *peek* returns,
so a launcher can list the resumable sessions of its application without
rebuilding any of them (see :mod:`gc3session.plainbox.discovery`).
"""

from __future__ import annotations

from typing import Iterable

from ..exceptions import InvalidType


class SessionMetaData:
    """Title, flags, the running job, the application's id and private blob, ...

    :param title: a human-readable title (or None).
    :param flags: a set of flag strings (see the ``FLAG_*`` constants).
    :param running_job_name: the id of the job being run, if any (PlainBox's
        name for it, although it holds an id).
    :param app_blob: bytes the application keeps for itself, or None (the
        default, as in PlainBox 0.38; a checkpoint saves it as ``null``).
    :param app_id: the id of the application owning the session (or None).
    """

    #: The session was started and has not been finished.
    FLAG_INCOMPLETE = "incomplete"
    #: The results were submitted (exported to a transport or stream).
    FLAG_SUBMITTED = "submitted"
    #: The session is bootstrapping (resource jobs are running).
    FLAG_BOOTSTRAPPING = "bootstrapping"
    #: The session is in its setup phase.
    FLAG_SETTING_UP = "setting_up"
    #: The jobs were picked by hand, without a test plan.
    FLAG_TESTPLANLESS = "testplanless"

    def __init__(self, title: str | None = None, flags: Iterable[str] | None = None,
                 running_job_name: str | None = None, app_blob: bytes | None = None,
                 app_id: str | None = None, custom_joblist: bool = False,
                 rejected_jobs: Iterable[str] | None = None,
                 last_job_start_time: float | None = None,
                 remaining_todo_jobs: bool = False) -> None:
        self.title = title
        self.flags: set[str] = set(flags or ())
        self.running_job_name = running_job_name
        self.app_blob = app_blob
        self.app_id = app_id
        self.custom_joblist = bool(custom_joblist)
        self.rejected_jobs: list[str] = list(rejected_jobs or ())
        self.last_job_start_time = last_job_start_time
        self.remaining_todo_jobs = bool(remaining_todo_jobs)

    @property
    def app_blob(self) -> bytes | None:
        """Bytes private to the application (PlainBox apps keep JSON there)."""
        return self._app_blob

    @app_blob.setter
    def app_blob(self, value: bytes | None) -> None:
        if value is not None and not isinstance(value, bytes):
            raise InvalidType(f"app_blob must be bytes or None, not {type(value).__name__}")
        self._app_blob = value

    @property
    def app_id(self) -> str | None:
        """The id of the application that owns the session."""
        return self._app_id

    @app_id.setter
    def app_id(self, value: str | None) -> None:
        if value is not None and not isinstance(value, str):
            raise InvalidType(f"app_id must be a string or None, not {type(value).__name__}")
        self._app_id = value

    def _flag(self, name: str, on: bool) -> None:
        if on:
            self.flags.add(name)
        else:
            self.flags.discard(name)

    @property
    def bootstrapping(self) -> bool:
        """Whether the ``bootstrapping`` flag is set (assigning sets or clears it)."""
        return self.FLAG_BOOTSTRAPPING in self.flags

    @bootstrapping.setter
    def bootstrapping(self, value: bool) -> None:
        self._flag(self.FLAG_BOOTSTRAPPING, value)

    @property
    def setting_up(self) -> bool:
        """Whether the ``setting_up`` flag is set (assigning sets or clears it)."""
        return self.FLAG_SETTING_UP in self.flags

    @setting_up.setter
    def setting_up(self, value: bool) -> None:
        self._flag(self.FLAG_SETTING_UP, value)

    def as_dict(self) -> dict[str, object]:
        """The fields, by name (flags as a sorted list)."""
        return {"title": self.title, "flags": sorted(self.flags),
                "running_job_name": self.running_job_name, "app_blob": self.app_blob,
                "app_id": self.app_id, "custom_joblist": self.custom_joblist,
                "rejected_jobs": list(self.rejected_jobs),
                "last_job_start_time": self.last_job_start_time,
                "remaining_todo_jobs": self.remaining_todo_jobs}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SessionMetaData) and other.as_dict() == self.as_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return (f"<SessionMetaData title:{self.title!r} flags:{sorted(self.flags)!r}"
                f" running_job_name:{self.running_job_name!r} app_id:{self.app_id!r}>")


__all__ = ["SessionMetaData"]
