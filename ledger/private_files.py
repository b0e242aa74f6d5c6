"""Files and directories the ledger writes are private to the account that runs it: files 0600, directories 0700.

The event store, the projections' views, the consumers' databases and outputs and the audit bundles hold members'
data (wages, balances, claims, NIK hashes); no other local user may read them. Two layers, so that neither alone has
to be perfect:

1. The entry point (`ledger.cli.main`) adds 0o077 to the process umask (`restrict_umask`), so whatever the process
   creates through any library is private: SQLite's -wal, -shm and -journal files, a rebuild's worker processes
   (a child inherits the umask).
2. Every place of ours that creates a file or a directory does it here with an explicit mode, so a caller that keeps
   the usual umask 022 (a test, a downstream consumer built on the SDK) gets the same modes. SQLite creates a new
   database file 0644 less the umask and gives its -wal and -shm files the database file's mode, so
   `create_private` creates the database file (empty, which SQLite takes as a new database) 0600 before it is opened.

Files and directories that already exist keep their modes: nothing here changes the mode of what it did not create.
PostgreSQL's files are the server's, not ours.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import IO

FILE_MODE = 0o600  # owner reads and writes
DIR_MODE = 0o700  # owner lists, enters and creates
UMASK = 0o077  # added to the process umask at the entry points: group and others get no bit

_WRITE_FLAGS = {
    "wb": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
    "ab": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
}


def restrict_umask() -> None:
    """Add `UMASK` to the process umask (a stricter one is kept). For entry points only: the umask is per process."""
    current = os.umask(UMASK)
    os.umask(current | UMASK)


def make_private_dir(path: Path) -> None:
    """`mkdir -p path`, every directory it creates 0700 (pathlib gives the parents it creates the default mode)."""
    for directory in reversed((path, *path.parents)):
        if not directory.is_dir():
            directory.mkdir(mode=DIR_MODE, exist_ok=True)  # a file in the way raises FileExistsError


def create_private(path: Path) -> None:
    """Create `path` as an empty 0600 file, and its missing directories 0700, unless it exists already.

    An existing file is never opened (O_EXCL): POSIX releases all of a process's locks on a file when any descriptor
    of it is closed, so opening and closing a database file that SQLite holds open in another thread would drop that
    connection's locks.
    """
    make_private_dir(path.parent)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE))


def create_private_database(path: Path) -> None:
    """`create_private` for an SQLite database file before SQLite opens it; an in-memory name or a URI is SQLite's."""
    name = str(path)
    if name not in ("", ":memory:") and not name.startswith("file:"):
        create_private(path)


def open_private(path: Path, mode: str) -> IO[bytes]:
    """`path.open(mode)` for "wb" or "ab", a file it creates being 0600."""
    return os.fdopen(os.open(path, _WRITE_FLAGS[mode] | os.O_CLOEXEC, FILE_MODE), mode)


def write_private(path: Path, data: bytes) -> None:
    """`path.write_bytes(data)`, a file it creates being 0600."""
    with open_private(path, "wb") as file:
        file.write(data)
