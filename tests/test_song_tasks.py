"""song_tasks.py: per-song jobs on local processes or as tasks on a Dask cluster give the same files;
a Dask worker that dies loses only its songs, which a re-run finishes (issue 17).

The Dask cluster is a LocalCluster on 127.0.0.1 (2 worker processes, 1 thread each), started once for
the module. The work functions below are top-level so the workers can import them (they are pickled)."""
import logging
import os
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import common
import song_tasks
from common import PipelineError
from conftest import synth_song

SONGS = [f"song{i}" for i in range(6)]
BAD = "song_bad"  # a .wav that is not audio: its error must come back the same way on both paths
_LOADED = []  # the marks folders this process's tiny_load was given: a stand-in for a loaded model


# ----------------------------------------------------------------------------
# work and load, as build_features.cache_song / load_whisper are shaped
def tiny_load(marks):
    """The 'model': once per process, it leaves a file named after the process that loaded it."""
    _LOADED.append(marks)
    (Path(marks) / f"load-{os.getpid()}-{uuid.uuid4().hex}").touch()


def tiny_work(job):
    """(song_id, wav, out_dir, marks, ...) -> out_dir/<song_id>.npy: 512-sample RMS frames of the wav."""
    sid, wav, out_dir, marks = job[:4]
    path = Path(out_dir) / f"{sid}.npy"
    if path.exists():  # cached: a re-run skips it
        return sid, None
    if marks not in _LOADED:
        return sid, "the model was not loaded in this process"
    try:
        y, _ = sf.read(wav, dtype="float32")
        n = len(y) // 512
        common.save_npy(path, np.sqrt((y[: n * 512].reshape(n, 512) ** 2).mean(axis=1)))
        (Path(marks) / f"work-{os.getpid()}-{sid}").touch()
        return sid, None
    except Exception as e:
        return sid, f"{type(e).__name__}: {e}"


def work_or_die(job):
    """tiny_work, except that the song named in job[4] kills its own worker process."""
    if job[0] == job[4]:
        os._exit(3)
    return tiny_work(job)


def load_fails(marks):
    raise RuntimeError("model.bin is damaged")


# ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scheduler():
    import dask
    from distributed import LocalCluster
    with dask.config.set({"distributed.scheduler.allowed-failures": song_tasks.DASK_ALLOWED_FAILURES}):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None, silence_logs=logging.CRITICAL)
    yield cluster.scheduler_address
    cluster.close()


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    folder = tmp_path_factory.mktemp("audio")
    for i, s in enumerate(SONGS):
        sf.write(folder / f"{s}.wav", synth_song(1.0, seed=i), common.SAMPLE_RATE)
    (folder / f"{BAD}.wav").write_text("not audio")
    return folder


def jobs_in(audio, root, *extra):
    out, marks = root / "out", root / "marks"
    out.mkdir(parents=True, exist_ok=True)
    marks.mkdir(parents=True, exist_ok=True)
    return [(s, str(audio / f"{s}.wav"), str(out), str(marks), *extra) for s in SONGS + [BAD]]


def files(root):
    return {p.name: np.load(p) for p in sorted((root / "out").glob("*.npy"))}


def same_files(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def local_run(audio, tmp_path_factory):
    """The reference: today's local path, in this process."""
    root = tmp_path_factory.mktemp("local")
    jobs = jobs_in(audio, root)
    failed = song_tasks.run_song_jobs(jobs, tiny_work, workers=1, desc="local", load=tiny_load,
                                      load_args=(jobs[0][3],), numba=False)
    return files(root), failed


# ----------------------------------------------------------------------------
def test_dask_gives_the_local_files_and_loads_once_per_worker(scheduler, audio, local_run, tmp_path):
    want, want_failed = local_run
    assert len(want) == len(SONGS) and set(want_failed) == {BAD}
    jobs = jobs_in(audio, tmp_path)
    failed = song_tasks.run_song_jobs(jobs, tiny_work, workers=1, desc="dask", load=tiny_load,
                                      load_args=(jobs[0][3],), scheduler=scheduler, numba=False)
    assert failed == want_failed  # the unreadable song's error, word for word
    assert same_files(files(tmp_path), want)
    loads = [p.name.split("-")[1] for p in (tmp_path / "marks").glob("load-*")]
    workers = {p.name.split("-")[1] for p in (tmp_path / "marks").glob("work-*")}
    assert sorted(loads) == sorted(workers) and len(loads) == len(set(loads)) >= 1  # once per worker process
    assert str(os.getpid()) not in workers  # the songs ran on the cluster, not here


def test_a_dead_worker_loses_only_its_songs_and_a_rerun_finishes_them(scheduler, audio, local_run, tmp_path,
                                                                      capsys):
    want, want_failed = local_run
    doomed = SONGS[2]
    jobs = jobs_in(audio, tmp_path, doomed)
    failed = song_tasks.run_song_jobs(jobs, work_or_die, workers=1, desc="dask", load=tiny_load,
                                      load_args=(jobs[0][3],), scheduler=scheduler, numba=False)
    assert doomed in failed and "Dask worker tcp://127.0.0.1:" in failed[doomed][1]
    assert failed[doomed][0] == jobs[2][1]  # the source, for data/failures.csv
    lost = {s for s in failed if s != BAD}
    assert all("that held it died" in failed[s][1] for s in lost), {s: failed[s][1] for s in lost}
    done = files(tmp_path)
    # the others finished; a lost song may have been written just before its worker died unreported
    # (the re-run then finds it cached), the doomed one never is
    assert {f"{s}.npy" for s in SONGS if s not in lost} <= set(done) and len(done) >= 3
    assert f"{doomed}.npy" not in done
    assert all(np.array_equal(done[k], want[k]) for k in done)
    assert "re-run the same command" in capsys.readouterr().err

    again = song_tasks.run_song_jobs(jobs, tiny_work, workers=1, desc="dask", load=tiny_load,
                                     load_args=(jobs[0][3],), scheduler=scheduler, numba=False)
    assert again == want_failed
    assert same_files(files(tmp_path), want)


def test_a_song_whose_result_died_with_its_worker_is_not_a_failure(scheduler, audio, local_run, tmp_path,
                                                                   monkeypatch):
    """A song that finished on a worker which died before we read it is 'lost' to Dask, which runs it
    again (its file is cached): it must come back as done, not as a failure."""
    import threading
    import distributed
    want, want_failed = local_run
    lost_data = threading.Event()
    handle_lost_data = distributed.Client._handle_lost_data

    def note_lost_data(self, *args, **kwargs):  # the scheduler told the client a result left with its worker
        handle_lost_data(self, *args, **kwargs)
        lost_data.set()

    monkeypatch.setattr(distributed.Client, "_handle_lost_data", note_lost_data)
    as_completed = distributed.as_completed

    def kill_first_holder(futures, **kwargs):
        next(iter(futures)).client.gather(list(futures), errors="skip")  # all done: the kill loses results only
        for i, fut in enumerate(as_completed(futures, **kwargs)):
            if i == 0 and fut.status == "finished":
                holder = next(iter(fut.client.who_has(fut).values()))[0]
                try:
                    fut.client.run(os._exit, 3, workers=[holder])
                except Exception:  # the worker's connection closes as it dies
                    pass
                assert lost_data.wait(60) and fut.status in ("lost", "finished")
            yield fut

    monkeypatch.setattr(distributed, "as_completed", kill_first_holder)
    jobs = jobs_in(audio, tmp_path)
    failed = song_tasks.run_song_jobs(jobs, tiny_work, workers=1, desc="dask", load=tiny_load,
                                      load_args=(jobs[0][3],), scheduler=scheduler, numba=False)
    assert lost_data.is_set()
    assert failed == want_failed
    assert same_files(files(tmp_path), want)


def test_a_model_that_does_not_load_on_a_worker_is_one_line(scheduler, audio, tmp_path):
    jobs = jobs_in(audio, tmp_path)
    with pytest.raises(PipelineError, match="cannot start on a Dask worker .*model.bin is damaged"):
        song_tasks.run_song_jobs(jobs, tiny_work, workers=1, desc="dask", load=load_fails,
                                 load_args=(jobs[0][3],), scheduler=scheduler, numba=False)
    assert not list((tmp_path / "out").glob("*.npy"))


def test_an_unreachable_scheduler_is_one_line_quickly(monkeypatch, audio, tmp_path):
    monkeypatch.setattr(song_tasks, "DASK_CONNECT_TIMEOUT_S", 1)
    jobs = jobs_in(audio, tmp_path)
    t = time.monotonic()
    with pytest.raises(PipelineError, match=r"no Dask scheduler answered at tcp://127.0.0.1:1 .*dask scheduler"):
        song_tasks.run_song_jobs(jobs, tiny_work, workers=1, desc="x", scheduler="127.0.0.1:1", numba=False)
    assert time.monotonic() - t < 5
    with pytest.raises(PipelineError, match="not a Dask scheduler address"):
        song_tasks.run_song_jobs(jobs, tiny_work, workers=1, desc="x", scheduler="nonsense::", numba=False)
    relative = [(s, f"data/audio/{s}.wav", "out", "marks") for s in SONGS]
    with pytest.raises(PipelineError, match="absolute path"):
        song_tasks.run_song_jobs(relative, tiny_work, workers=1, desc="x", scheduler="127.0.0.1:1", numba=False)


def test_numba_is_warm_before_any_local_pool_starts(monkeypatch):
    """numba issue 10128: the parent compiles librosa's gufuncs before any worker can race on them."""
    order = []
    monkeypatch.setattr(common, "warm_numba", lambda *a, **k: order.append("warm"))

    class FakePool:
        def __init__(self, *a, initializer=None, **k):
            order.append("pool")
            assert initializer is song_tasks._init_worker  # test_build_dataset: its workers die with us

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def submit(self, fn, job):
            raise RuntimeError("stop here")

    monkeypatch.setattr(song_tasks, "ProcessPoolExecutor", FakePool)
    with pytest.raises(RuntimeError, match="stop here"):
        song_tasks.run_song_jobs([("a", "a.wav"), ("b", "b.wav")], tiny_work, workers=2, desc="t")
    assert order == ["warm", "pool"]


def test_build_features_on_dask_writes_the_local_files(scheduler, tmp_path):
    """build_features.py --sets language --scheduler: the same sets as this machine's process (issue 17)."""
    import build_features as bf
    from test_language import tiny_data_dir
    local, remote = (tiny_data_dir(tmp_path / d, seconds=(31.0, 35.0)) for d in ("local", "dask"))
    bf.build(local, ["language"], workers=2)  # two processes of one CTranslate2 thread, as each Dask worker
    bf.build(remote, ["language"], workers=2, scheduler=scheduler)
    for name in ("whisper_lang", "whisper_mean"):
        a, b = (np.load(common.features_dir(d) / f"{name}.npy") for d in (local, remote))
        assert a.shape[0] == 2 and np.array_equal(a, b)
