"""The tasks a script's ``new_tasks`` returns, made ready to join a new session.

:class:`~gc3session.cmdline.SessionBasedScript` calls ``new_tasks(extra)``
only for an empty session.  ``extra`` holds the per-task defaults the
standard options give (cores, memory, wall time, output directory); what
``new_tasks`` returns is then completed: GC3Pie's deprecated
``(jobname, cls, args, kwargs)`` tuples are built, a task whose creator gave
it no name is named ``<class name>-N<k>`` (*k* being its position, from 1),
and ``NAME`` in an output directory becomes the job name, children
included.  A name given twice is kept twice, with a warning: no name can
clash with an earlier task's, since the session is empty.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
from typing import Any, Iterable

from .exceptions import InvalidValue
from .task import Task, has_default_jobname

log = logging.getLogger("gc3session.cmdline")


def task_defaults(params: argparse.Namespace) -> dict[str, Any]:
    """The per-task defaults the options give (``extra``).

    ``output_dir`` is ``-o`` with ``SESSION``, ``DATE`` and ``TIME``
    replaced; ``NAME`` is replaced per task (a template without ``NAME``
    gets ``/NAME`` appended).
    """
    output = params.output
    if "NAME" not in output and "ITER" not in output:
        output = os.path.join(output, "NAME")
    now = datetime.datetime.now()
    output = (output.replace("SESSION", params.session + ".out")
              .replace("DATE", now.strftime("%Y-%m-%d")).replace("TIME", now.strftime("%H:%M")))
    return {
        "requested_cores": params.cpu_cores,
        "requested_memory": params.memory_per_core * params.cpu_cores
        if params.memory_per_core else None,
        "requested_walltime": params.wall_clock_time,
        "output_dir": output,
    }


def build_tasks(items: Iterable[Any], extra: dict[str, Any]) -> list[Task]:
    """The tasks of ``items`` (what ``new_tasks`` returned), named and with their output directories.

    :raises InvalidValue: for an item that is neither a task nor GC3Pie's 4-tuple.
    """
    tasks: list[Task] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        task = _build_task(item, extra)
        if has_default_jobname(task):
            task.jobname = f"{type(task).__name__}-N{index + 1}"
        name = str(task.jobname)
        if name in seen:
            log.warning("new_tasks() returned more than one task named %r; adding them all", name)
        seen.add(name)
        _expand_output_dir(task)
        tasks.append(task)
    return tasks


def _build_task(item: Any, extra: dict[str, Any]) -> Task:
    if isinstance(item, Task):
        return item
    if isinstance(item, tuple) and len(item) == 4:  # gc3libs' deprecated (jobname, cls, args, kwargs)
        jobname, cls, args, kwargs = item
        merged = dict(extra)
        merged.update(kwargs)
        merged.setdefault("jobname", jobname)
        return cls(*args, **merged)  # type: ignore[no-any-return]
    raise InvalidValue(f"new_tasks() must return Task objects, not {item!r}")


def _expand_output_dir(task: Task) -> None:
    """Replace NAME by the job name in ``output_dir``, children included (gc3libs missed them)."""
    current = getattr(task, "output_dir", None)
    if current is not None and task.jobname and "NAME" in current:
        task.output_dir = os.path.abspath(current.replace("NAME", task.jobname))
    for child in getattr(task, "tasks", None) or ():
        _expand_output_dir(child)



__all__ = ["build_tasks", "task_defaults"]
