"""Beyond `ray up` (issue 11): the KubeRay RayCluster / RayJob manifests and the SLURM launch script, checked
offline. The manifests parse, every field they use exists in KubeRay's CRD schema (a subset vendored from
ray-project/kuberay, tests/fixtures/kuberay/crd_subset.json) with the right type, they share one PVC for data,
results and Aim, and the SLURM script passes ``bash -n`` and follows Ray's SLURM pattern."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from helpers.crd import problems

REPO = Path(__file__).resolve().parents[1]
KUBERAY = REPO / "deploy" / "kuberay"
SLURM = REPO / "deploy" / "slurm" / "mmtune-tune.sbatch"
SCHEMAS = json.loads((REPO / "tests" / "fixtures" / "kuberay" / "crd_subset.json").read_text())["schemas"]
SHARED = "/mnt/efs/mmtune"


def documents(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((KUBERAY / name).read_text(encoding="utf-8")) if d]


def cluster_spec(doc: dict) -> dict:
    return doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]


@pytest.mark.parametrize("name", ["raycluster.yaml", "rayjob.yaml"])
def test_manifest_fields_exist_in_the_kuberay_crd(name):
    (doc,) = documents(name)
    assert doc["apiVersion"] == "ray.io/v1"
    assert problems(doc, SCHEMAS[doc["kind"]]) == []
    spec = cluster_spec(doc)
    assert spec["rayVersion"] == "2.60.0" and spec["authOptions"] == {"mode": "token"}
    (gpu,) = spec["workerGroupSpecs"]
    assert gpu["minReplicas"] == 0 and gpu["maxReplicas"] >= 2 and spec["enableInTreeAutoscaling"] is True
    worker = gpu["template"]["spec"]["containers"][0]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == "1"
    for template in [spec["headGroupSpec"]["template"], gpu["template"]]:
        pod = template["spec"]
        claims = {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
        assert claims == {"mmtune-shared"}
        for container in pod["containers"]:
            assert {"name": "shared", "mountPath": SHARED} in container["volumeMounts"]
        assert pod["securityContext"]["fsGroup"] == 4242
    aim = next(c for c in spec["headGroupSpec"]["template"]["spec"]["containers"] if c["name"] == "aim")
    assert '--host "$POD_IP"' in aim["args"][0] and "0.0.0.0" not in aim["args"][0]


def test_checker_catches_misspelt_and_mistyped_fields():
    """The same check fails on what `kubectl apply` would reject: an unknown key at any depth, a wrong type."""
    (doc,) = documents("raycluster.yaml")
    bad = copy.deepcopy(doc)
    bad["spec"]["workerGroupSpecs"][0]["maxReplica"] = 4
    bad["spec"]["headGroupSpec"]["rayStartParams"]["num-gpus"] = 0  # rayStartParams values are strings
    bad["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["volumeMount"] = []
    found = problems(bad, SCHEMAS["RayCluster"])
    assert any(p.startswith("spec.workerGroupSpecs[0].maxReplica: unknown field") for p in found)
    assert any(p.startswith("spec.headGroupSpec.rayStartParams.num-gpus: expected string") for p in found)
    assert any("containers[0].volumeMount: unknown field" in p for p in found)
    (job,) = documents("rayjob.yaml")
    job["spec"]["shutdownAfterJobFinish"] = True
    assert problems(job, SCHEMAS["RayJob"]) == ["spec.shutdownAfterJobFinish: unknown field " + _known(job)]


def _known(job: dict) -> str:
    names = sorted(SCHEMAS["RayJob"]["properties"]["spec"]["properties"])
    return f"(known: {', '.join(names)})"


def test_rayjob_runs_a_study_on_the_shared_volume():
    (job,) = documents("rayjob.yaml")
    entry = job["spec"]["entrypoint"]
    assert "mmtune tune" in entry and "--address auto" in entry and f"--results {SHARED}/results" in entry
    assert "base.tracking.aim_repo=aim://" in entry
    assert job["spec"]["shutdownAfterJobFinishes"] is True
    (cluster,) = documents("raycluster.yaml")
    assert job["spec"]["rayClusterSpec"] == cluster["spec"]  # one cluster layout, two ways to run it


def test_shared_volume_service_and_network_policy():
    kinds = {d["kind"]: d for d in documents("shared.yaml")}
    assert set(kinds) == {"PersistentVolumeClaim", "Service", "NetworkPolicy"}
    assert kinds["PersistentVolumeClaim"]["spec"]["accessModes"] == ["ReadWriteMany"]
    assert kinds["PersistentVolumeClaim"]["metadata"]["name"] == "mmtune-shared"
    service = kinds["Service"]["spec"]
    assert service["type"] == "ClusterIP" and service["ports"][0]["port"] == 53800
    rule = kinds["NetworkPolicy"]["spec"]["ingress"][0]
    assert rule["from"][0]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "mmtune"}
    assert rule["ports"] == [{"protocol": "TCP", "port": 53800}]


def test_slurm_script_passes_bash_n_and_follows_rays_pattern():
    bash = shutil.which("bash")
    assert bash is not None
    done = subprocess.run([bash, "-n", str(SLURM)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    text = SLURM.read_text(encoding="utf-8")
    assert text.startswith("#!/bin/bash\n") and "#SBATCH --nodes=" in text and "#SBATCH --gpus-per-task=1" in text
    assert 'scontrol show hostnames "$SLURM_JOB_NODELIST"' in text
    assert "ray start --head" in text and 'ray start --address="$address"' in text and text.count("--block &\n") == 2
    assert "export RAY_AUTH_MODE=token" in text and "umask 007" in text
    assert 'aim server --repo "$aim_repo" --host "$head_ip"' in text
    assert 'mmtune tune "$space" --address "$address"' in text
    broken = text.replace('for node in "${nodes[@]:1}"; do', 'for node in "${nodes[@]:1}"')
    done = subprocess.run([bash, "-n"], input=broken, capture_output=True, text=True)
    assert done.returncode != 0  # bash -n does catch a broken script
    if shutil.which("shellcheck"):
        check = subprocess.run(["shellcheck", "-S", "warning", str(SLURM)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout


def test_docs_cover_the_three_ways_and_the_security_settings():
    docs = (REPO / "docs" / "cluster.md").read_text(encoding="utf-8")
    for needle in (
        "ray up cluster.yaml",
        "deploy/kuberay/",
        "kubectl apply -f deploy/kuberay/rayjob.yaml",
        "sbatch deploy/slurm/mmtune-tune.sbatch",
        "### Ray token authentication",
        "RAY_AUTH_MODE=token",
        "ssh -i",
        "-L 53800:HEAD_PRIVATE_IP:53800",
        "2770",
        "weights_only=True",
    ):
        assert needle in docs, needle
    assert "--host 0.0.0.0" not in docs
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "MMTUNE_TRACEBACK=1" in readme and "mmtune --verbose" in readme
