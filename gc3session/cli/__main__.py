"""``python -m gc3session.cli``: the ``gsession`` program."""

from . import console_main

console_main()
