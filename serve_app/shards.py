"""Named, restartable shard actors and the stable session-id -> shard mapping they share."""

from __future__ import annotations

import zlib

import ray

from serve_app.settings import AppSettings


def shard_index(session_id: str, shards: int) -> int:
    """Stable across processes and restarts (unlike hash())."""
    return zlib.crc32(session_id.encode()) % shards


def shard_actors(cls: type, name: str, settings: AppSettings, mongo_uri: str | None) -> list:
    """`settings.sessions.shards` detached actors `cls(settings, mongo_uri)` named `<name>-<i>`: created once,
    found again by every replica, restarted by Ray (with the same arguments) if their process dies. Actors
    found again outlive a redeploy, so each is handed these settings (`cls.configure`)."""
    remote = ray.remote(cls)
    actors = [remote.options(name=f"{name}-{i}", get_if_exists=True, lifetime="detached", num_cpus=0,
                             max_restarts=-1).remote(settings, mongo_uri) for i in range(settings.sessions.shards)]
    for actor in actors:
        actor.configure.remote(settings)
    return actors
