"""The shipped Serve configs name real deployments and valid application args."""


import pytest
import yaml
from pydantic import ValidationError

from serve_app.settings import AppSettings, merge_settings
from tests.support.paths import PROJECT_ROOT

CONFIGS = PROJECT_ROOT / "configs"
DEPLOYMENTS = {"StreamIngress", "EnsemblePredictor", "YOLODetector", "FaceMatcher"}


@pytest.mark.parametrize("name", ["serve.yaml", "serve.gpu.yaml", "serve.cluster.yaml"])
def test_serve_config_is_valid(name):
    config = yaml.safe_load((CONFIGS / name).read_text())
    (app,) = config["applications"]
    assert app["import_path"] == "serve_app.app:build_app"
    settings = AppSettings.model_validate(app["args"])
    assert {d["name"] for d in app["deployments"]} == DEPLOYMENTS
    predictor = next(d for d in app["deployments"] if d["name"] == "EnsemblePredictor")
    assert predictor["user_config"]["max_batch_rows"] >= settings.twin.coalesce_max_rows


def test_rayservice_example_is_valid():
    service = yaml.safe_load((CONFIGS / "rayservice.yaml").read_text())
    (app,) = yaml.safe_load(service["spec"]["serveConfigV2"])["applications"]
    AppSettings.model_validate(app["args"])
    assert {d["name"] for d in app["deployments"]} == DEPLOYMENTS
    assert all("autoscaling_config" in d for d in app["deployments"])


def test_cluster_config_autoscales_the_model_pools_and_needs_auth():
    (app,) = yaml.safe_load((CONFIGS / "serve.cluster.yaml").read_text())["applications"]
    pools = {d["name"]: d for d in app["deployments"]}
    for name in ("EnsemblePredictor", "YOLODetector"):
        scaling = pools[name]["autoscaling_config"]
        assert scaling["max_replicas"] > scaling["min_replicas"] >= 1 and "num_replicas" not in pools[name]
    assert AppSettings.model_validate(app["args"]).auth.enabled


def test_default_config_is_open_on_loopback_only():
    config = yaml.safe_load((CONFIGS / "serve.yaml").read_text())
    assert config["http_options"]["host"] == "127.0.0.1"
    assert not AppSettings.model_validate(config["applications"][0]["args"]).auth.enabled


def test_a_flat_key_of_the_earlier_layout_names_where_it_lives_now():
    moved = r"`history_limit` is now `twin.history_limit`.*`db_dir` is now `database.dir`"
    with pytest.raises(ValidationError, match=moved):
        AppSettings.model_validate({"history_limit": 5, "db_dir": "x"})
    with pytest.raises(ValidationError, match=r"twin.histroy_limit"):  # a typo is an error, not a default
        AppSettings.model_validate({"twin": {"histroy_limit": 5}})


def test_sections_merge_key_by_key():
    shipped = yaml.safe_load((CONFIGS / "serve.yaml").read_text())["applications"][0]["args"]
    merged = AppSettings.model_validate(merge_settings(shipped, {"twin": {"history_limit": 7}}))
    assert merged.twin.history_limit == 7 and merged.twin.inference == shipped["twin"]["inference"] == "ingress"


def test_a_live_settings_change_refuses_what_running_replicas_cannot_take():
    from serve_app.ingress import StreamIngress
    reconfigure = StreamIngress.func_or_class.reconfigure
    with pytest.raises(ValueError, match=r"not \['twin.inference', 'websocket_compression'\]"):
        reconfigure(None, {"twin": {"history_limit": 5, "inference": "pool"}, "websocket_compression": True})
