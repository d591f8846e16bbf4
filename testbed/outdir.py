"""Where a run writes (``--out DIR``): it deletes and overwrites only what it wrote itself.

A run marks the directory it writes into with ``.clearsim-run``, a small JSON file listing
what it writes there, and every folder it creates (``db/``, ``logs/``, ``kafka/``) with a
marker of its own. A new run into the same directory first removes what the last run listed
(a rerun starts clean); a file or folder at one of the run's names that no run wrote is
never touched: the run refuses to start (``OUTPUT_NOT_OURS``) and names it. Nor does a run
write over a file it reads (a claims file kept in the output directory, say). A ``--out``
that is a file, or that cannot be created or written, is ``OUTPUT_DIR_INVALID``.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from clearsim.errors import ClearsimError, ErrorCode

MARKER = ".clearsim-run"
# What ``clearsim run`` and ``clearsim drive`` write into --out (testbed.report,
# testbed.fault_report, testbed.html_report) and the folders they create there.
REPORT_FILES = ("summary.json", "claims.json", "claims.csv", "cases.csv", "clearing.csv",
                "distributions.csv", "delivery.json", "faults.json", "faults.csv",
                "report.html")
RUN_DIRS = ("db", "logs", "kafka")
DRIVE_DIRS = ("driver",)


@dataclass
class OutDir:
    """An output directory a command may use; ``prepare`` checks and cleans it."""

    path: Path
    command: str                              # "clearsim run", for the marker
    files: tuple[str, ...] = REPORT_FILES
    dirs: tuple[str, ...] = RUN_DIRS
    held: int | None = None                   # the directory's lock, for the process

    def prepare(self, inputs: list[Path] = ()) -> "OutDir":
        """Create the directory (or take an empty one, or one a run wrote), refuse one whose
        names are taken by what no run wrote or that holds one of ``inputs``, then remove
        what the last run wrote and mark the directory for this one."""
        flag = "--out"
        try:
            if self.path.exists() and not self.path.is_dir():
                raise ClearsimError(ErrorCode.OUTPUT_DIR_INVALID,
                                    f"{self.path} is a file; --out names a directory the run "
                                    "writes its results into", flag)
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ClearsimError(ErrorCode.OUTPUT_DIR_INVALID,
                                f"{self.path} cannot be created: {exc.strerror or exc}",
                                flag) from None
        self._lock()
        try:
            self._refuse_inputs(inputs)
            previous = self._manifest()
            ours = set(previous.get("files", [])) | set(previous.get("dirs", []))
            for name in (*self.files, *self.dirs):
                target = self.path / name
                if not (target.exists() or target.is_symlink()):
                    continue
                if name not in ours or not self._written_by_a_run(target, name):
                    raise ClearsimError(
                        ErrorCode.OUTPUT_NOT_OURS,
                        f"{target} is not marked as a run's output ({MARKER}): a run would "
                        f"{'replace' if name in self.files else 'write into'} what it did not "
                        "write (yours, or an older clearsim's); move it away or give another "
                        "--out", flag)
            self._write_manifest(list(self.files), list(self.dirs))
            for name in (*self.files, *self.dirs):
                target = self.path / name
                try:
                    if target.is_dir() and not target.is_symlink():
                        shutil.rmtree(target)
                    elif target.exists() or target.is_symlink():
                        target.unlink()
                except OSError as exc:
                    raise ClearsimError(ErrorCode.OUTPUT_DIR_INVALID,
                                        f"{target}, written by the last run, cannot be removed: "
                                        f"{exc.strerror or exc}", flag) from None
        except BaseException:
            self.release()          # refused: the directory is let go at once
            raise
        return self

    def subdir(self, name: str) -> Path:
        """A folder of the run's (``db``), created empty and marked as the run's."""
        assert name in self.dirs, name
        target = self.path / name
        try:
            target.mkdir(parents=True, exist_ok=True)
            (target / MARKER).write_text(json.dumps({"written_by": self.command,
                                                     "folder": name}) + "\n")
        except OSError as exc:
            raise ClearsimError(ErrorCode.OUTPUT_DIR_INVALID,
                                f"{target} cannot be created: {exc.strerror or exc}",
                                "--out") from None
        return target

    def finish(self) -> None:
        """List in the marker what the run did write (a later run removes just that), and
        let the directory go."""
        try:
            self._write_manifest([n for n in self.files if (self.path / n).exists()],
                                 [n for n in self.dirs if (self.path / n).is_dir()])
        finally:
            self.release()

    def release(self) -> None:
        if self.held is not None:
            os.close(self.held)
            self.held = None

    def _lock(self) -> None:
        """Hold the directory for this process (a lock on it, let go when the process
        ends): a second run started into the same directory meanwhile would write into the
        same databases and files."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError as exc:
            raise ClearsimError(ErrorCode.OUTPUT_DIR_INVALID, f"{self.path} cannot be "
                                f"opened: {exc.strerror or exc}", "--out") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if not isinstance(exc, BlockingIOError):
                return          # a file system without locks: the run goes on unguarded
            raise ClearsimError(ErrorCode.OUTPUT_DIR_INVALID,
                                f"{self.path} is in use by another clearsim run; wait for it "
                                "or give another --out", "--out") from None
        self.held = fd

    # -- the marker ----------------------------------------------------------------

    def _manifest(self) -> dict:
        marker = self.path / MARKER
        if not marker.is_file():
            return {}
        try:
            data = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write_manifest(self, files: list[str], dirs: list[str]) -> None:
        marker = self.path / MARKER
        try:
            if marker.exists() and not marker.is_file():
                raise IsADirectoryError(21, "is not a file")
            tmp = self.path / (MARKER + ".tmp")
            tmp.write_text(json.dumps({"written_by": self.command, "files": files,
                                       "dirs": dirs}, indent=1) + "\n")
            os.replace(tmp, marker)
        except OSError as exc:
            raise ClearsimError(ErrorCode.OUTPUT_DIR_INVALID,
                                f"{self.path} cannot be written: {exc.strerror or exc}",
                                "--out") from None

    def _written_by_a_run(self, target: Path, name: str) -> bool:
        """A listed file is the run's; a listed folder only while it holds its own marker
        (a folder put there since, under the same name, is not)."""
        if target.is_symlink():
            return False
        if name in self.files:
            return target.is_file()
        return target.is_dir() and (target / MARKER).is_file()

    def _refuse_inputs(self, inputs) -> None:
        """A run reads its inputs before it writes: one at a place the run writes to would
        be lost."""
        places = [(self.path / n).resolve() for n in (*self.files, *self.dirs)]
        for given in inputs:
            try:
                source = Path(given).resolve()
            except (OSError, RuntimeError):
                continue
            for place in places:
                if source == place or place in source.parents:
                    raise ClearsimError(
                        ErrorCode.OUTPUT_NOT_OURS,
                        f"{given} is read by this run, and the run writes "
                        f"{place.relative_to(self.path.resolve())} into {self.path}; copy "
                        "it elsewhere or give another --out", "--out")
