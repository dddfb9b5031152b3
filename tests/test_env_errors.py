"""Environment errors are one line naming the path and the cause, with a non-zero exit and nothing half-written
(issue 11): a real full file system (a small tmpfs mounted in a private mount namespace), real permission bits,
a real truncated Parquet file. Tracebacks only with ``--verbose`` or ``MMTUNE_TRACEBACK=1``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import SYNTHETIC_CARD
from helpers.ablation import make_results
from mmtune.cli import main
from mmtune.cli.failures import describe

REPO = Path(__file__).resolve().parents[1]


def train_config(folder: Path, data: Path) -> Path:
    doc = yaml.safe_load((REPO / "configs" / "concat.yaml").read_text(encoding="utf-8"))
    doc["data"] = {"path": str(data), "batch_size": 8}
    doc["trainer"]["max_epochs"] = 1
    doc["trainer"]["progress"] = False
    doc["tracking"] = {"aim_repo": None}
    path = folder / "train.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def can_mount_tmpfs(tmp_path: Path) -> str | None:
    """None when this process may mount a tmpfs in a new mount namespace (root, or unprivileged user namespaces);
    else why not."""
    if shutil.which("unshare") is None:
        return "no unshare(1) on this machine"
    probe = tmp_path / "probe"
    probe.mkdir()
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=16k tmpfs {probe}"], capture_output=True, text=True
    )
    if done.returncode != 0:
        return f"cannot mount a tmpfs in a private namespace: {done.stderr.strip()[:200]}"
    return None


def test_real_enospc_is_one_line():
    """/dev/full refuses every write with ENOSPC: a real full device. A bare write carries no file name (the
    atomic writers add the output's, see the tmpfs test); the cause and a hint are still one line."""
    try:
        with open("/dev/full", "wb") as handle:
            handle.write(b"x" * 65536)
            handle.flush()
    except OSError as exc:
        failure = describe(exc)
    else:  # pragma: no cover - /dev/full always fails writes on Linux
        pytest.skip("/dev/full accepted the write")
    assert failure is not None and failure.exit_code == 1
    assert failure.message == "error: No space left on device (ENOSPC); free some space or point the output elsewhere"


def test_disk_full_prepare_train_report(tmp_path, synthetic_raw, prepared_synthetic):
    """`data prepare` (shards written in Ray tasks), `train` and `report` on a 64 KiB tmpfs: each prints one line
    naming its output and ENOSPC, exits 1, and leaves nothing on the full disk."""
    reason = can_mount_tmpfs(tmp_path)
    if reason:
        pytest.skip(reason)
    mnt, logs = tmp_path / "mnt", tmp_path / "logs"
    mnt.mkdir()
    logs.mkdir()
    config = train_config(tmp_path, prepared_synthetic)
    results = make_results(tmp_path / "crafted", folds=2, seeds=(0,), patients=30)
    python = f"{sys.executable} -m mmtune"
    script = f"""
mount -t tmpfs -o size=64k tmpfs {mnt} || exit 99
{python} data prepare --card {SYNTHETIC_CARD} --source {synthetic_raw} --out {mnt}/prep --num-cpus 1 \
    >/dev/null 2>{logs}/prepare.err; echo $? >{logs}/prepare.rc
{python} train {config} --out {mnt}/run >/dev/null 2>{logs}/train.err; echo $? >{logs}/train.rc
{python} report {results} --out {mnt}/report >/dev/null 2>{logs}/report.err; echo $? >{logs}/report.rc
ls -A {mnt} >{logs}/left
"""
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for command, output in (("prepare", "prep"), ("train", "run"), ("report", "report")):
        err = (logs / f"{command}.err").read_text()
        assert (logs / f"{command}.rc").read_text().strip() == "1", (command, err)
        assert "Traceback" not in err, (command, err)
        lines = [line for line in err.splitlines() if line.strip()]
        assert lines and lines[-1].startswith(f"error: {mnt}/{output}: No space left on device (ENOSPC)"), (
            command,
            err,
        )
        assert len(lines) == 1, (command, err)
    assert (logs / "left").read_text().strip() == ""  # nothing half-written


def test_permission_denied_is_one_line(tmp_path, prepared_synthetic):
    """`train --out` into a folder the user may not write: one line naming it, exit 1, no traceback."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    prefix: list[str] = []
    if os.geteuid() == 0:  # root ignores permission bits: run as an ordinary user in a user namespace
        if shutil.which("unshare") is None:
            pytest.skip("root without unshare(1): permission bits cannot be tested")
        prefix = ["unshare", "--user", "--map-user=1000"]
    config = train_config(tmp_path, prepared_synthetic)
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    done = subprocess.run(
        [*prefix, sys.executable, "-m", "mmtune", "train", str(config), "--out", str(locked / "run")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if prefix and "unshare" in done.stderr and done.returncode != 1:
        pytest.skip(f"no user namespace: {done.stderr.strip()[:200]}")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: {locked}/run: Permission denied (EACCES); check the file's owner and permissions"
    ]
    assert list(locked.iterdir()) == []


def test_corrupt_parquet_is_one_line_and_traceback_on_request(tmp_path, capsys, monkeypatch):
    """A truncated trials.parquet: `report` says which file and why in one line (exit 2); MMTUNE_TRACEBACK=1 adds
    the traceback."""
    results = make_results(tmp_path / "crafted", folds=2, seeds=(0,), patients=30)
    trials = results / "trials.parquet"
    trials.write_bytes(trials.read_bytes()[:200])
    with pytest.raises(SystemExit) as info:
        main(["report", str(results), "--out", str(tmp_path / "report")])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert str(trials) in err
    assert not (tmp_path / "report").exists()

    monkeypatch.setenv("MMTUNE_TRACEBACK", "1")
    with pytest.raises(SystemExit) as info:
        main(["report", str(results), "--out", str(tmp_path / "report")])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback (most recent call last)" in err
    assert err.strip().splitlines()[-1].startswith("error: ")


def test_local_auth_mode_is_set_only_before_ray_is_imported():
    """A fresh CLI process names the token mode; a process that already imported Ray keeps its mode unchanged."""
    code = (
        "import os, sys\n"
        "from mmtune.cli.ray_auth import quiet_local_auth\n"
        "if sys.argv[1] == 'ray': import ray\n"
        "quiet_local_auth(['tune', 'x.yaml'])\n"
        "print(os.environ.get('RAY_AUTH_MODE', 'unset'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}
    fresh = subprocess.run([sys.executable, "-c", code, "fresh"], env=env, capture_output=True, text=True, check=True)
    after_ray = subprocess.run([sys.executable, "-c", code, "ray"], env=env, capture_output=True, text=True, check=True)
    assert fresh.stdout.strip() == "token"
    assert after_ray.stdout.strip() == "unset"
