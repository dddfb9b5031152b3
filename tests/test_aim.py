"""Aim tracking: metric keys -> names + contexts, params and tags on a real Aim repo, a cleanly closed run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mmtune.config.run import RunConfig
from mmtune.tracking.aim import MMTuneAimLogger, flatten, list_runs, metric_name_and_context, metric_values, run_tags


@pytest.mark.parametrize(
    ("key", "name", "context"),
    [
        ("val/covid/auroc", "auroc", {"subset": "val", "task": "covid"}),
        ("train/loss", "loss", {"subset": "train"}),
        ("train/morbidity/loss", "loss", {"subset": "train", "task": "morbidity"}),
        ("test/mean_auroc", "mean_auroc", {"subset": "test"}),
        ("val/ictcf/covid/auroc_type_i", "auroc_type_i", {"subset": "val", "dataset": "ictcf", "task": "covid"}),
        ("diag/covid~morbidity/grad_cosine", "grad_cosine", {"subset": "diag", "task": "covid~morbidity"}),
        ("lr-AdamW", "lr-AdamW", {}),
    ],
)
def test_metric_keys_become_names_and_contexts(key: str, name: str, context: dict) -> None:
    assert metric_name_and_context(key) == (name, context)


def test_logger_writes_params_tags_and_contexts_to_a_real_repo(tmp_path: Path) -> None:
    cfg = RunConfig.model_validate(
        {
            "data": {"path": "x", "fold": 2},
            "tasks": ["covid"],
            "model": {"fusion": {"name": "gated"}, "backbone": {"name": "resnet18"}},
            "weighting": {"name": "pcgrad"},
            "trainer": {"seed": 3},
            "tracking": {"experiment": "demo", "tags": {"owner": "lab"}},
        }
    )
    repo = tmp_path / "aim"
    logger = MMTuneAimLogger(
        repo,
        "demo",
        run_name="trial_7",
        params=flatten(cfg.model_dump(mode="json")),
        tags=run_tags(cfg, study="demo", trial="trial_7"),
    )
    logger.log_metrics({"train/loss": 0.9, "val/covid/auroc": 0.6, "val/mean_auroc": 0.6, "epoch": 0}, step=1)
    logger.log_metrics({"train/loss": 0.5, "val/covid/auroc": 0.8, "val/covid/ap": float("nan")}, step=2)
    run_hash = logger.run_hash
    logger.close()

    # another process can reopen the run for writing: its lock was released
    code = (
        f"from aim import Run; r = Run(run_hash={run_hash!r}, repo={str(repo)!r}, system_tracking_interval=None, "
        "capture_terminal_logs=False); r['reopened'] = True; print(r.name); r.close()"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("trial_7")

    (run,) = list_runs(repo)
    assert run["hash"] == run_hash and run["experiment"] == "demo" and run["name"] == "trial_7"
    assert {"fusion=gated", "weighting=pcgrad", "backbone=resnet18", "fold=2", "seed=3", "study=demo"} <= set(
        run["tags"]
    )
    assert run["mmtune"]["trial"] == "trial_7" and run["mmtune"]["owner"] == "lab"
    assert run["hparams"]["model.fusion.name"] == "gated"
    assert run["hparams"]["optim.lr"] == pytest.approx(1e-3)
    assert ("auroc", {"subset": "val", "task": "covid"}) in run["metrics"]
    assert ("loss", {"subset": "train"}) in run["metrics"]
    assert not any(name == "ap" for name, _ in run["metrics"])  # NaN values are not tracked
    assert metric_values(repo, run_hash, "auroc", {"subset": "val", "task": "covid"}) == pytest.approx([0.6, 0.8])


def test_remote_aim_server_address_is_kept_and_local_repos_become_absolute(tmp_path, monkeypatch) -> None:
    from mmtune.tracking.aim import MMTuneAimLogger, repo_location

    monkeypatch.chdir(tmp_path)
    assert repo_location("aim://head:53800") == "aim://head:53800"
    assert MMTuneAimLogger("aim://head:53800", "study").save_dir == "aim://head:53800"
    assert repo_location("aim") == str(tmp_path / "aim")
