"""Reading the files people hand to clearsim (scenarios, claims, catalogs) as text, with the
error a person can act on instead of a traceback; and printing to a reader that may go away
(``clearsim settle ... | head -1``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from clearsim.errors import ClearsimError, ErrorCode


def read_user_file(path: Path, code: ErrorCode) -> str:
    """The file's UTF-8 text (a byte-order mark at its start is skipped), or ``code``
    naming the file and what is wrong with it. A named pipe is read like a file."""
    try:
        if path.is_dir():
            raise ClearsimError(code, f"{path}: is a directory, not a file", "file")
        return path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ClearsimError(code, f"{path}: cannot be read: {exc.strerror or exc}",
                            "file") from None
    except UnicodeDecodeError as exc:
        raise ClearsimError(code, f"{path}: not UTF-8 text (byte {exc.start})", "file") from None
    except ValueError as exc:      # a path with a NUL byte in it
        raise ClearsimError(code, f"{path!r}: not a usable path: {exc}", "file") from None


def print_out(text: str) -> bool:
    """Print ``text`` and a newline on standard output. When the reader has gone (a pipe
    into ``head`` closed early), stop quietly: standard output is pointed at the null
    device so nothing more is written or complained about, and False is returned."""
    if sys.stdout is None:             # started with standard output closed (>&-)
        return False
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        return True
    except BrokenPipeError:
        silence_stdout()
        return False


def silence_stdout() -> None:
    """Point standard output at the null device (its reader has gone)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
