"""sagan-prepare under faults found by fault injection: symlink loops, a full disk, dead
workers, non-UTF-8 names, nothing decodable, untrainable resolutions, read-only outputs, file modes."""

from __future__ import annotations

import errno
import faulthandler
import json
import multiprocessing
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import sagan.data.prepare as prepare
from sagan.commands.prepare import main as prepare_cli
from sagan.data import FolderDataset, open_dataset
from sagan.data.images import printable, scan_class_tree
from sagan.data.formats.packed import IMAGES, LABELS, MANIFEST, PROGRESS, SKIPPED, SlotWriter
from sagan.errors import UserError
from sagan.io import DiskFullError, NotWritableError

R = 16
REPO = Path(__file__).resolve().parents[2]
needs_fork = pytest.mark.skipif(multiprocessing.get_start_method() != "fork",
                                reason="the test patches _pack_chunk, which only forked workers inherit")


def _photo(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(path)


def _tree(root: Path, counts: dict[str, int]) -> Path:
    for name, count in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            _photo(root / name / f"{i:02d}.png", 100 * len(name) + i)
    return root


def _one_line(e: BaseException) -> str:
    text = str(e)
    assert "\n" not in text and text
    return text


def _run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sagan.commands.prepare", *args, "--quiet"], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)


# --------------------------------------------------------------------------------------------------
# symlinks: each real folder and file packed once, loops and repeats reported


def test_loop_back_to_the_class_folder_packs_each_image_once(tmp_path):
    # the reported case: os.walk(followlinks=True) went ~40 levels down a/sub/loop/sub/loop/... and
    # packed the class's 7 images 41 times, reporting success
    root = _tree(tmp_path / "tree", {"a": 6, "b": 2})
    (root / "a" / "sub").mkdir()
    _photo(root / "a" / "sub" / "deep.png", 9)
    os.symlink("..", root / "a" / "sub" / "loop")
    out = tmp_path / "packed"
    manifest = prepare.pack(root, out, R, workers=0, chunk_size=4, progress=False)
    assert manifest["class_counts"] == [7, 2] and manifest["num_slots"] == 9
    assert (out / SKIPPED).read_text() == "a/sub/loop\tsymlink loop: leads back to a\n"


@pytest.fixture
def linked_tree(tmp_path):
    """Class a: 3 images, sub/ with 1 image, sub/loop -> .. and twin -> sub; class b: 1 own image, a
    symlink and a hard link to images of a, a dangling link; class c: a symlink to a folder outside."""
    root = _tree(tmp_path / "tree", {"a": 3, "b": 1})
    _photo(root / "a" / "sub.png", 7)
    (root / "a" / "sub").mkdir()
    _photo(root / "a" / "sub" / "deep.png", 8)
    os.symlink("..", root / "a" / "sub" / "loop")
    os.symlink("sub", root / "a" / "twin")
    os.symlink("../a/00.png", root / "b" / "link.png")
    os.link(root / "a" / "01.png", root / "b" / "hard.png")
    os.symlink("nowhere.png", root / "b" / "dangling.png")
    elsewhere = _tree(tmp_path / "other_disk", {"real_c": 2})
    os.symlink(elsewhere / "real_c", root / "c")
    return root


def test_symlink_loop_is_listed_once_and_reported(linked_tree):
    tree = scan_class_tree(linked_tree)
    assert tree.classes == ["a", "b", "c"]
    assert tree.files == [("a/00.png", 0), ("a/01.png", 0), ("a/02.png", 0), ("a/sub.png", 0), ("a/sub/deep.png", 0),
                          ("b/00.png", 1), ("b/dangling.png", 1), ("c/00.png", 2), ("c/01.png", 2)]
    assert dict(tree.skipped) == {
        "a/sub/loop": "symlink loop: leads back to a",
        "a/twin": "folder already listed as a/sub",
        "b/hard.png": "same file as a/01.png",
        "b/link.png": "same file as a/00.png",
    }
    assert len(FolderDataset(linked_tree, R)) == 9  # training straight from the tree sees each image once


def test_symlink_loop_packs_each_image_once(linked_tree, tmp_path):
    out = tmp_path / "packed"
    manifest = prepare.pack(linked_tree, out, R, workers=0, chunk_size=4, progress=False)
    assert manifest["num_slots"] == 9 and manifest["num_images"] == 8  # the dangling link is unreadable
    assert manifest["class_counts"] == [5, 1, 2] and manifest["num_skipped"] == 1 + 4
    report = dict(line.split("\t") for line in (out / SKIPPED).read_text().splitlines())
    assert report["a/sub/loop"] == "symlink loop: leads back to a"
    assert report["b/dangling.png"].startswith("[Errno 2] No such file")
    line = prepare.summary(manifest, out)
    assert "skipped 1 unreadable file(s) and 4 repeated" in line


def test_class_folder_linked_twice_names_the_repeat(tmp_path):
    root = _tree(tmp_path / "tree", {"a": 2})
    os.symlink("a", root / "b")
    with pytest.raises(UserError, match=r"b: class folder without images \(b: folder already listed as a\)") as err:
        scan_class_tree(root)
    _one_line(err.value)


# --------------------------------------------------------------------------------------------------
# a full disk: one line, no SIGBUS, no hang, nothing partial that keeps the disk full


def _fill(disk: Path, leave: int) -> None:
    """Fill ``disk`` (a tmpfs) so that exactly ``leave`` bytes (a page multiple) stay free."""
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with open(disk / "filler", "wb") as f:
        f.write(b"\1" * (free - leave))
    assert os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize == leave


@pytest.mark.parametrize("workers", ["0", "2"])
def test_full_disk_is_one_line_not_sigbus_or_hang(small_disk, tmp_path, workers):
    # 20 images at 16px: the old estimate (15.5 KB) fit in the 4 free pages, the arrays' 5 pages did not:
    # the memory-mapped writes hit SIGBUS (exit 135) with --workers 0 and hung with --workers 2
    src = _tree(tmp_path / "src", {"a": 10, "b": 10})
    disk = small_disk("1m")
    _fill(disk, -(-20 * (R * R * 3 + 8) // 4096) * 4096)
    out = disk / "packed"
    result = _run_cli("--source", str(src), "--out", str(out), "--resolution", str(R), "--workers", workers,
                      "--chunk-size", "4")
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "free" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists() or not any(out.iterdir())


def test_failed_preallocation_leaves_nothing(small_disk, tmp_path, monkeypatch):
    src = _tree(tmp_path / "src", {"a": 10, "b": 10})
    disk = small_disk("1m")
    _fill(disk, 4 * 4096)
    monkeypatch.setattr(prepare, "check_free_space", lambda *a, **k: None)  # as if the space went meanwhile
    out = disk / "packed"
    with pytest.raises(DiskFullError, match="free some space") as err:
        prepare.pack(src, out, R, workers=0, chunk_size=4, progress=False)
    _one_line(err.value)
    assert not out.exists()  # created by this run, and nothing was written into it


def _enospc_from_chunk(monkeypatch, first_failing: int) -> None:
    real = SlotWriter.write

    def write(self, start, images, labels):
        if start >= first_failing * 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, start, images, labels)

    monkeypatch.setattr(SlotWriter, "write", write)


@pytest.mark.parametrize("workers", [0, pytest.param(2, marks=needs_fork)])
def test_disk_full_mid_run_keeps_finished_chunks_for_resume(tmp_path, monkeypatch, workers):
    # copy-on-write file systems (btrfs, ZFS) need new blocks even for preallocated ranges
    src = _tree(tmp_path / "src", {"a": 9, "b": 7})
    clean = prepare.pack(src, tmp_path / "clean", R, workers=0, chunk_size=4, progress=False)
    out = tmp_path / "out"
    _enospc_from_chunk(monkeypatch, first_failing=2)
    with pytest.raises(DiskFullError, match=r"finished chunk\(s\) are kept.*run the same command again") as err:
        prepare.pack(src, out, R, workers=workers, chunk_size=4, progress=False)
    _one_line(err.value)
    records = [json.loads(line) for line in (out / PROGRESS).read_text().splitlines()[1:]]
    recorded = {rec["chunk"] for rec in records}
    assert recorded == {0, 1} if workers == 0 else recorded <= {0, 1}  # with workers: those finished in time
    monkeypatch.undo()
    resumed = prepare.pack(src, out, R, workers=workers, chunk_size=4, progress=False)
    assert resumed["checksum"] == clean["checksum"]


def test_disk_full_before_any_chunk_gives_the_space_back(tmp_path, monkeypatch):
    src = _tree(tmp_path / "src", {"a": 3, "b": 3})
    out = tmp_path / "out"
    _enospc_from_chunk(monkeypatch, first_failing=0)
    with pytest.raises(DiskFullError, match="nothing was kept") as err:
        prepare.pack(src, out, R, workers=0, chunk_size=4, progress=False)
    _one_line(err.value)
    assert not out.exists()


# --------------------------------------------------------------------------------------------------
# dead workers are reported, Ctrl-C still stops everything and resumes


class _Deadline:
    """Turn a hang into a test failure (SIGALRM) instead of a stuck test run."""

    def __init__(self, seconds: int):
        self.seconds = seconds

    def __enter__(self):
        def fail(*_):
            raise AssertionError(f"still waiting after {self.seconds} s: a hang")

        self.previous = signal.signal(signal.SIGALRM, fail)
        signal.alarm(self.seconds)

    def __exit__(self, *exc):
        signal.alarm(0)
        signal.signal(signal.SIGALRM, self.previous)


@needs_fork
@pytest.mark.parametrize("sig, message", [(signal.SIGBUS, "signal 7: SIGBUS"), (signal.SIGKILL, "OOM killer")])
def test_dead_worker_is_one_line_not_a_hang(tmp_path, monkeypatch, sig, message):
    src = _tree(tmp_path / "src", {"a": 9, "b": 7})
    clean = prepare.pack(src, tmp_path / "clean", R, workers=0, chunk_size=4, progress=False)
    real = prepare._pack_chunk

    def dies_on_chunk_2(task):
        if task[0] == 2:
            faulthandler.disable()  # pytest's, inherited by the fork: no crash dump in the test output
            os.kill(os.getpid(), sig)
        return real(task)

    monkeypatch.setattr(prepare, "_pack_chunk", dies_on_chunk_2)
    out = tmp_path / "out"
    with _Deadline(60), pytest.raises(UserError, match=f"a decoding worker died.*{message}.*resume") as err:
        prepare.pack(src, out, R, workers=2, chunk_size=4, progress=False)
    _one_line(err.value)
    monkeypatch.undo()
    assert prepare.pack(src, out, R, workers=2, chunk_size=4, progress=False)["checksum"] == clean["checksum"]


@needs_fork
def test_ctrl_c_stops_workers_and_resumes(tmp_path):
    src = _tree(tmp_path / "src", {"a": 12, "b": 12})
    out = tmp_path / "out"
    # each chunk takes 0.3 s more (the forked workers inherit the patch), so Ctrl-C lands mid-run
    script = ("import sys, time; import sagan.data.prepare as p; from sagan.commands.prepare import main; "
              "real = p._pack_chunk; p._pack_chunk = lambda task: (time.sleep(0.3), real(task))[1]; main()")
    proc = subprocess.Popen([sys.executable, "-c", script, "--source", str(src), "--out", str(out), "--resolution",
                             str(R), "--workers", "2", "--chunk-size", "2", "--quiet"], cwd=REPO,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not ((out / PROGRESS).exists() and len((out / PROGRESS).read_text().splitlines()) >= 2):
            assert time.monotonic() < deadline and proc.poll() is None, "no chunk finished"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)  # what the terminal sends to the foreground group
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130 and "interrupted" in stderr and "Traceback" not in stderr, stderr
    for _ in range(100):  # no worker outlives the main process
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("decoding workers are still running after Ctrl-C")
    assert not (out / MANIFEST).exists()
    clean = prepare.pack(src, tmp_path / "clean", R, workers=0, chunk_size=2, progress=False)
    assert prepare.pack(src, out, R, workers=2, chunk_size=2, progress=False)["checksum"] == clean["checksum"]


# --------------------------------------------------------------------------------------------------
# names that are not UTF-8 (and control characters) in file and class folder names: packed and reported


def test_non_utf8_names_are_packed_and_reported(tmp_path, monkeypatch):
    root = tmp_path / "tree"
    cafe = os.fsencode(root) + b"/caf\xff"
    os.makedirs(cafe)
    _photo(Path(os.fsdecode(cafe + b"/pic\xff.png")), 1)
    Path(os.fsdecode(cafe + b"/bad\xff.jpg")).write_text("not an image")
    _tree(root, {"plain": 2})
    Path(root / "plain" / "tab\there.jpg").write_bytes(b"")
    out = tmp_path / "packed"
    real = prepare._pack_chunk

    def interrupted_after_one(task):
        if task[0] == 1:
            raise KeyboardInterrupt
        return real(task)

    monkeypatch.setattr(prepare, "_pack_chunk", interrupted_after_one)
    with pytest.raises(KeyboardInterrupt):  # the progress records hold the raw names
        prepare.pack(root, out, R, workers=0, chunk_size=2, progress=False)
    monkeypatch.undo()
    manifest = prepare.pack(root, out, R, workers=0, chunk_size=2, progress=False)  # resumes
    assert manifest["classes"] == ["caf\\xff", "plain"]
    assert manifest["num_images"] == 3 and manifest["class_counts"] == [1, 2]
    report = (out / SKIPPED).read_bytes().decode("utf-8")  # valid UTF-8, one line per file
    assert [line.split("\t")[0] for line in report.splitlines()] == ["caf\\xff/bad\\xff.jpg", "plain/tab\\x09here.jpg"]
    assert json.loads((out / MANIFEST).read_text())["classes"][0] == "caf\\xff"
    assert prepare.pack(root, out, R, workers=0, chunk_size=2, progress=False)["checksum"] == manifest["checksum"]
    prepare.summary(manifest, out).encode("utf-8")  # printable: no lone surrogates left to crash a print
    assert open_dataset(out).class_names == ["caf\\xff", "plain"]
    ds = FolderDataset(root, R)
    assert ds.class_names == ["caf\\xff", "plain"] and len(ds) == 5
    result = CliRunner().invoke(prepare_cli, ["--source", str(root), "--out", str(out), "--resolution", str(R),
                                               "--chunk-size", "2", "--quiet"])
    assert result.exit_code == 0 and "packed 3 images of 2 classes" in result.output, result.output


def test_printable_escapes_only_what_cannot_be_printed():
    assert printable("n01440764/ok é 日本.JPEG") == "n01440764/ok é 日本.JPEG"
    assert printable(os.fsdecode(b"a\xff\xfe.jpg")) == "a\\xff\\xfe.jpg"
    assert printable("two\nlines\tand\x7f") == "two\\x0alines\\x09and\\x7f"


# --------------------------------------------------------------------------------------------------
# refused in one line: nothing decodable, resolutions training cannot use, bad --workers


def test_no_decodable_image_is_refused(tmp_path):
    root = tmp_path / "tree"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        (root / name / "x.jpg").write_text("not an image")
    out = tmp_path / "out"
    with pytest.raises(UserError, match=r"none of the 2 image files .* could be decoded; .*skipped.txt lists") as err:
        prepare.pack(root, out, R, workers=0, progress=False)
    _one_line(err.value)
    assert len((out / SKIPPED).read_text().splitlines()) == 2
    assert not (out / MANIFEST).exists() and not (out / IMAGES).exists() and not (out / LABELS).exists()


@pytest.mark.parametrize("resolution", [100, 8, 0, 48])
def test_resolution_training_cannot_use_is_refused(tmp_path, resolution):
    src = _tree(tmp_path / "src", {"a": 1})
    out = tmp_path / "out"
    with pytest.raises(UserError, match=f"--resolution {resolution}.*power of two") as err:
        prepare.pack(src, out, resolution, workers=0, progress=False)
    _one_line(err.value)
    assert not out.exists()  # refused before any work
    result = CliRunner().invoke(prepare_cli, ["--source", str(src), "--out", str(out), "--resolution",
                                               str(resolution)])
    assert result.exit_code == 2 and "error: --resolution" in result.output


def test_negative_workers_refused(tmp_path):
    src = _tree(tmp_path / "src", {"a": 1})
    with pytest.raises(UserError, match="--workers -1 must be >= 0"):
        prepare.pack(src, tmp_path / "out", R, workers=-1, progress=False)


# --------------------------------------------------------------------------------------------------
# a read-only --out is refused before any work; outputs follow the umask


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder nobody can write to: a read-only tmpfs where we are root (chmod does not stop root)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                             capture_output=True, timeout=10).returncode == 0
    if not mounted:
        pytest.skip("cannot mount a read-only tmpfs")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=10)


@pytest.mark.parametrize("where", ["the folder itself", "a folder inside"])
def test_read_only_out_is_refused_before_work(tmp_path, read_only_dir, monkeypatch, where):
    src = _tree(tmp_path / "src", {"a": 2})
    out = read_only_dir if where == "the folder itself" else read_only_dir / "packed"
    monkeypatch.setattr(prepare, "open_source", lambda *a: pytest.fail("listed the source before the check"))
    with pytest.raises(NotWritableError, match="--out .* is not writable") as err:
        prepare.pack(src, out, R, workers=0, progress=False)
    _one_line(err.value)
    monkeypatch.undo()
    result = _run_cli("--source", str(src), "--out", str(out), "--resolution", str(R))
    assert result.returncode == 2 and result.stderr.startswith("error: --out") and "Traceback" not in result.stderr


def test_outputs_follow_the_umask(tmp_path):
    src = _tree(tmp_path / "src", {"a": 2, "b": 1})
    (src / "b" / "broken.jpg").write_bytes(b"")
    previous = os.umask(0o022)
    try:
        prepare.pack(src, tmp_path / "out", R, workers=0, progress=False)
    finally:
        os.umask(previous)
    for name in (MANIFEST, SKIPPED, IMAGES, LABELS):
        assert stat.S_IMODE((tmp_path / "out" / name).stat().st_mode) == 0o644, name
