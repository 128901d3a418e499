"""`serve deploy` to a running Ray cluster (`ray start --head`), as operators run it, and a redeploy that
changes a setting through StreamIngress's user_config: the running replicas take it, and an open
WebSocket carries on through it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import websockets
import yaml

from bench.process_group import session_members
from bench.run_suite import free_port, wait_http
from serve_app.settings import ray_environment
from tests.support.server import CLIENT_TOKEN
from tests.support.wire import STREAM_PATH, as_signals, rows

BIN = Path(sys.executable).parent
CURRENT_CLUSTER = Path("/tmp/ray/ray_current_cluster")  # the address `ray start` leaves for later clients


class RayHead:
    """`ray start --head` in its own session; stopped by killing that session's processes only."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.dashboard = f"http://127.0.0.1:{free_port()}"
        starter = subprocess.Popen(
            [str(BIN / "ray"), "start", "--head", f"--port={free_port()}", "--dashboard-host=127.0.0.1",
             f"--dashboard-port={self.dashboard.rsplit(':', 1)[1]}", "--num-cpus=2", "--disable-usage-stats"],
            env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out, _ = starter.communicate(timeout=180)
        self.session = starter.pid
        assert starter.returncode == 0, out

    def serve(self, *args: str) -> str:
        done = subprocess.run([str(BIN / "serve"), *args, "--address", self.dashboard],
                              env=self.env | {"RAY_AUTH_MODE": "token"},  # the cluster's token, ~/.ray/auth_token
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
        return done.stdout

    def stop(self) -> None:
        for pid in session_members(self.session):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        CURRENT_CLUSTER.unlink(missing_ok=True)  # as `ray stop` does: `serve run` would try to join it


def _deploy_config(server, history_limit: int) -> dict:
    """The test server's config (same data and database), with the ingress's live history_limit."""
    config = yaml.safe_load(server.process.config_path.read_text())
    for deployment in config["applications"][0]["deployments"]:
        if deployment["name"] == "StreamIngress":
            deployment["user_config"] = {"twin": {"history_limit": history_limit}}
    return config


@pytest.mark.restarts_server
def test_serve_deploy_and_a_live_setting_change_keep_connections(server, tmp_path):
    server.process.stop()  # one Ray cluster at a time on this machine (ports, cores)
    env = (
        {k: v for k, v in os.environ.items() if k != "MONGODB_URI"}
        | ray_environment()
        | {"RAY_USAGE_STATS_ENABLED": "0"}
    )
    head = RayHead(env)
    try:
        config_path = tmp_path / "deploy.yaml"
        config_path.write_text(yaml.safe_dump(_deploy_config(server, history_limit=30)))
        head.serve("deploy", str(config_path))
        wait_http(f"{server.http}/healthz", timeout_s=240)
        x = rows(90, seed=95)

        async def stream_through_a_redeploy():
            async with websockets.connect(
                server.ws + STREAM_PATH, additional_headers=server.headers(CLIENT_TOKEN)
            ) as ws:

                async def predict(row) -> dict:
                    await ws.send(json.dumps({"type": "predict", "data": {"boundary_signals": as_signals(row)}}))
                    return json.loads(await ws.recv())

                await ws.send(json.dumps({"type": "config", "data": {"ensemble_name": server.demo.name}}))
                sid = json.loads(await ws.recv())["session_id"]
                replies = [await predict(r) for r in x[:40]]
                async with server.async_api() as api:
                    before = len(
                        (await api.get(f"/api/v1/inference/stream/history/{sid}?format=json")).json()["samples"]
                    )
                    config_path.write_text(yaml.safe_dump(_deploy_config(server, history_limit=60)))
                    await asyncio.to_thread(head.serve, "deploy", str(config_path))
                    for _ in range(120):  # the running replicas reconfigure; the socket stays open meanwhile
                        status = await asyncio.to_thread(head.serve, "status")
                        if "UPDATING" not in status and "DEPLOYING" not in status:
                            break
                        await asyncio.sleep(1)
                    replies += [await predict(r) for r in x[40:]]
                    after = len(
                        (await api.get(f"/api/v1/inference/stream/history/{sid}?format=json")).json()["samples"]
                    )
                return replies, before, after, ws.close_code

        replies, before, after, close_code = asyncio.run(stream_through_a_redeploy())
        assert [r["type"] for r in replies] == ["prediction"] * 90  # nothing dropped across the redeploy
        assert close_code is None
        assert before == 30 and after == 60  # the old limit, then the new one on the same session
    finally:
        head.stop()
        server.process.start()  # the shared test server, for the tests after this one
