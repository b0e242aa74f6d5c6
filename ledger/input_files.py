"""Files a user gives the ledger to read (a bulk enrollment, a bank statement): opened so that anything but a regular
file of a bounded size is refused with a message naming it, before a byte of it is parsed."""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ledger.errors import InvalidInput


@contextmanager
def open_bounded(path: Path, bytes_max: int, limit_name: str, split: str = "split the file") -> Iterator[Any]:
    """A regular file of at most `bytes_max` bytes, opened for reading bytes through a budget (a file that grows past
    its limit while it is read is refused too); `InvalidInput` for anything else. `limit_name` names the constant
    in the messages, `split` says what to do about too big a file."""
    try:
        # Non-blocking, so that opening a pipe does not wait for a writer; the check below then refuses it. What is
        # checked is the open file, not the name, so the file cannot be swapped in between.
        raw = io.FileIO(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb")
    except OSError as error:
        raise InvalidInput(f"{path}: cannot be read ({error.strerror})") from None
    with raw:
        info = os.fstat(raw.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise InvalidInput(f"{path}: not a regular file (a device, a pipe or a socket may never end); save the "
                               f"data to a file and give that file")
        if info.st_size > bytes_max:
            raise InvalidInput(f"{path}: {info.st_size:,} bytes, more than the {bytes_max:,} allowed "
                               f"({limit_name}); {split}")
        yield io.BufferedReader(_ByteBudget(raw, bytes_max, f"{path}: more than {bytes_max:,} bytes ({limit_name}); "
                                                            f"{split}"))


class _ByteBudget(io.RawIOBase):
    """A file read through a byte budget: a file that grows past its limit while it is read is refused too."""

    def __init__(self, raw: Any, bytes_max: int, message: str) -> None:
        super().__init__()
        self._raw, self._left, self._message = raw, bytes_max, message

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        count: int | None = self._raw.readinto(buffer)
        self._left -= count or 0
        if self._left < 0:
            raise InvalidInput(self._message)
        return count
