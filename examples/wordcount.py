#!/usr/bin/env python3
"""Count the words of every text file in a directory, one task per file.

Each file becomes an Application running ``wc -w`` on it; the script runs
them with bounded concurrency and can be interrupted (Ctrl-C, kill -9) and
run again: finished counts are kept, lost runs are redone. With no
directory given it makes a small sample corpus first.

    python3 examples/wordcount.py -C 1 [-s SESSION] [-o OUTPUT/NAME] [DIRECTORY]

Everything it writes is under the session directory (``./wordcount`` unless
``-s`` says otherwise): the sample corpus in ``SESSION/corpus``, each count in
``SESSION/output/wc-<file>/`` unless ``-o`` names another place (``NAME``
stands for the task's name).  Nothing lands in the directory it is run from.
"""

from __future__ import annotations

import os
from typing import Any

from gc3session import Application
from gc3session.cmdline import SessionBasedScript

#: The ``-o`` default, which stands for ``SESSION/output/NAME`` (the session is known only later).
OUTPUT_IN_SESSION = os.path.join("<session>", "output", "NAME")


class CountWords(Application):
    """``wc -w`` of one file; the count is read back into ``self.words``."""

    def __init__(self, path: str, **extra: Any) -> None:
        name = os.path.basename(path)
        super().__init__(["wc", "-w", name], inputs=[path], stdout="count.txt", stderr="errors.txt",
                         jobname=f"wc-{name}", **extra)
        self.words: int | None = None

    def terminated(self) -> None:
        if self.execution.returncode == 0:
            with open(os.path.join(self.output_dir, "count.txt")) as stream:
                self.words = int(stream.read().split()[0])


class WordCount(SessionBasedScript):
    """Count the words of the text files in a directory."""

    def __init__(self) -> None:
        super().__init__(version="1.0")

    def setup_args(self, parser: Any) -> None:
        super().setup_args(parser)
        parser.set_defaults(output=OUTPUT_IN_SESSION)
        parser.add_argument("directory", nargs="?", default=None,
                            help="directory of .txt files (default: a generated sample corpus"
                                 " in SESSION/corpus)")

    def new_tasks(self, extra: dict[str, Any]) -> list[CountWords]:
        session = os.path.abspath(self.params.session)
        if extra["output_dir"] == OUTPUT_IN_SESSION:  # no -o: under the session directory
            extra = {**extra, "output_dir": os.path.join(session, "output", "NAME")}
        directory = self.params.directory or make_sample_corpus(os.path.join(session, "corpus"))
        names = sorted(n for n in os.listdir(directory) if n.endswith(".txt"))
        return [CountWords(os.path.join(directory, n), **extra) for n in names]

    def after_main_loop(self) -> None:
        words = [t.words for t in self.session if getattr(t, "words", None) is not None]
        print(f"words counted so far: {sum(words)} in {len(words)} files")


def make_sample_corpus(directory: str, files: int = 50) -> str:
    """Write ``files`` small text files (if not there yet) and return the directory."""
    os.makedirs(directory, exist_ok=True)
    for i in range(files):
        path = os.path.join(directory, f"text-{i:03d}.txt")
        if not os.path.exists(path):
            with open(path, "w") as stream:
                stream.write(" ".join(f"word{j}" for j in range(10 * (i + 1))) + "\n")
    return directory


if __name__ == "__main__":
    WordCount().run()
