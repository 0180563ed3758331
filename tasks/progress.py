"""Progress that survives a killed build: each finished stage is committed to doit's database
as soon as doit records it.

doit keeps what it learns in memory and writes its database once, when the run ends, so a build
killed (SIGKILL, a CI timeout, a closed laptop) during stage N used to rebuild every stage before
N as well. doit calls its reporter's `add_success` right after it records a task's success; this
reporter then writes the finished tasks' rows and commits, so the next run starts at stage N.
doit chooses a backend by name from plugins registered before dodo.py is read, which a plain
checkout cannot do; a reporter class can be given in DOIT_CONFIG, hence the hook's place here.
"""

from __future__ import annotations

from typing import Any

from doit.dependency import SqliteDB
from doit.globals import Globals
from doit.reporter import ConsoleReporter

from sanet_tfjs.cache.stage import RUN as CACHE_RUN


def commit_finished(backend: Any) -> None:
    """Write the rows of every task doit changed since the last commit, and commit them.

    doit's SqliteDB writes them (and closes) only in `dump()` at the end; this is its body
    without the close: one sqlite transaction, so a kill leaves the previous or the new rows,
    never a torn row."""
    if not isinstance(backend, SqliteDB):
        return  # another backend chosen by hand: it keeps doit's own behaviour
    for task_id in backend._dirty:
        backend._conn.execute(
            "insert or replace into doit values (?,?)",
            (task_id, backend.codec.encode(backend._cache[task_id])),
        )
    backend._conn.commit()
    backend._dirty = set()


class CommitEachStageReporter(ConsoleReporter):
    """doit's console output, each stage's name flushed as it starts, plus a database commit
    after each stage that succeeds, and the remote cache's summary line at the end."""

    desc = "console output; each finished task committed at once"

    def execute_task(self, task: Any) -> None:
        super().execute_task(task)
        # doit writes the stage's name without a flush: piped (a CI log, `doit | tee`), it
        # appeared with the stage's next output, or at its end.
        self.outstream.flush()

    def add_success(self, task: Any) -> None:
        super().add_success(task)
        commit_finished(Globals.dep_manager.backend)

    def complete_run(self) -> None:
        super().complete_run()
        summary = CACHE_RUN.summary()  # what the remote cache did, if one is configured
        if summary:
            self.outstream.write(summary + "\n")
            self.outstream.flush()
