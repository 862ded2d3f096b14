"""``gsession --help`` and the "not a session" message, as a user meets them (real processes)."""

from __future__ import annotations

import os
import re

import pytest
from _everyday import gsession

from gc3session import Session
from gc3session.cli import build_parser
from gc3session.exceptions import SessionNotFoundError
from gc3session.sessiondir import not_a_session


def test_help_lists_every_subcommand_on_one_line(tmp_path):
    """Each subcommand of the parser appears once, with its help on the same line, nothing wrapped."""
    done = gsession(tmp_path, "--help")
    assert done.returncode == 0, done.stderr
    block = done.stdout.split("  COMMAND\n", 1)[1].split("\n\n", 1)[0].splitlines()
    listed = dict(re.fullmatch(r"    (\S+)\s{2,}(\S.*)", line).groups() for line in block)
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert list(listed) == list(commands)
    for name, text in listed.items():
        assert text == commands[name].description and len(f"    {name}  {text}") <= 80, name
    assert "session_ids.txt and store.url" in done.stdout


@pytest.mark.parametrize("what", ["missing", "empty", "file"])
def test_not_a_session_is_said_the_same_way_by_every_command(tmp_path, what):
    """Every command that takes a session, and Session(), say the same one line, creating nothing."""
    path = os.path.join(tmp_path, "target")
    if what == "empty":
        os.mkdir(path)
    elif what == "file":
        open(path, "w").close()
    expected = f"gsession: error: {not_a_session(path)}\n"
    assert "a session directory holds session_ids.txt (the ids of its tasks) and store.url" in expected
    before = sorted(os.listdir(tmp_path))
    for argv in (["list"], ["show", path, "Task.1"], ["log"], ["stats"], ["fsck"], ["fsck", "--repair"],
                 ["copy", path, f"sqlite:///{tmp_path}/x.db"], ["redo"], ["forget", path, "Task.1"],
                 ["adopt", path, "Task.1"], ["abort"], ["delete"]):
        args = argv if path in argv else [*argv, path]
        done = gsession(tmp_path, *args)
        assert (done.returncode, done.stderr) == (1, expected), args
    with pytest.raises(SessionNotFoundError) as info:
        Session(path, create=False)
    assert str(info.value) == str(not_a_session(path))
    assert sorted(os.listdir(tmp_path)) == before
    if what == "empty":
        assert os.listdir(path) == []
