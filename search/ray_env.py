"""Ray for a search: its environment, applied when Ray starts (never at import), and joining a
cluster or starting a small local Ray on 127.0.0.1 without a dashboard."""
from __future__ import annotations

import os

from .config import ConfigError, first_line

#: Ray's settings for a search, each one left as the user set it: quiet, loopback-only, and an
#: experiment snapshot every few seconds so that a killed driver loses little.
DEFAULTS = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "TUNE_GLOBAL_CHECKPOINT_S": "5",
    # Trials keep two checkpoints, and each one forces a snapshot (CheckpointConfig(num_to_keep=2)):
    # frequent by design, so Tune's warning about frequent snapshots is noise here.
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "RAY_AIR_NEW_OUTPUT": "0",
    # Ray's tqdm relay replaces builtins.print on first use: a second search in one process could
    # then no longer pickle a callback that logs with print (Tune pickles callbacks with its state)
    "RAY_TQDM_PATCH_PRINT": "0",
}
_applied = False
_auth_mode_is_ours = False  # whether RAY_AUTH_MODE=token is this module's choice, not the user's


def apply() -> None:
    """Set :data:`DEFAULTS` and token auth for the local Ray this driver starts (chosen explicitly:
    no warning), where the user set nothing; a cluster's own nodes decide theirs (see
    :func:`_follow_the_cluster`). Call before ``ray.init``; once is enough."""
    global _applied, _auth_mode_is_ours
    if _applied:
        return
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
    if "RAY_AUTH_MODE" not in os.environ:
        _auth_mode_is_ours = True
        os.environ["RAY_AUTH_MODE"] = "token"
        _reread_auth_mode()
    _applied = True


def _reread_auth_mode() -> None:
    """Ray caches the auth mode when its core is imported; it rereads it the same way when it
    sets the mode itself (``authentication_token_setup._enable_token_auth``)."""
    from ray._raylet import Config

    Config.initialize("")


def _follow_the_cluster() -> None:
    """Joining a cluster, drop the token mode :func:`apply` chose for a local Ray: Ray's own rule
    for joining then applies (``auto`` on a node that holds a token: token; an explicit address:
    as RAY_AUTH_MODE says). A driver in token mode joins a cluster without it, and then its trial
    actors die without a word (the nodes call back into the driver without a token)."""
    global _auth_mode_is_ours
    if _auth_mode_is_ours and os.environ.get("RAY_AUTH_MODE") == "token":
        del os.environ["RAY_AUTH_MODE"]
        _auth_mode_is_ours = False
        _reread_auth_mode()


_started_with: tuple[str, ...] | None = None  # the modules shipped to the Ray this process started


def init_ray(address: str | None, *, temp_dir: str | None = None, num_cpus: int | None = None,
             py_modules: list[str] | None = None) -> None:
    """Join ``address``, or start a small local Ray on 127.0.0.1 without a dashboard.
    ``py_modules`` (files or package folders) are shipped to every worker (a user's task).

    Workers' output reaches the driver (``log_to_driver``), prefixed with the trial's process:
    trials print nothing of their own, so what comes is what a user must see, such as a
    warning that the LSQ kernel fell back to torch ops. Ray folds repeats across workers."""
    import ray

    global _started_with
    shipped = tuple(py_modules or ())
    if ray.is_initialized():
        if _started_with is None or _started_with == shipped:  # a user's Ray, or ours as it is needed
            return
        # ours, started for another search's task module in this process: its workers would not
        # find this search's (every trial failing on "No module named ..."), so start it again
        ray.shutdown()
    apply()
    runtime_env = {"py_modules": py_modules} if py_modules else None
    _started_with = shipped
    if address:
        _follow_the_cluster()
        try:
            ray.init(address=address, log_to_driver=True, runtime_env=runtime_env)
        except (ray.exceptions.AuthenticationError, ConnectionError) as err:
            raise ConfigError(
                f"cannot join the Ray cluster at {address} ({first_line(err)}): no cluster answers there, "
                "or it asks for a token this driver did not give: set RAY_AUTH_MODE=token with the "
                "cluster's token (~/.ray/auth_token or RAY_AUTH_TOKEN), as the nodes cluster.yaml starts have it") from None
        return
    ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, log_to_driver=True,
             object_store_memory=512 * 1024**2, _temp_dir=temp_dir, _node_ip_address="127.0.0.1",
             runtime_env=runtime_env)
