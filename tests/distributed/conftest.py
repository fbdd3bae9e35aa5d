"""A real local Ray cluster on 127.0.0.1 (2 CPUs, 300 MB object store) for the whole folder, and a
folder of a few hundred generated 48 x 48 images for the bundled shapes model.

The cluster is started once by the first test that needs it and shut down (every Ray process it
started with it) after the last test of this folder, not at the end of the whole session: its
processes hold about a gigabyte.
"""

from __future__ import annotations

import sys

import pytest

from tests.distributed.helpers import N_IMAGES, write_images


@pytest.hookimpl(trylast=True)  # after the test's fixtures are torn down: a test that replaced
def pytest_runtest_teardown(item, nextitem):  # ray.init/shutdown (test_ray_startup) has put them back
    """Leaving this folder: stop the cluster (the session fixture's own teardown is then a no-op).
    The last test here replaces ``ray.shutdown`` while it runs; stopping the cluster before its
    fixtures were undone left the cluster (a gigabyte, a few busy processes) running for the rest
    of the session."""
    if nextitem is not None and "tests/distributed/" in nextitem.nodeid:
        return
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


def pytest_collection_modifyitems(config, items):
    """Keep the module that starts no cluster (the no-Ray message) first: it blocks ``import ray``
    and must not run while a cluster is up in this process."""
    items.sort(key=lambda item: "test_ray_missing" not in item.nodeid)


@pytest.fixture(scope="session")
def ray_cluster():
    """``ray`` joined to a new local cluster (never one a ``ray start`` on this machine left
    running); yields the GCS address for other drivers (the CLI)."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("pyarrow")
    ray.init(address="local", num_cpus=2, include_dashboard=False,
             object_store_memory=300 * 2**20, _node_ip_address="127.0.0.1",
             logging_level="warning", log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory):
    """(folder, sorted paths) of :data:`N_IMAGES` generated images."""
    folder = tmp_path_factory.mktemp("images")
    return folder, sorted(write_images(folder, N_IMAGES))


@pytest.fixture(scope="session")
def model_path():
    import onnxviz as ov

    return str(ov.bundled_model("shapes_cnn"))
