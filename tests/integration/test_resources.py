"""Against a real Ray: a trial no node can hold is refused once the cluster is joined, and a
search whose trials wait for resources while none runs fails after search.pending_timeout_s
instead of waiting forever."""
from __future__ import annotations

import time

import pytest

from search.config import ConfigError


def test_a_trial_larger_than_every_node_is_refused(ray_session, tiny_config):
    from search.resources import check_cluster_resources

    check_cluster_resources(tiny_config(search={"resources": {"cpus_per_trial": 2.0}}))
    with pytest.raises(ConfigError, match=r"asks for 3 CPUs and 0 GPUs, but no node of the Ray cluster "
                                          r"has that much \(at most 2 CPUs and 0 GPUs on one of its 1 nodes\)"):
        check_cluster_resources(tiny_config(search={"resources": {"cpus_per_trial": 3.0}}))


@pytest.mark.slow
def test_a_search_whose_trials_never_start_fails_after_the_pending_timeout(ray_session, tiny_config):
    from search.run import run_search
    from search.watch import SearchStalled

    @ray_session.remote(num_cpus=2)
    class Hog:  # another job holds every CPU of the cluster
        def ready(self) -> bool:
            return True

    hog = Hog.remote()
    assert ray_session.get(hog.ready.remote())
    try:
        config = tiny_config(search={"pending_timeout_s": 5.0}, tracking={"enabled": False})
        start = time.monotonic()
        with pytest.raises(SearchStalled, match=r"has waited [5-9] s for 1 CPUs and 0 GPUs while no "
                                                r"trial ran"):
            run_search(config, progress=False, log=lambda line: None)
        assert time.monotonic() - start < 300
    finally:
        ray_session.kill(hog)
