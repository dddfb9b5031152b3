"""Forward + backward time of every registered backbone at a fixed tiny size, for choosing search spaces.

``python -m mmtune.bench.timing [--batch 8] [--threads 1] [--repeats 5] [NAME ...]`` prints one JSON object:
per backbone (and 2D mode) the median wall and process-CPU milliseconds of one forward+backward pass of an
image-only binary model on random ``[B, 4, 32, 32]`` stacks (``[B, 1, 16, 16, 16]`` volumes), plus the parameter
count. CPU time is the steadier figure on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any


def time_backbone(name: str, mode: str, batch: int, repeats: int) -> dict[str, Any]:
    import torch

    from mmtune.config.run import ModelConfig
    from mmtune.data.format import ImageInfo
    from mmtune.models import BACKBONES, build_model
    from mmtune.tasks import TaskKind, TaskSpec

    dims = BACKBONES.entry(name).tags["dims"]
    shape = [4, 32, 32] if dims == 2 else [16, 16, 16]
    info = ImageInfo(dtype="float32", shape=shape, layout="stack2d" if dims == 2 else "volume3d")
    cfg = ModelConfig.model_validate({"backbone": {"name": name, "mode": mode}, "fusion": {"name": "image_only"}})
    torch.manual_seed(0)
    model = build_model(cfg, info, 0, [TaskSpec(name="y", kind=TaskKind.BINARY, classes=["0", "1"])])
    image = torch.rand(batch, *shape) if dims == 2 else torch.rand(batch, 1, *shape)
    inputs = {"image": image, "clinical": torch.zeros(batch, 0), "clinical_missing": torch.zeros(batch, 0)}
    wall, cpu = [], []
    for i in range(repeats + 1):  # the first pass warms up allocators and is dropped
        model.zero_grad(set_to_none=True)
        w0, c0 = time.perf_counter(), time.process_time()
        model(inputs)["y"].sum().backward()
        if i:
            wall.append(time.perf_counter() - w0)
            cpu.append(time.process_time() - c0)
    return {
        "wall_ms": round(statistics.median(wall) * 1000, 1),
        "cpu_ms": round(statistics.median(cpu) * 1000, 1),
        "cpu_ms_per_sample": round(statistics.median(cpu) * 1000 / batch, 2),
        "params": sum(p.numel() for p in model.parameters()),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="backbones to time (default: all registered)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    import torch

    from mmtune.models import BACKBONES

    torch.set_num_threads(args.threads)
    results: dict[str, Any] = {
        "batch": args.batch,
        "threads": args.threads,
        "input_2d": [4, 32, 32],
        "input_3d": [1, 16, 16, 16],
    }
    for name in args.names or BACKBONES.names():
        modes = ["channels", "mil"] if BACKBONES.entry(name).tags["dims"] == 2 else ["channels"]
        for mode in modes:
            results[name if mode == "channels" else f"{name}/mil"] = time_backbone(name, mode, args.batch, args.repeats)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
