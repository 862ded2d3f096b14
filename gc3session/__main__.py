"""``python -m gc3session``: the ``gsession`` program."""

from .cli import console_main

console_main()
