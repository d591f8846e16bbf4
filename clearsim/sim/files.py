"""Reading the files people hand to clearsim (scenarios, claims, catalogs) as text, with the
error a person can act on instead of a traceback."""

from __future__ import annotations

from pathlib import Path

from clearsim.errors import ClearsimError, ErrorCode


def read_user_file(path: Path, code: ErrorCode) -> str:
    """The file's UTF-8 text, or ``code`` naming the file and what is wrong with it."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ClearsimError(code, f"{path}: cannot be read: {exc.strerror}", "file") from None
    except UnicodeDecodeError as exc:
        raise ClearsimError(code, f"{path}: not UTF-8 text (byte {exc.start})", "file") from None
