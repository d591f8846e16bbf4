"""An output directory: a run deletes and overwrites only what a run wrote there."""

from __future__ import annotations

import json

import pytest

from clearsim.errors import ClearsimError, ErrorCode
from testbed.outdir import MARKER, OutDir


def prepared(path, inputs=(), hold: bool = False) -> OutDir:
    out = OutDir(path, "clearsim run").prepare(list(inputs))
    if not hold:
        out.release()       # as a run lets it go when it ends
    return out


def refused(path, inputs=()) -> ClearsimError:
    with pytest.raises(ClearsimError) as err:
        prepared(path, inputs)
    return err.value


def a_run_wrote(out: OutDir, *names: str) -> None:
    for name in names:
        (out.path / name).write_text("results")
    (out.subdir("db") / "hub.db").write_text("rows")
    out.finish()


def test_a_new_directory_is_created_and_marked(tmp_path):
    out = prepared(tmp_path / "a" / "b")
    assert json.loads((out.path / MARKER).read_text())["written_by"] == "clearsim run"


def test_a_rerun_removes_what_the_last_run_wrote_and_nothing_else(tmp_path):
    out = prepared(tmp_path)
    a_run_wrote(out, "summary.json", "faults.json")
    (tmp_path / "notes.txt").write_text("mine")
    assert json.loads((tmp_path / MARKER).read_text())["files"] == ["summary.json",
                                                                   "faults.json"]
    prepared(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [MARKER, "notes.txt"]


@pytest.mark.parametrize("name", ["db", "summary.json", "claims.csv", "logs"])
def test_what_no_run_wrote_at_a_run_s_name_is_left_alone(tmp_path, name):
    target = tmp_path / name
    if "." in name:
        target.write_text("mine")
    else:
        target.mkdir()
        (target / "keep.txt").write_text("mine")
    err = refused(tmp_path)
    assert err.code is ErrorCode.OUTPUT_NOT_OURS and str(target) in err.rejection.message
    assert not (tmp_path / MARKER).exists()
    assert (target.read_text() if "." in name else (target / "keep.txt").read_text()) == "mine"


def test_a_folder_put_where_the_last_run_s_folder_was_is_not_the_run_s(tmp_path):
    out = prepared(tmp_path)
    a_run_wrote(out)
    import shutil
    shutil.rmtree(tmp_path / "db")
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "keep.txt").write_text("mine")
    assert refused(tmp_path).code is ErrorCode.OUTPUT_NOT_OURS
    assert (tmp_path / "db" / "keep.txt").read_text() == "mine"


def test_a_file_the_run_reads_is_never_where_it_writes(tmp_path):
    out = prepared(tmp_path)
    a_run_wrote(out, "claims.json")
    (tmp_path / "claims.json").write_text("[]")          # the user's claims, kept here
    for given in (tmp_path / "claims.json", tmp_path / "db" / "claims.json"):
        given.write_text("[]")
        err = refused(tmp_path, [given])
        assert err.code is ErrorCode.OUTPUT_NOT_OURS and "is read by this run" in str(err)
        assert given.read_text() == "[]"


def test_a_file_or_a_path_below_a_file_is_not_an_output_directory(tmp_path):
    path = tmp_path / "f"
    path.write_text("x")
    for given in (path, path / "sub"):
        err = refused(given)
        assert err.code is ErrorCode.OUTPUT_DIR_INVALID
    assert path.read_text() == "x"


def test_a_symlink_at_a_run_s_name_is_not_followed(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("mine")
    out = tmp_path / "out"
    out.mkdir()
    (out / "db").symlink_to(elsewhere)
    assert refused(out).code is ErrorCode.OUTPUT_NOT_OURS
    assert (elsewhere / "keep.txt").read_text() == "mine"


def test_a_directory_another_run_is_writing_into_is_refused(tmp_path):
    import subprocess
    import sys
    first = prepared(tmp_path, hold=True)      # held while this run lasts
    assert first.held is not None
    probe = ("from pathlib import Path; from testbed.outdir import OutDir; "
             "from clearsim.errors import ClearsimError\n"
             "try:\n    OutDir(Path(%r), 'clearsim run').prepare([])\n"
             "except ClearsimError as exc:\n    print(exc)" % str(tmp_path))
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60)
    first.release()
    assert "OUTPUT_DIR_INVALID" in done.stdout and "in use" in done.stdout, done.stderr
