"""Scale-out on a real multi-node Ray cluster: two Ray nodes on this machine (`ray start --head` plus a
worker), StreamForge deployed onto them, predictor replicas placed on both nodes, and twin batch
throughput with 1 and then 2 predictor replicas.

    python -m bench.scale_out            # ~4 minutes; writes bench/results/scale_out.json

Both nodes share this machine's cores, so the 2-replica number shows placement and routing work, not
the gain a second machine would give.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from bench.run_suite import RESULTS, SCRATCH, Process, free_port, wait_http
from bench.serve_config import override_serve_config
from bench.twin_load import run_load
from models.twin.repository import ModelRepository
from serve_app.settings import PROJECT_ROOT, AppSettings, project_path

RAY = str(Path(sys.executable).with_name("ray"))
SERVE = str(Path(sys.executable).with_name("serve"))
PREDICTOR = "EnsemblePredictor"
# a throw-away loopback cluster: no usage stats, and no Ray token auth between its two nodes
ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


def ray_cluster(head_port: int) -> None:
    """A head node and one worker node on this machine, one CPU each, with node-name resources."""
    env = {**os.environ, **ENV}
    subprocess.run([RAY, "start", "--head", f"--port={head_port}", "--num-cpus=1", "--resources={\"node_head\": 1}",
                    "--include-dashboard=true", "--dashboard-port=0", "--disable-usage-stats"], check=True, env=env)
    subprocess.run([RAY, "start", f"--address=127.0.0.1:{head_port}", "--num-cpus=1",
                    "--resources={\"node_worker\": 1}", "--disable-usage-stats"], check=True, env=env)


def config(port: int, predictor_replicas: int) -> dict:
    """configs/serve.yaml with small CPU shares (2 nodes x 1 CPU) and `predictor_replicas` predictors."""
    conf = yaml.safe_load((PROJECT_ROOT / "configs" / "serve.yaml").read_text())
    conf["http_options"] = {"host": "127.0.0.1", "port": port}
    override_serve_config(conf, {"database": {"embedded_port": free_port(), "dir": str(SCRATCH / "scale-db")},
                                 "twin": {"inference": "pool"}},  # the predictor replicas are what this bench scales
                          {PREDICTOR: predictor_replicas})
    for deployment in conf["applications"][0]["deployments"]:
        deployment["ray_actor_options"]["num_cpus"] = 0.2
        if deployment["name"] == PREDICTOR:
            deployment["ray_actor_options"]["num_cpus"] = 0.4  # two of them cannot share one 1-CPU node
    return conf


def predictor_nodes() -> list[str]:
    """Node ids of the live predictor replicas."""
    from ray.util.state import list_actors

    actors = list_actors(filters=[("state", "=", "ALIVE")], limit=1000)
    return sorted(a.node_id for a in actors if a.class_name.endswith(f":{PREDICTOR}"))


def measure(url: str, ensemble: str, seconds: float) -> dict:
    return asyncio.run(run_load(url, ensemble, 16, 256, True, seconds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    SCRATCH.mkdir(parents=True, exist_ok=True)
    repository = ModelRepository(project_path(AppSettings().twin.model_repository))
    ensemble = [n for n in repository.names() if n.startswith("Ensemble_DemoPlant_")][0]
    head_port, http_port = free_port(), free_port()
    results: dict = {"nodes": 2, "workload": "16 sessions x 256 samples/msg, msgpack", "runs": []}
    ray_cluster(head_port)
    env = {"RAY_ADDRESS": f"127.0.0.1:{head_port}", **ENV}
    server = None
    try:
        import ray

        os.environ.update(ENV)
        ray.init(address=f"127.0.0.1:{head_port}", logging_level="ERROR")
        results["cluster_nodes"] = len([n for n in ray.nodes() if n["Alive"]])
        for replicas in (1, 2):
            path = SCRATCH / f"serve.scale{replicas}.yaml"
            path.write_text(yaml.safe_dump(config(http_port, replicas)))
            if server is not None:
                server.stop()
            server = Process([SERVE, "run", str(path)], SCRATCH / f"scale{replicas}.log", env=env)
            wait_http(f"http://127.0.0.1:{http_port}/healthz", timeout_s=300)
            deadline = time.time() + 120
            while len(predictor_nodes()) != replicas and time.time() < deadline:
                time.sleep(2)
            run = measure(f"ws://127.0.0.1:{http_port}", ensemble, args.seconds)
            run.update(predictor_replicas=replicas, predictor_nodes=predictor_nodes())
            print("   ", run, flush=True)
            results["runs"].append(run)
    finally:
        if server is not None:
            server.stop()
        subprocess.run([RAY, "stop", "--force"], check=False)
    one, two = results["runs"][0]["predictions_per_s"], results["runs"][-1]["predictions_per_s"]
    results["speedup_2_vs_1"] = round(two / one, 2) if one else None
    (RESULTS / "scale_out.json").write_text(json.dumps(results, indent=2))
    print(f"1 -> 2 predictor replicas: {one} -> {two} predictions/s; wrote {RESULTS / 'scale_out.json'}")


if __name__ == "__main__":
    main()
