"""Django's SQLite backend, with this process's writers taking turns on a lock of ours.

Every transaction opens with ``BEGIN IMMEDIATE`` (webapp/settings.py), so SQLite lets one
writer in at a time, and the others wait in its busy handler: it sleeps 1, 2, 5, 10 ...
up to 100 ms between tries and never hears the lock go. Under a burst (bench/load.py: 50
runs started at once, their event writes and node cache stores) the lock sat free through
those sleeps while POSTs waited seconds in ``BEGIN``. Here a transaction first takes a
lock per database file shared by the process's threads, which hands over the moment its
holder commits or rolls back; SQLite's own lock still guards against other processes
(``manage.py`` commands), whose waits are as before.

Nothing is held that SQLite did not hold already: the lock is taken exactly where
``BEGIN IMMEDIATE`` would take SQLite's, and released where SQLite's is. A wait longer
than the connection's ``timeout`` goes on to SQLite's busy handler, which fails the way
it always did ("database is locked") rather than waiting for ever.
"""

from __future__ import annotations

import threading
from typing import Any

from django.db.backends.sqlite3 import base

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(name: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(name, threading.Lock())


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._write_lock: threading.Lock | None = None

    def _start_transaction_under_autocommit(self) -> None:
        lock = _lock_for(str(self.settings_dict["NAME"]))
        timeout = float(self.settings_dict.get("OPTIONS", {}).get("timeout", 5))
        if lock.acquire(timeout=timeout):
            self._write_lock = lock
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            self._release_write_lock()
            raise

    def _commit(self) -> None:
        try:
            super()._commit()
        finally:
            self._release_write_lock()

    def _rollback(self) -> None:
        try:
            super()._rollback()
        finally:
            self._release_write_lock()

    def _close(self) -> None:
        try:
            super()._close()
        finally:
            self._release_write_lock()

    def _release_write_lock(self) -> None:
        lock, self._write_lock = self._write_lock, None
        if lock is not None:
            lock.release()
