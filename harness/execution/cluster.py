"""RayExecutor: the plan's shards (shards.py) run by a pool of Ray actors, with the numbers of a local run.

Workers are Ray actors that load the model once, from the run's LoadOptions (the name read once by the driver,
with every load flag and backend option; weights never travel through the object store: each worker loads its
own copy from the hub cache, a folder or a shared file system), and run shards idempotently: a shard is a pure
function of its units and the model's weights. Each result carries the worker's weight fingerprint, and the
driver refuses results from other weights than its own. The executor joins the cluster on first use, so a run
whose every result is cached needs none.

One writer. The driver is the only process that writes the SQLite result cache (execution/cached.py, through
the `save` it gives the executor), one transaction per shard as its results arrive. Results are small (a few
floats per request) next to the compute that makes them, and the driver receives them anyway to join them;
workers on other nodes need no shared file system; SQLite is at its best with a single writer; a shard's
results are saved atomically or not at all, so a killed driver loses only shards in flight, and a rerun skips
every shard whose keys are all cached: the executor is given the units the cache lacks, and runs the shards of
the whole plan (plan.whole) that hold any of them, so the layout of shards never depends on the cache.
Per-shard files merged later would need a shared folder and a merge step, and would add a second format to trust.

Faults. Ray replaces a dead worker (max_restarts) and reruns its unfinished shards on the replacement
(max_task_retries; Python errors too, through retry_exceptions). The driver notices a replacement by the
worker's new pid and says so. A shard that fails `retries` times in all stops the run with one line naming the
shard and the cause; every finished shard stays in the cache.

FT: the checkpoints of several tasks train at once, one Ray task each (its own copy of the base model, loaded
from the run's LoadOptions, one GPU or its share of the cores), into the shared .finetune folder; a checkpoint
folder is written atomically and named by everything that decides its weights, so a finished one is reused
exactly as locally.

Determinism: the layout of shards is fixed by the plan; the worker calls the model on the very chunks the
local executor would; results are merged by unit key, so neither the number of workers, nor the order in
which shards finish, nor retries change a number.
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from tqdm.auto import tqdm

from harness.errors import HarnessError, first_line, say
from harness.execution.executor import FinetuneJob, Save, call_model
from harness.execution.plan import Plan
from harness.execution.shards import Shard, make_shards
from harness.lineage import Lineage
from harness.models.base import LanguageModel, Trainable
from harness.models.registry import LoadOptions, load_model
from harness.records import Result

# Switches, never paths, that workers take from the driver. MKL_CBWR=AUTO,STRICT makes MKL's matrix products
# round the same at any thread count: on CPU, that is what makes workers (each with its share of the cores)
# give the bits of a local run (all cores); without it a product can differ in its last bit (README).
FORWARDED_ENV = ("HARNESS_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "MKL_CBWR")
IN_FLIGHT = 2  # shards queued per worker: the next one is ready when a worker finishes


@dataclass(frozen=True)
class ClusterOptions:
    address: str | None = None  # None: start a local one-machine cluster; "auto" or HOST:PORT: join one
    workers: int = 2  # actors; on GPUs each holds one GPU, on CPUs each gets its share of a node's cores
    retries: int = 3  # attempts of a shard in all before the run stops
    shard_chars: int | None = None  # characters per shard; None: shards.SHARD_CHARS
    load: LoadOptions | None = None  # how workers load the model (device included); None: by its name alone

    @property
    def device(self) -> str:
        return self.load.device if self.load else "cpu"


@dataclass(frozen=True)
class ShardRun:
    """What a worker returns for a shard: its results by unit key, and who made them."""

    shard: str
    results: dict[str, Result]
    pid: int
    fingerprint: str
    seconds: float


def connect(address: str | None) -> None:
    """Start a local cluster (address None) or join one, unless this process is already connected."""
    try:
        import ray
    except ImportError:
        raise HarnessError("--executor ray: the ray package is not installed (pip install 'harness[ray]')") from None
    if ray.is_initialized():
        return
    try:
        ray.init(address=address, include_dashboard=False, configure_logging=False)
    except Exception as e:  # noqa: BLE001  a bad address fails in many ways
        raise HarnessError(
            f"--ray-address {address or '(local)'}: cannot start or join a cluster: {first_line(e)}"
        ) from None


class Worker:
    """A Ray actor (wrapped by `ray.remote` in the driver): loads the model once, then runs shards."""

    def __init__(self, load: LoadOptions | str, threads: int, env: dict[str, str]):
        os.environ.update(env)
        if threads:
            import torch

            torch.set_num_threads(threads)
        self.model = load_model(load)

    def pid(self) -> int:
        return os.getpid()

    def run(self, shard: Shard) -> ShardRun:
        started, results = time.perf_counter(), {}
        for chunk in shard.chunks:  # one model call per local chunk: the local run's batches
            results |= call_model(self.model, shard.kind, chunk)
        return ShardRun(shard.name, results, os.getpid(), self.model.fingerprint(), time.perf_counter() - started)


def train_checkpoint(load: LoadOptions | str, threads: int, env: dict[str, str], job: FinetuneJob) -> dict:
    """A Ray task (wrapped by `ray.remote` in the driver): load the base model, make one FT checkpoint."""
    os.environ.update(env)
    if threads:
        import torch

        torch.set_num_threads(threads)
    return job.run(load_model(load))


class RayExecutor:
    """Runs a plan on a Ray cluster, joined (or started) on first use.

    `on_result(run)` is called in the driver after each shard's results are saved (tests use it to kill a
    worker mid-run); `runs` lists every shard run received, in arrival order."""

    def __init__(self, options: ClusterOptions, on_result: Callable[[ShardRun, RayExecutor], None] | None = None):
        if options.workers < 1:
            raise HarnessError(f"--workers: need at least 1, got {options.workers}")
        if options.retries < 1:
            raise HarnessError(f"--shard-retries: need at least 1, got {options.retries}")
        self.options = options
        self.on_result = on_result
        self.runs: list[ShardRun] = []
        self.pids: list[int] = []  # the live worker processes, by worker index

    def execute(self, plan: Plan, model: LanguageModel, save: Save | None = None) -> dict[str, Result]:
        """The shards of the whole plan that hold any of `plan`'s units, run on the workers; `save` per shard."""
        shards = make_shards(plan.whole or plan, self.options.shard_chars, model)
        wanted = {u.key for u in plan.units}
        todo = [s for s in shards if any(u.key in wanted for u in s.units)]
        if len(todo) < len(shards):
            say(f"{len(shards) - len(todo)} of {len(shards)} shards from the cache")
        if not todo:
            return {}
        connect(self.options.address)
        return self._run(todo, model, save)

    def _load(self, model: LanguageModel) -> LoadOptions | str:
        """What workers load for `model`: the run's load options under its name (so the FT model's too), or
        the name alone when the run gave none."""
        load = self.options.load
        if load is None:
            return model.name
        return load if load.name == model.name else replace(load, name=model.name)

    def _run(self, todo: list[Shard], model: LanguageModel, save: Save | None) -> dict[str, Result]:
        import ray

        workers = self._start(self._load(model), min(self.options.workers, len(todo)))
        expected, results = model.fingerprint(), {}
        pending, inflight = deque(todo), {}  # ObjectRef -> (shard, worker index)

        def submit(w: int) -> None:
            shard = pending.popleft()
            inflight[workers[w].run.options(retry_exceptions=True).remote(shard)] = (shard, w)

        try:
            for _ in range(IN_FLIGHT):
                for w in range(len(workers)):
                    if pending:
                        submit(w)
            total = sum(s.chars for s in todo)
            with tqdm(
                total=total,
                desc=f"{len(todo)} shards on {len(workers)} workers",
                unit="char",
                unit_scale=True,
                file=sys.stderr,
            ) as bar:
                while inflight:
                    [ref], _ = ray.wait(list(inflight), num_returns=1)
                    shard, w = inflight.pop(ref)
                    run = self._receive(ref, shard, w, expected)
                    if save:
                        save(shard.units, run.results)
                    results |= run.results
                    self.runs.append(run)
                    bar.update(shard.chars)
                    if self.on_result:
                        self.on_result(run, self)
                    if pending:
                        submit(w)
            return results
        finally:
            for worker in workers:
                ray.kill(worker)

    def finetune(self, jobs: Sequence[FinetuneJob], model: Trainable) -> list[Lineage]:
        """Every job's checkpoint trained at once on the cluster (at most --workers at a time); lineages in job
        order."""
        import ray

        connect(self.options.address)
        resources, threads = worker_resources(self.options, min(len(jobs), self.options.workers), ray.nodes())
        task = ray.remote(train_checkpoint).options(
            max_retries=self.options.retries - 1, retry_exceptions=True, **resources
        )
        env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
        say(f"FT: {len(jobs)} checkpoints on the Ray cluster ({resources} each)")
        refs = [task.remote(self._load(model), threads, env, job) for job in jobs]
        lineages = []
        for job, ref in zip(jobs, refs, strict=True):
            try:
                lineages.append(ray.get(ref))
            except Exception as e:  # noqa: BLE001  Ray retried it: the checkpoint failed `retries` times in all
                for other in refs:
                    ray.cancel(other)
                raise HarnessError(
                    f"FT {job.spec.name}: training failed {self.options.retries} times ({_cause(e)}); "
                    f"finished checkpoints are kept in {job.folder.parent}: rerun to resume"
                ) from None
        return lineages

    def _start(self, load: LoadOptions | str, count: int) -> list:
        """`count` actors loading the model `load` describes; returns once every one has loaded it."""
        import ray

        name = load if isinstance(load, str) else load.name
        resources, threads = worker_resources(self.options, count, ray.nodes())
        actor = ray.remote(Worker).options(max_restarts=-1, max_task_retries=self.options.retries - 1, **resources)
        env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
        workers = [actor.remote(load, threads, env) for _ in range(count)]
        say(f"{count} Ray workers loading {name} ({resources}, {threads or 'default'} threads each)")
        try:
            self.pids = ray.get([w.pid.remote() for w in workers])
        except Exception as e:  # noqa: BLE001  whatever stopped a worker loading: said in one line
            for w in workers:
                ray.kill(w)
            raise HarnessError(f"--executor ray: a worker could not load {name}: {_cause(e)}") from None
        return workers

    def _receive(self, ref, shard: Shard, w: int, expected: str) -> ShardRun:
        import ray

        try:
            run = ray.get(ref)
        except Exception as e:  # noqa: BLE001  Ray already retried it: the shard failed `retries` times in all
            saved = len(self.runs)
            raise HarnessError(
                f"shard {shard.name} failed {self.options.retries} times ({_cause(e)}); "
                f"{saved} finished shards are kept in the cache: rerun to resume"
            ) from None
        if run.pid != self.pids[w]:
            say(f"worker {w} (pid {self.pids[w]}) was lost; Ray replaced it (pid {run.pid}) and reran its shards")
            self.pids[w] = run.pid
        if run.fingerprint != expected:
            raise HarnessError(
                f"shard {shard.name}: worker {w} (pid {run.pid}) loaded other weights than the driver "
                "(every node must see the same model files)"
            )
        return run


def worker_resources(options: ClusterOptions, count: int, nodes: list[dict]) -> tuple[dict, int]:
    """(Ray resources of one worker, torch threads it sets; 0 = leave torch's default).

    GPU: one GPU and one CPU each. CPU: the most threads t (at most an even share of all cores) such that the
    nodes can place `count` workers of t CPUs each; Ray's placement then keeps the threads of a node's workers
    within its cores."""
    alive = [n["Resources"] for n in nodes if n.get("Alive", True)]
    if options.device.startswith("cuda"):
        gpus = sum(int(r.get("GPU", 0)) for r in alive)
        if count > gpus:
            raise HarnessError(f"--workers {count}: the cluster has {gpus} GPUs (one per worker)")
        return {"num_gpus": 1, "num_cpus": 1}, 0
    cores = [int(r.get("CPU", 0)) for r in alive if r.get("CPU", 0) >= 1]
    if count > sum(cores):
        raise HarnessError(f"--workers {count}: the cluster has {sum(cores)} CPUs (at least one per worker)")
    threads = next(t for t in range(max(1, sum(cores) // count), 0, -1) if sum(c // t for c in cores) >= count)
    return {"num_cpus": threads}, threads


def _cause(error: BaseException) -> str:
    """The root cause of a Ray error in one line: the worker's own exception when there is one."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        error = cause
    return f"{type(error).__name__}: {first_line(error)}"
