"""Cluster launch configs pass Ray's own validation offline, and a 2-worker trial spans two nodes of a real
multi-node ``ray.cluster_utils.Cluster`` on this machine (in its own process, away from the session's Ray)."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

REPO = Path(__file__).resolve().parents[1]
SECRET_PATTERNS = [r"AKIA[0-9A-Z]{16}", r"aws_secret_access_key", r"BEGIN [A-Z ]*PRIVATE KEY", r"password\s*:"]


@pytest.mark.parametrize("name", ["cluster.yaml", "cluster-gcp.yaml"])
def test_cluster_config_passes_ray_validation(name):
    text = (REPO / name).read_text(encoding="utf-8")
    config = prepare_config(yaml.safe_load(text))
    validate_config(config)  # raises on any schema problem
    setup = config["setup_commands"]
    assert any('"ray[default,tune,train]==2.60.0"' in c for c in setup)  # pinned: no nightly on the nodes
    assert config["docker"]["image"].startswith("rayproject/ray:2.60.0")
    assert any("pip install" in c and "-e /home/ubuntu/mmtune" in c for c in setup)
    assert config["file_mounts"]["/home/ubuntu/mmtune"] == "."
    assert {".venv", "data", "results", "aim"} <= set(config["rsync_exclude"])
    types = config["available_node_types"]
    head, worker = types[config["head_node_type"]], types["gpu_worker"]
    assert worker["min_workers"] == 0 and worker["max_workers"] >= 2  # autoscaling GPU workers
    gpu_config = json.dumps([head["node_config"], worker["node_config"]])
    assert ("g5." in gpu_config) or ("nvidia-tesla" in gpu_config)
    shared = " ".join(config["initialization_commands"])
    assert "mount" in shared and "/mnt/efs" in shared
    assert any("aim server --repo /mnt/efs/mmtune/aim" in c for c in config["head_setup_commands"])
    for pattern in SECRET_PATTERNS:
        assert not re.search(pattern, text, flags=re.I), pattern


def test_cluster_validation_rejects_a_misspelt_key():
    config = yaml.safe_load((REPO / "cluster.yaml").read_text(encoding="utf-8"))
    config["max_workrs"] = 3
    with pytest.raises(jsonschema.ValidationError, match="max_workrs"):
        validate_config(prepare_config(copy.deepcopy(config)))


@pytest.mark.slow
def test_two_worker_trial_spans_two_nodes(tmp_path, prepared_synthetic):
    script = Path(__file__).with_name("multinode_trial.py")
    out = subprocess.run(
        [sys.executable, str(script), str(prepared_synthetic), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["status"] == "TERMINATED", report
    assert report["epochs"] == 2
    assert 0.0 <= report["auroc"] <= 1.0
    assert report["alive_nodes"] == 3
    # two Ray Train workers, one on each 1-CPU node (the head has no CPUs)
    assert report["worker_nodes"] == report["cpu_nodes"], report


@pytest.mark.parametrize("name", ["cluster.yaml", "cluster-gcp.yaml"])
def test_cluster_config_is_hardened(name):
    """Issue 11: no world-writable share (a dedicated group, 2770, umask 007), Aim on the head's private address
    only, Ray token authentication on every node with the token from a file mount."""
    text = (REPO / name).read_text(encoding="utf-8")
    config = prepare_config(yaml.safe_load(text))
    assert "777" not in text.replace("2770", "")
    init = " ".join(config["initialization_commands"])
    assert "groupadd -f -g 4242 mmtune" in init and "chmod 2770 /mnt/efs/mmtune " in init
    assert "chown 1000:4242" in init
    options = config["docker"]["run_options"]
    assert "--group-add 4242" in options and "-e RAY_AUTH_MODE=token" in options
    token = next(o for o in options if o.startswith("-e RAY_AUTH_TOKEN_PATH="))
    assert token.split("=", 1)[1] in config["file_mounts"]
    starts = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    assert all("umask 007" in c for c in starts if "ray start" in c)
    aim = next(c for c in config["head_setup_commands"] if "aim server" in c)
    assert "0.0.0.0" not in aim and '--host "$(hostname -I' in aim and "umask 007" in aim
    assert "--dashboard-host=127.0.0.1" in " ".join(config["head_start_ray_commands"])
    rules = config["provider"].get("security_group", {}).get("IpPermissions", [])
    assert not any(r.get("IpRanges") for r in rules)  # nothing opened to an address range
