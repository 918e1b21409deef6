"""Where a grid's cells run: a registry of executors, each mapping one cell function over cells.

``local`` runs the cells in this process (one job) or in a pool of spawned processes (``--jobs``);
``ray`` makes every cell a Ray task, on a Ray started here or on a running cluster it joins
(``--ray-address``). An executor knows nothing of grids: it is handed a picklable function of one
cell and yields the results as cells finish, so what a cell does (re-use a finished run, resume
an interrupted one, write into the run store) is the same whichever backend runs it; the run
store must then be a folder every node sees at the same path.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, Protocol

from bertnli_helpers.errors import BertNLIError, GridError, UsageError

CELL_RETRIES = 3  # tries after a Ray worker or node is lost mid-cell (the cell then resumes)
CELL_CPUS_ON_A_CLUSTER = 4  # a small BERT's matrix products use a few cores well
FORWARDED_ENV_PREFIX = "BERTNLI_"  # the driver's settings (data, cache, precision) go with cells


@dataclass(frozen=True)
class BackendOptions:
    """What the command line asked of the executor; each backend says which it reads."""

    jobs: int | None = None  # cells at once (None: the backend's default)
    device: str | None = None  # the cells' device, to ask the cluster for a GPU or CPUs
    ray_address: str | None = None  # Ray: the cluster to join (None: start one here)
    cpus_per_cell: int | None = None  # Ray: CPUs each CPU cell asks for


class Executor(Protocol):
    def map(self, task: Callable[[Any], Any], items: list[Any]) -> Iterator[Any]:
        """``task(item)`` for every item, yielded as each finishes (in any order)."""

    def where(self) -> str:
        """One line saying where the cells run (printed once)."""

    def device(self) -> Any:
        """The ``torch.device`` kind the cells compute on (to say their precision once)."""


@dataclass(frozen=True)
class Backend:
    """One way to run cells: a context manager that checks the options and yields an
    executor (so a bad option or a missing package stops the grid before it writes)."""

    open: Callable[[BackendOptions, int], contextlib.AbstractContextManager[Executor]]
    summary: str
    options: tuple[str, ...] = field(default=("jobs", "device"))


def _threads_per_job(jobs: int) -> int:
    return max(1, (os.cpu_count() or 1) // jobs)


def default_jobs(cells: int) -> int:
    """Processes worth running at once: one per GPU, else one per 4 cores (a small BERT's
    matrix products use a few cores well; on 2 cores one process is fastest)."""
    import torch

    if torch.cuda.is_available():
        return max(1, min(cells, torch.cuda.device_count()))
    return max(1, min(cells, (os.cpu_count() or 1) // 4))


def _call_with_threads(task: Callable[[Any], Any], item: Any, threads: int) -> Any:
    """Run one cell in a worker with the threads its share of the cores allows."""
    import torch

    torch.set_num_threads(threads)
    return task(item)


# -- local -----------------------------------------------------------------------------------
@dataclass
class LocalExecutor:
    jobs: int
    device_asked: str | None = None

    def device(self) -> Any:
        from bertnli_helpers.devices import resolve_device

        return resolve_device(self.device_asked)

    def where(self) -> str:
        return (f"cells run here, {self.jobs} at once" if self.jobs > 1 else
                "cells run here, one at a time")

    def map(self, task: Callable[[Any], Any], items: list[Any]) -> Iterator[Any]:
        if self.jobs == 1:
            for item in items:
                yield task(item)
            return
        import multiprocessing

        threads = _threads_per_job(self.jobs)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(self.jobs, mp_context=context) as pool:
            futures = [pool.submit(_call_with_threads, task, item, threads) for item in items]
            for future in as_completed(futures):
                yield future.result()


@contextlib.contextmanager
def open_local(options: BackendOptions, cells: int) -> Iterator[LocalExecutor]:
    executor = LocalExecutor(options.jobs or default_jobs(cells), options.device)
    executor.device()  # an unavailable device: refused before the grid writes anything
    yield executor


# -- ray -------------------------------------------------------------------------------------
def import_ray() -> Any:
    """The ``ray`` module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UsageError("--backend ray needs Ray, which is not installed in this environment: "
                         "pip install 'bertnli[ray]' (or pip install ray), on every node of "
                         "the cluster") from None
    return ray


@dataclass
class RayExecutor:
    """Cells as Ray tasks with ``resources`` each, at most ``in_flight`` submitted at once."""

    ray: Any
    resources: dict[str, Any]
    threads: int
    in_flight: int
    cluster: str

    def where(self) -> str:
        gpus = self.resources.get("num_gpus", 0)
        each = f"{gpus} GPU" if gpus else f"{self.resources['num_cpus']} CPU(s)"
        return f"cells run as Ray tasks on {self.cluster}, each with {each}"

    def device(self) -> Any:
        import torch

        return torch.device("cuda" if self.resources.get("num_gpus") else "cpu")

    def remote(self) -> Any:
        env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIX)}
        return self.ray.remote(_call_with_threads).options(
            max_retries=CELL_RETRIES, retry_exceptions=False, runtime_env={"env_vars": env},
            **self.resources)

    def map(self, task: Callable[[Any], Any], items: list[Any]) -> Iterator[Any]:
        remote, waiting, pending = self.remote(), list(reversed(items)), []
        while waiting or pending:
            while waiting and len(pending) < self.in_flight:
                pending.append(remote.remote(task, waiting.pop(), self.threads))
            done, pending = self.ray.wait(pending, num_returns=1)
            for ref in done:
                yield self._result(ref)

    def _result(self, ref: Any) -> Any:
        """The cell's result; bad input (our errors, the user's files) raised as itself, for
        its one-line message; a bug keeps Ray's error, which carries the cell's traceback; a
        cell lost with its node more often than Ray retries it, a GridError."""
        exceptions = self.ray.exceptions
        try:
            return self.ray.get(ref)
        except exceptions.RayTaskError as err:
            if isinstance(err.cause, (BertNLIError, OSError)):
                raise err.cause from None
            raise
        except exceptions.RayError as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise GridError(f"a run was lost on the Ray cluster {1 + CELL_RETRIES} times "
                            f"({first}); finished runs are kept: run the same command again "
                            "to go on") from None


def _alive_nodes(ray: Any) -> list[dict[str, Any]]:
    return [node for node in ray.nodes() if node.get("Alive")]


def check_ray_device(device: str | None) -> str:
    """The kind of device Ray cells run on: ``auto``, ``cpu`` or ``cuda`` (a GPU index cannot
    be asked for, since each cell sees only the GPU Ray gave it)."""
    if device not in (None, "auto", "cpu", "cuda"):
        raise UsageError(f"--device {device}: with --backend ray each cell gets one GPU of its "
                         "own and sees it as cuda; pass --device cuda, cpu or auto")
    return device or "auto"


def cell_resources(device: str | None, nodes: list[dict[str, Any]], cpus: int
                   ) -> dict[str, Any]:
    """One GPU per cell when the cells run on GPUs (asked for, or ``auto`` on a cluster that
    has them), else ``cpus`` CPUs; refused when no node could ever run such a cell."""
    has_gpu = any(node["Resources"].get("GPU", 0) >= 1 for node in nodes)
    kind = check_ray_device(device)
    if kind == "cuda" or (kind == "auto" and has_gpu):
        if not has_gpu:
            raise UsageError("--device cuda: no node of the Ray cluster has a GPU; pass "
                             "--device cpu, or join a cluster with GPUs (--ray-address)")
        return {"num_gpus": 1, "num_cpus": 1}
    most = max((node["Resources"].get("CPU", 0) for node in nodes), default=0)
    if most < cpus:
        raise UsageError(f"--cpus-per-cell {cpus}: the largest node of the Ray cluster has "
                         f"{most:g} CPU(s); ask for at most that many")
    return {"num_cpus": cpus}


def _check_reachable(address: str, seconds: float = 10.0) -> None:
    """A ``HOST:PORT`` that takes no connection is refused at once, in one line."""
    host, sep, port = address.rpartition(":")
    if "://" in address or not sep or not port.isdigit():
        return  # "auto", or a ray:// client address: Ray checks those itself
    try:
        socket.create_connection((host, int(port)), timeout=seconds).close()
    except OSError as err:
        raise UsageError(f"--ray-address {address}: no Ray head node answers there "
                         f"({err.strerror or err}); start one with 'ray start --head' and pass "
                         "the address it prints") from None


def _join(ray: Any, options: BackendOptions, cells: int) -> tuple[int, int, str]:
    """Start a Ray here or join ``options.ray_address``: ``(cpus per cell, cells at once,
    name)``."""
    quiet = {"logging_level": logging.WARNING, "include_dashboard": False,
             "log_to_driver": True}
    if options.ray_address is None:
        jobs = options.jobs or default_jobs(cells)
        cpus = options.cpus_per_cell or _threads_per_job(jobs)
        ray.init(address="local", num_cpus=jobs * cpus, **quiet)
        return cpus, jobs, f"a Ray started here ({jobs * cpus} CPUs)"
    _check_reachable(options.ray_address)  # Ray itself would wait for it forever
    try:
        ray.init(address=options.ray_address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(f"--ray-address {options.ray_address}: cannot join a Ray cluster there "
                         f"({first}); start one with 'ray start --head' and pass the address "
                         "it prints") from None
    most = max((n["Resources"].get("CPU", 0) for n in _alive_nodes(ray)), default=1)
    cpus = options.cpus_per_cell or max(1, min(CELL_CPUS_ON_A_CLUSTER, int(most)))
    return cpus, options.jobs or cells, f"the Ray cluster at {options.ray_address}"


@contextlib.contextmanager
def open_ray(options: BackendOptions, cells: int) -> Iterator[RayExecutor]:
    ray = import_ray()
    check_ray_device(options.device)  # before a Ray is started or joined
    cpus, jobs, cluster = _join(ray, options, cells)
    try:
        nodes = _alive_nodes(ray)
        resources = cell_resources(options.device, nodes, cpus)
        cluster += f", {len(nodes)} node{'s' if len(nodes) != 1 else ''}"
        yield RayExecutor(ray, resources, resources["num_cpus"], jobs, cluster)
    finally:
        ray.shutdown()


BACKENDS: dict[str, Backend] = {
    "local": Backend(open_local, "this machine: one process, or --jobs spawned processes"),
    "ray": Backend(open_ray, "a Ray started here, or the cluster at --ray-address",
                   ("jobs", "device", "ray_address", "cpus_per_cell")),
}


def open_backend(name: str, options: BackendOptions, cells: int
                 ) -> contextlib.AbstractContextManager[Executor]:
    """The named backend's executor for ``cells`` cells, after checking every option."""
    if name not in BACKENDS:
        raise UsageError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
    backend = BACKENDS[name]
    for option, value in vars(options).items():
        if value is not None and option not in backend.options:
            users = [n for n, b in BACKENDS.items() if option in b.options]
            raise UsageError(f"--{option.replace('_', '-')} is only for --backend "
                             f"{' or '.join(users)}, not {name}")
    return backend.open(options, cells)
