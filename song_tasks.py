"""Per-song work on this machine's processes, or as tasks on an existing Dask cluster (issue 17).

    failed = run_song_jobs(jobs, cache_song, workers=4, desc="frames")                   # local processes
    failed = run_song_jobs(jobs, cache_song, workers=4, desc="frames",
                           scheduler="tcp://login1:8786")                                # a Dask cluster

A job is a tuple (song_id, source path, ...); work(job) -> (song_id, error or None) writes the song's
result into its own cache file (atomically, keyed on the audio's content), so a re-run skips finished
songs: that is the whole recovery story, here and on a cluster. load(*load_args) loads a model once per
process that works (once per Dask worker process, not per task). work and load must be top-level
functions of an importable module: they are pickled to the processes that run them.

Local (scheduler=None): a forkserver process pool (workers == 1: this process), as build_features.py
always did. Dask (scheduler = an address such as tcp://host:8786, or a scheduler file written by
`dask scheduler --scheduler-file`): every song is one task on the cluster's workers, which must see
the data directory at the same path (a shared filesystem) and import this repository (same checkout,
same requirements). A worker that dies loses the songs it was running (KilledWorker); they come back as
failures and a re-run finishes them. Dask schedules; nothing here does.
"""
import multiprocessing
import os
import signal
import socket
import sys
import threading
from concurrent.futures import CancelledError, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from tqdm import tqdm

import common
from common import PipelineError

# ----------------------------------------------------------------------------
# Dask
DASK_CONNECT_TIMEOUT_S = 10  # seconds to reach the scheduler before a run gives up with one line
# the scheduler's distributed.scheduler.allowed-failures we ask for (README): a song whose worker died
# is not tried on another worker (it may be what killed it, and would kill that one too); a re-run does it
DASK_ALLOWED_FAILURES = 0
DASK_LOST_SHOWN = 10  # song ids named in the closing message about songs lost with dead workers


def run_song_jobs(jobs, work, *, workers, desc, load=None, load_args=(), scheduler=None, numba=True, preload=()):
    """work(job) for every job; {song_id: (source, error)} of the songs that failed (the caller logs them).

    workers: local processes (1: this one); ignored with a scheduler, whose cluster decides.
    desc: the progress bar's label. load(*load_args): once per working process (a model).
    scheduler: None (local processes) or a Dask scheduler address / scheduler file.
    numba: the work calls librosa's numba functions, so common.warm_numba() runs here first (and once
    in every Dask worker process) so that no two processes compile the same gufunc at once.
    preload: modules the work imports as it runs (librosa). Local workers fork from one forkserver,
    which imports these, and the modules of work and load, once, so that no worker imports them again.
    """
    jobs = list(jobs)
    if numba:
        common.warm_numba()  # librosa's numba cache filled and checked (a bad one mended) here, never by racing workers
    if scheduler is None:
        return _run_local(jobs, work, workers, desc, load, load_args, preload)
    if not jobs:
        return {}
    return _run_dask(jobs, work, desc, load, load_args, scheduler, numba)


# ----------------------------------------------------------------------------
# local: processes of this machine
def _init_worker(owner_pid, load=None, *load_args):
    common.die_with_parent(owner_pid)  # a SIGKILLed build_features.py leaves no workers behind
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is handled once, by the main process
    _limit_threads()
    if load is not None:
        load(*load_args)


def _limit_threads():
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(limits=1)  # one song per core; BLAS threads would only fight
    except ImportError:
        pass


def _run_local(jobs, work, workers, desc, load, load_args, preload=()):
    failed = {}
    bar = tqdm(total=len(jobs), desc=desc, unit="song")
    if workers == 1:
        if load is not None:
            load(*load_args)
        for job in jobs:
            sid, err = work(job)
            if err:
                failed[sid] = (job[1], err)
            bar.update()
    else:
        ctx = multiprocessing.get_context("forkserver")
        # by name (Python 3.11's forkserver never preloads __main__); a forkserver already running keeps its list
        named = [m for m in (getattr(f, "__module__", None) for f in (work, load)) if m not in (None, "__main__")]
        ctx.set_forkserver_preload(list(dict.fromkeys(named + list(preload))))
        try:
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                     initargs=(os.getpid(), load, *load_args)) as ex:
                futures = {ex.submit(work, job): job for job in jobs}
                for fut in as_completed(futures):
                    sid, err = fut.result()
                    if err:
                        failed[sid] = (futures[fut][1], err)
                    bar.update()
        except BrokenProcessPool:  # a worker killed (out of memory) or one whose model would not load
            bar.close()
            raise PipelineError(f"a worker of '{desc}' died before its songs were done (killed for memory, or "
                                f"a model that does not load); the songs it finished are cached: re-run with "
                                f"--workers 1 to see its error, or with fewer workers") from None
    bar.close()
    return failed


# ----------------------------------------------------------------------------
# Dask: tasks on an existing cluster
_READY = {}  # what this Dask worker process has set up: (load, load_args, numba) -> None, or why it failed
_READY_LOCK = threading.Lock()  # a worker with several threads sets up once, not once per thread


def _setup_worker(load, load_args, numba):
    """Once per worker process: one BLAS thread per task, numba warm, the model loaded. None, or the error."""
    key = (getattr(load, "__module__", None), getattr(load, "__qualname__", None), repr(tuple(load_args)), numba)
    with _READY_LOCK:
        if key not in _READY:
            try:
                _limit_threads()
                if numba:  # takes numba's cache lock while it compiles: workers sharing the cache wait in turn
                    common.warm_numba()
                if load is not None:
                    load(*load_args)
                _READY[key] = None
            except PipelineError as e:
                _READY[key] = str(e)
            except Exception as e:
                _READY[key] = f"{type(e).__name__}: {e}"
        return _READY[key]


def _song_task(work, job, load, load_args, numba):
    """One song on a Dask worker -> (song_id, error or None, setup error or None)."""
    problem = _setup_worker(load, load_args, numba)
    if problem is not None:
        return job[0], None, problem
    if not os.path.exists(job[1]):
        return job[0], (f"{job[1]} not found on Dask worker {socket.gethostname()}: the data directory must be "
                        f"on a filesystem every worker sees, at the same path"), None
    sid, err = work(job)
    return sid, err, None


def _scheduler_allowed_failures(dask_scheduler=None):
    return dask_scheduler.allowed_failures


def _scheduler_address(scheduler):
    """tcp://host:port of `scheduler`: an address, or a scheduler file (JSON with "address")."""
    import json
    from distributed.comm.addressing import get_address_host_port, normalize_address
    target = str(scheduler)
    if target.endswith(".json") or Path(target).is_file():
        try:
            target = json.loads(Path(target).read_text())["address"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise PipelineError(f"--scheduler {scheduler}: not a readable Dask scheduler file ({type(e).__name__}: "
                                f"{e}); pass the file `dask scheduler --scheduler-file` wrote, or an address "
                                f"such as tcp://host:8786") from None
    try:
        address = normalize_address(target)
        get_address_host_port(address)  # a host and a port, or ValueError
        return address
    except (ValueError, TypeError) as e:
        raise PipelineError(f"--scheduler {scheduler}: not a Dask scheduler address ({e}); pass one such as "
                            f"tcp://host:8786") from None


def _connect(scheduler):
    """A distributed.Client of the cluster at `scheduler`, or one line saying none answered.

    The address is tried with a bare connection first: a Client whose constructor fails leaves a
    half-made object that complains (and waits) at exit."""
    import asyncio
    from distributed import Client
    from distributed.comm import connect
    address = _scheduler_address(scheduler)

    async def probe():
        comm = await connect(address, timeout=DASK_CONNECT_TIMEOUT_S)
        await comm.close()

    try:
        asyncio.run(probe())
    except (OSError, TimeoutError, ValueError) as e:
        why = " ".join(str(e).split()) or type(e).__name__
        raise PipelineError(f"--scheduler: no Dask scheduler answered at {address} ({why}); start one "
                            f"(`dask scheduler` on one machine, `dask worker {address}` on each) and pass its "
                            f"address, or leave --scheduler out to use this machine's processes") from None
    return Client(address, timeout=DASK_CONNECT_TIMEOUT_S, set_as_default=False)


def _note_retries(client):
    """Say so when the scheduler would retry a song whose worker died more often than we ask."""
    try:
        retries = client.run_on_scheduler(_scheduler_allowed_failures)
    except Exception:  # a scheduler that blocks run_on_scheduler: its setting stays unknown
        return
    if retries > DASK_ALLOWED_FAILURES:
        print(f"note: this Dask scheduler tries a song whose worker died on {retries} more workers "
              f"(distributed.scheduler.allowed-failures); start it with "
              f"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES={DASK_ALLOWED_FAILURES} so that a song which kills "
              f"its worker (out of memory) costs one worker, not {retries + 1}", file=sys.stderr)


def _run_dask(jobs, work, desc, load, load_args, scheduler, numba):
    from distributed import as_completed as dask_completed
    from distributed.scheduler import KilledWorker
    for job in jobs:
        if not Path(job[1]).is_absolute():  # a worker's working folder is not ours
            raise PipelineError(f"--scheduler needs absolute paths: {job[1]} is relative; pass --data-dir as an "
                                f"absolute path on a filesystem every worker sees")
    client = _connect(scheduler)
    failed, lost, futures, bar = {}, [], {}, None
    try:
        _note_retries(client)
        bar = tqdm(total=len(jobs), desc=f"{desc} on {client.scheduler.address}", unit="song")
        for job in jobs:
            futures[client.submit(_song_task, work, job, load, load_args, numba, pure=False)] = job
        for fut in dask_completed(futures, loop=client.loop):
            sid, src = futures[fut][0], futures[fut][1]
            try:
                # result(), not the status: a song that finished on a worker that then died before we read
                # it is "lost", and the scheduler runs it again (its file is cached) while result() waits
                sid, err, problem = fut.result()
            except KilledWorker as e:
                lost.append(sid)
                where = getattr(getattr(e, "last_worker", None), "address", "")
                failed[sid] = (src, f"the Dask worker {where} that held it died (killed for memory, or a "
                                    f"crash); a re-run finishes it")
            except CancelledError:  # the scheduler went away
                lost.append(sid)
                failed[sid] = (src, f"the Dask scheduler at {scheduler} went away before it was done; re-run")
            except Exception as e:  # work raised instead of returning its error
                failed[sid] = (src, f"{type(e).__name__}: {e}")
            else:
                if problem is not None:  # a model that does not load there: every song would fail the same way
                    raise PipelineError(f"'{desc}' cannot start on a Dask worker of {scheduler}: {problem}")
                if err:
                    failed[sid] = (src, err)
            bar.update()
    finally:
        if bar is not None:
            bar.close()
        try:
            client.cancel(list(futures))  # on an error or Ctrl-C: the cluster stops our queued songs
        finally:
            client.close()
    if lost:
        shown = ", ".join(map(str, lost[:DASK_LOST_SHOWN])) + (" ..." if len(lost) > DASK_LOST_SHOWN else "")
        print(f"{len(lost)} of {len(jobs)} songs of '{desc}' were lost with Dask workers that died ({shown}); "
              f"every song that finished is cached: re-run the same command to finish them", file=sys.stderr)
    return failed
