"""A run's working directory: declared inputs staged in, outputs collected out.

Run number *n* of a task runs in its own directory (the engine names it);
these functions fill it before the command starts and empty it into the
task's ``output_dir`` when it ended.  File names come from records, which a
loaded session may have from anyone, so each is checked again here.
"""

from __future__ import annotations

import os
import shutil

from . import fsio
from .exceptions import InvalidValue
from .task import Application, is_plain_relative


def stage_in(task: Application, workdir: str) -> None:
    """Make the run's working directory and link (or copy) the declared inputs into it."""
    fsio.make_dirs(workdir, durable=False)
    for source, name in task.inputs.items():
        if not is_plain_relative(name):  # checked again: a loaded record may come from anyone
            raise InvalidValue(f"input name {name!r} of {task} leaves its run directory")
        target = os.path.join(workdir, name)
        if os.path.dirname(name):
            os.makedirs(os.path.dirname(target), exist_ok=True)
        try:
            os.link(source, target)
        except FileNotFoundError:
            raise  # a missing input fails the run
        except OSError:
            shutil.copy2(source, target)  # another file system, or links not allowed


def collect_outputs(task: Application, workdir: str, collected: list[str]) -> list[str]:
    """Move declared outputs and the std streams into ``output_dir``; return missing outputs.

    The moved files are appended to ``collected``: the engine syncs them
    before it saves the task TERMINATED, since a task that a power cut leaves
    "done" must not have lost its outputs (it would never run again).
    """
    missing: list[str] = []
    wanted = dict(task.outputs)
    for stream in {task.stdout, task.stderr}:
        if stream is not None:
            wanted.setdefault(stream, stream)
    if not wanted:
        return missing
    os.makedirs(task.output_dir, exist_ok=True)
    for name, dest in wanted.items():
        if not (is_plain_relative(name) and is_plain_relative(dest)):
            missing.append(name)  # checked again: a loaded record may come from anyone
            continue
        source = os.path.join(workdir, name)
        target = os.path.join(task.output_dir, dest)
        if not os.path.exists(source):
            if name in task.outputs and not os.path.exists(target):
                missing.append(name)
            continue  # a stream, or collected by an earlier, interrupted finish
        if os.path.dirname(dest):
            os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.move(source, target)
        collected.append(target)
    return missing


__all__ = ["collect_outputs", "stage_in"]
