"""The scan on a Ray cluster (`harness overlap --executor ray`): corpus shards as Ray tasks, each running
scan.scan_shard against the task index (put in the object store once), at most --workers in flight; the shard
results merged by scan.merge, exactly as the local pool's are. Hits do not depend on the shard plan or on the order
shards finish (scan.py), so overlap.csv is the same bytes as a local run's.

The cluster: started on this machine when --ray-address is not given (and stopped again at the end), else joined
(auto or HOST:PORT); a process already connected (a test's cluster) is used as it is. Every node must read the
corpus at the same absolute paths (a shared file system). ray is imported inside the function that needs it.
"""

from __future__ import annotations

import resource
from dataclasses import replace

from harness.contamination.corpus import CorpusFile, Shard, shards
from harness.contamination.index import TaskIndex
from harness.contamination.scan import ScanResult, ScanSettings, ShardResult, merge, scan_shard, shard_size
from harness.errors import HarnessError, first_line


def _scan_task(index: TaskIndex, shard: Shard, chunk_bytes: int) -> ShardResult:
    """A Ray task (wrapped by ray.remote in the driver): one shard against the index."""
    return scan_shard(index, shard, chunk_bytes)


def _connect(address: str | None) -> bool:
    """Connect this process (True when this call started a local cluster, which the caller stops)."""
    try:
        import ray
    except ImportError:
        raise HarnessError("--executor ray: the ray package is not installed (pip install 'harness[ray]')") from None
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, include_dashboard=False, configure_logging=False)
    except Exception as e:  # noqa: BLE001  a bad address fails in many ways
        raise HarnessError(f"--ray-address {address or '(local)'}: cannot start or join a cluster: "
                           f"{first_line(e)}") from None
    return address is None


def scan_on_ray(index: TaskIndex, files: tuple[CorpusFile, ...], settings: ScanSettings,
                address: str | None = None) -> ScanResult:
    """scan.scan's result, the shards run as Ray tasks."""
    started = _connect(address)
    import ray

    try:
        absolute = tuple(replace(f, path=f.path.resolve()) for f in files)  # workers may run in another folder
        plan = shards(absolute, shard_size(files, settings))
        index_ref = ray.put(index)
        task = ray.remote(_scan_task).options(num_cpus=1, max_retries=2)
        results: list[ShardResult | None] = [None] * len(plan)
        pending: dict = {}  # ObjectRef -> shard number
        submitted = 0
        while submitted < len(plan) or pending:
            while submitted < len(plan) and len(pending) < settings.workers:
                pending[task.remote(index_ref, plan[submitted], settings.chunk_bytes)] = submitted
                submitted += 1
            [done], _ = ray.wait(list(pending), num_returns=1)
            number = pending.pop(done)
            try:
                results[number] = ray.get(done)
            except Exception as e:  # noqa: BLE001  a task's own error arrives wrapped
                shard = plan[number]
                raise HarnessError(f"--executor ray: the shard {shard.file.path} bytes {shard.start}-{shard.end} "
                                   f"failed on the cluster: {first_line(e)}") from None
    finally:
        if started:
            ray.shutdown()
    hits, words, size = merge(r for r in results if r is not None)
    return ScanResult(hits, words, size, len(plan), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, 0)
