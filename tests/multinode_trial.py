"""Run one 2-worker trial (Ray Train DDP over gloo) across the two worker nodes of a ``ray.cluster_utils.Cluster``.

Started by ``tests/test_cluster.py`` in its own process (it builds its own Ray cluster, which must not meet the
test session's local Ray): ``python tests/multinode_trial.py PREPARED_DIR OUT_DIR``. Prints one JSON line.
"""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import ray
import yaml
from ray.cluster_utils import Cluster


def main(prepared: str, out: str) -> None:
    from mmtune.tuning.driver import run_study
    from mmtune.tuning.space import load_search_space

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    space = {
        "name": "multinode",
        "base": {
            "data": {"path": prepared, "batch_size": 8},
            "tasks": ["covid"],
            "model": {
                "backbone": {"name": "small_cnn", "params": {"width": 8}},
                "fusion": {"name": "concat", "dim": 16},
            },
            "trainer": {"max_epochs": 2, "monitor": "val/mean_auroc", "progress": False},
            "tracking": {"aim_repo": str(folder / "aim")},
        },
        "space": {"optim.lr": {"choice": [0.002]}},
        "scheduler": {"name": "fifo", "max_t": 2},
        "resources": {"workers": 2, "cpus_per_worker": 1},
    }
    path = folder / "multinode.yaml"
    path.write_text(yaml.safe_dump(space), encoding="utf-8")

    with socket.socket() as probe:  # the session's Ray may hold the default dashboard port
        probe.bind(("127.0.0.1", 0))
        dashboard_port = probe.getsockname()[1]
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 0,
            "include_dashboard": True,
            "dashboard_host": "127.0.0.1",
            "dashboard_port": dashboard_port,
        },
    )
    nodes = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        results = run_study(load_search_space(path), results_dir=folder / "results", live=False)
        from ray.util.state import list_actors

        workers = [a for a in list_actors(detail=True, limit=10_000) if "RayTrainWorker" in a.class_name]
        row = results.frame.iloc[0]
        report = {
            "status": row["status"],
            "epochs": int(row["epochs"]),
            "auroc": float(row["final/val/mean_auroc"]),
            "aim_hash": row["aim_hash"],
            "worker_nodes": sorted({a.node_id for a in workers}),
            "cpu_nodes": sorted(n.node_id for n in nodes),
            "alive_nodes": len([n for n in ray.nodes() if n["Alive"]]),
            "error": row.get("error"),
        }
    finally:
        ray.shutdown()
        cluster.shutdown()
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
