"""Changing a Ray Serve config file's application settings and replica counts before it is started, and
reading back how many ingress replicas it starts."""

from __future__ import annotations

from serve_app.settings import merge_settings


def override_serve_config(config: dict, args: dict, replicas: dict[str, int | dict]) -> None:
    """Change a Serve config's application `args` (merged section by section) and its deployments' replicas
    {name: a fixed count, or an autoscaling_config}; the one given replaces the other. The benchmarks start
    configs/serve.yaml with other settings this way."""
    app = config["applications"][0]
    merge_settings(app["args"], args)
    for deployment in app["deployments"]:
        if deployment["name"] in replicas:
            deployment.pop("num_replicas", None)
            deployment.pop("autoscaling_config", None)
            wanted = replicas[deployment["name"]]
            deployment["autoscaling_config" if isinstance(wanted, dict) else "num_replicas"] = wanted


def ingress_replicas(config: dict) -> int:
    """How many StreamIngress replicas a Serve config starts with."""
    ingress = next(d for d in config["applications"][0]["deployments"] if d["name"] == "StreamIngress")
    scaling = ingress.get("autoscaling_config")
    if scaling is None:
        return ingress.get("num_replicas", 1)
    return scaling.get("initial_replicas", scaling["min_replicas"])
