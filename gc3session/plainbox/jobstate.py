"""A job of a PlainBox session and the history of its results.

:class:`JobState` is what ``SessionState.job_state_map`` maps each job id
to; it caches the checksum of the job's definition, which every checkpoint
writes.
"""

from __future__ import annotations

from ..task import Task
from .results import JobResult, MemoryJobResult


class JobState:
    """A job of the session and its result history (oldest first)."""

    def __init__(self, job: Task) -> None:
        self.job = job
        self.result_history: list[JobResult] = []
        self._checksum: tuple[object, str] | None = None

    @property
    def checksum(self) -> str:
        """``job.checksum``, computed once per definition object.

        Every checkpoint saves the checksum of every job; hashing the
        canonical JSON of thousands of definitions each time would cost more
        than the rest of the checkpoint.  A definition is fixed once its job
        is added: assigning a new ``job.definition`` is seen, changing the
        old dict in place is not (give the job a new definition instead).
        """
        definition = self.job.definition
        if self._checksum is None or self._checksum[0] is not definition:
            self._checksum = (definition, self.job.checksum)
        return self._checksum[1]

    @property
    def result(self) -> JobResult:
        """The newest result, or a hollow one if the job has none."""
        return self.result_history[-1] if self.result_history else MemoryJobResult()

    def __repr__(self) -> str:
        return f"<JobState {self.job.jobname!r} result:{self.result!r}>"


__all__ = ["JobState"]
