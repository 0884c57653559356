"""Shared helpers for every stage: paths, seeding, device, atomic file writes, failures log.

Stages hand data to each other only through files; this module is the one place that
knows where those files live and how they are written safely.
"""
import argparse
import contextlib
import csv
import os
import random
import sys
from pathlib import Path

import numpy as np

# ----------------------------------------------------------------------------
# the file contract (README.md, "Files between stages")
N_MFCC = 40  # MFCC coefficients per frame
N_FRAMES = 430  # frames per 30-second segment
SEGMENT_SECONDS = 30.0  # length of one segment
SAMPLE_RATE = 22050  # Hz, mono, for every WAV in data/audio
SEGMENT_COLUMNS = ["segment_id", "song_id", "language", "title", "artist", "start_s"]
SONG_COLUMNS = ["song_id", "language", "title", "artist", "source", "duration_s"]
FAILURE_COLUMNS = ["stage", "song_id", "source", "error"]
LOSS_COLUMNS = ["epoch", "loss", "recon", "kl"]
# pretrained: none / self-supervised / language-labels (what outside training a method rests on);
# n_scored: the labelled segments nmi, ari, purity and acc were computed on (empty cells when 0)
METRIC_COLUMNS = ["method", "features", "uses_labels", "pretrained", "silhouette", "nmi", "ari",
                  "purity", "acc", "n_segments", "n_scored", "seed"]
MODEL_NAMES = ["vae", "cvae", "beta_vae", "autoencoder"]


class PipelineError(Exception):
    """A problem the user can fix; scripts print it without a traceback and exit 1."""


def run_main(main):
    """Call main(); turn a PipelineError into one readable line and exit status 1."""
    try:
        main()
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except OSError as e:  # a full disk, a folder we may not write, a file where a folder should be
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        print(f"error: {e.strerror or e}{where}; check that path (a folder? writable? disk full?) "
              "and re-run the same command", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("\ninterrupted: finished work is kept; re-run the same command to resume.",
              file=sys.stderr)
        sys.exit(130)


# ----------------------------------------------------------------------------
# paths
def features_dir(data_dir):
    return Path(data_dir) / "features"


def mfcc_path(data_dir):
    return features_dir(data_dir) / "mfcc.npy"


def segments_path(data_dir):
    return features_dir(data_dir) / "segments.csv"


def songs_path(data_dir):
    return Path(data_dir) / "songs.csv"


def failures_path(data_dir):
    return Path(data_dir) / "failures.csv"


def model_path(results_dir, model):
    return Path(results_dir) / "models" / f"{model}.pth"


def latents_path(results_dir, model):
    return Path(results_dir) / "latents" / f"{model}.npy"


def losses_path(results_dir, model):
    return Path(results_dir) / "losses" / f"{model}.csv"


def metrics_dir(results_dir):
    return Path(results_dir) / "metrics"


def clusters_path(results_dir, method):
    return Path(results_dir) / "clusters" / f"{method}.csv"


def figures_dir(results_dir):
    return Path(results_dir) / "figures"


# ----------------------------------------------------------------------------
# seeding and device
def seed_everything(seed):
    """Seed Python, NumPy and torch when a stage has imported it (one that has not draws
    nothing from torch, and importing it costs a stage without a model two seconds)."""
    random.seed(seed)
    np.random.seed(seed)
    if "torch" in sys.modules:
        import torch
        torch.manual_seed(seed)
        torch.cuda.manual_seed_all(seed)


def pick_device():
    import torch
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ----------------------------------------------------------------------------
# atomic writes: a reader never sees half a file, an interrupted run leaves the old one
@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_npy(path, array):
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def write_csv(path, df):
    """Write a pandas DataFrame atomically, without the index."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def torch_save(path, obj):
    import torch
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


# ----------------------------------------------------------------------------
# failures: one row per skipped song or segment, and a line on the console
def log_failure(data_dir, stage, song_id, source, error, quiet=False):
    """Append to data/failures.csv (append-only, header on first write) and say it (unless quiet)."""
    path = failures_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    error = " ".join(str(error).split())  # one line per failure, whatever the exception said
    with open(path, "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(FAILURE_COLUMNS)
        w.writerow([stage, song_id, source, error])
    if not quiet:
        print(f"skipped [{stage}] {song_id}: {error}", file=sys.stderr)


def read_failures(data_dir):
    """The rows already in data/failures.csv as a set of (stage, song_id, source, error) tuples."""
    path = failures_path(data_dir)
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error):
        return set()
    return {tuple(r) for r in rows[1:] if len(r) == len(FAILURE_COLUMNS)}


# ----------------------------------------------------------------------------
# checks made before any work, so a bad folder or flag is one line, not a traceback later
def check_writable_dir(path, flag=None):
    """Raise PipelineError unless `path` is, or can be created as, a folder this process may write.

    Creates nothing: the nearest existing folder on the way is probed with a temporary file
    (os.access alone says yes to root, and to a read-only mount). Returns path as a Path.
    """
    import tempfile
    path = Path(path)
    name = f"{flag} {path}" if flag else str(path)
    probe = path
    while not probe.exists():
        if probe.is_symlink():
            raise PipelineError(f"{name}: {probe} is a broken symbolic link; fix or remove it")
        probe = probe.parent
    if not probe.is_dir():
        what = "" if probe == path else f" (its parent {probe} is a file)"
        raise PipelineError(f"{name} is not a folder{what}; pass a folder")
    try:
        fd, tmp = tempfile.mkstemp(dir=probe, prefix=".write-check-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise PipelineError(f"{name}: cannot write in {probe} ({e.strerror or e}); "
                            "pass a writable folder or fix its permissions") from e
    return path


MAX_SEED = 2**31 - 1  # numpy and scikit-learn take seeds below 2**32; later seeds are this one + 1, + 2, ...


def seed_value(text):
    """argparse type of every --seed: a whole number in [0, MAX_SEED], or one line saying so."""
    try:
        seed = int(text)
    except ValueError:
        seed = None
    if seed is None or not 0 <= seed <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"a seed is a whole number from 0 to {MAX_SEED}, got {text!r}")
    return seed


def check_workers(workers, flag="--workers"):
    """A worker count of at least 1, else PipelineError."""
    try:
        n = int(workers)
    except (TypeError, ValueError):
        n = None
    if n is None or n < 1 or (isinstance(workers, float) and n != workers):
        raise PipelineError(f"{flag} must be a whole number of at least 1, got {workers!r}")
    return n


# ----------------------------------------------------------------------------
# pool workers stop when their parent does, even when it was SIGKILLed (the OOM killer)
PARENT_POLL_SECONDS = 1.0  # how often a worker's watchdog checks that its parent is alive


def die_with_parent(parent_pid=None, poll=PARENT_POLL_SECONDS, use_prctl=True):
    """Make this process exit when its parent dies: call it first in a pool's initializer.

    On Linux, prctl(PR_SET_PDEATHSIG, SIGKILL) has the kernel kill it the moment the parent
    goes; everywhere, a daemon thread also polls os.getppid() every `poll` seconds (the fallback
    where prctl is missing, and the check prctl cannot make: a parent that died before this
    call). parent_pid: the pid the caller knows to be the parent (os.getpid() before the pool
    starts); None takes the current parent (a forkserver's child: the forkserver, which itself
    exits when the main process does).
    """
    import threading
    parent = os.getppid() if parent_pid is None else int(parent_pid)
    if use_prctl and sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass  # the watchdog below still works
    if os.getppid() != parent:  # the parent died before prctl was set
        os._exit(1)

    def watch():
        import time
        while True:
            time.sleep(poll)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


# ----------------------------------------------------------------------------
# content fingerprints: a cache is keyed on the audio it was made from, not on a song's name
def file_fingerprint(path, chunk=1 << 22):
    """SHA-1 of a file's bytes (16 hex digits): changes whenever the audio does."""
    import hashlib
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()[:16]


def audio_path(data_dir, song_id):
    return Path(data_dir) / "audio" / f"{song_id}.wav"


def corpus_fingerprint(data_dir, segments):
    """{"segments": digest of segment ids and starts, "audio": digest of every song's audio}:
    what a feature file records, and what a reader compares it with."""
    import hashlib
    import json
    songs = list(dict.fromkeys(segments["song_id"].astype(str)))
    audio = {s: file_fingerprint(audio_path(data_dir, s)) if audio_path(data_dir, s).is_file() else None
             for s in songs}  # None: the song's audio is missing
    ids = [segments["segment_id"].astype(str).tolist(), [round(float(x), 3) for x in segments["start_s"]]]
    dig = lambda obj: hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]  # noqa: E731
    return {"segments": dig(ids), "audio": dig(audio)}, audio


# ----------------------------------------------------------------------------
# reading the features every later stage starts from
def load_features(data_dir, mmap=True):
    """Return (mfcc, segments) after checking that they exist and agree.

    mfcc is float32 (N, 40, 430), memory-mapped by default; segments is a DataFrame
    whose row i describes mfcc[i].
    """
    import pandas as pd
    mp, sp = mfcc_path(data_dir), segments_path(data_dir)
    fix = f"run `python build_dataset.py --data-dir {data_dir}` first"
    for p in (mp, sp):
        if not p.exists():
            raise PipelineError(f"{p} not found: {fix}")
    try:
        mfcc = np.load(mp, mmap_mode="r" if mmap else None)
    except Exception as e:  # truncated or not a .npy at all
        raise PipelineError(f"{mp} is unreadable ({e}): {fix}") from e
    if mfcc.ndim != 3 or mfcc.shape[1:] != (N_MFCC, N_FRAMES):
        raise PipelineError(f"{mp} has shape {mfcc.shape}, expected (N, {N_MFCC}, {N_FRAMES}): {fix}")
    segments = pd.read_csv(sp, dtype={"segment_id": str, "song_id": str, "language": str,
                                      "title": str, "artist": str})
    missing = [c for c in SEGMENT_COLUMNS if c not in segments.columns]
    if missing:
        raise PipelineError(f"{sp} lacks columns {missing}: {fix}")
    for c in ("language", "title", "artist"):  # "" for an unlabelled song, never NaN
        segments[c] = segments[c].fillna("")
    if len(segments) != len(mfcc):
        raise PipelineError(f"{mp} has {len(mfcc)} segments but {sp} has {len(segments)} rows: {fix}")
    if len(mfcc) == 0:
        raise PipelineError(f"{mp} holds no segments: {fix}")
    return mfcc, segments


def add_dir_args(parser):
    """The two flags every script takes."""
    parser.add_argument("--data-dir", default="data", help="where build_dataset.py wrote songs and features")
    parser.add_argument("--results-dir", default="results", help="where models, latents, metrics and figures go")
    return parser


# ----------------------------------------------------------------------------
# numba: librosa compiles its numba functions (cache=True) into an on-disk cache. numba writes a
# @guvectorize function's two cache files with no lock between them, so pool workers compiling the
# same one at once can leave a mismatched pair that segfaults every later process that calls it
# (numba issue 10128). So: every run uses a cache folder of its own, keyed on the versions (a cache
# an older run corrupted, such as librosa's __pycache__, is never read), and warm_numba() mends,
# fills and checks it before any pool starts; the workers then only read it.
# This block must run before librosa is imported: import common before librosa in every script.
NUMBA_CACHE_ROOT = Path(__file__).resolve().parent / ".numba_cache"  # one subfolder per version key
NUMBA_WORKOUT = "common._numba_workout"  # module.function that calls every numba function we use
_NUMBA_WARM = set()  # workouts this process has already checked


def _numba_cache_key():
    """py3.11-numba0.68.1-librosa0.11.0: a cache is reused only by the same versions."""
    from importlib import metadata
    versions = []
    for dist in ("numba", "librosa"):
        try:
            versions.append(f"{dist}{metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{dist}-none")
    return "-".join([f"py{sys.version_info[0]}.{sys.version_info[1]}"] + versions)


if not os.environ.get("NUMBA_CACHE_DIR"):  # a folder the user chose is respected
    os.environ["NUMBA_CACHE_DIR"] = str(NUMBA_CACHE_ROOT / _numba_cache_key())
    if "numba" in sys.modules:  # numba read its settings at import; functions defined from now on see it
        sys.modules["numba"].core.config.reload_config()


def _numba_workout():
    """Call, on tiny inputs, every numba-compiled librosa function the pipeline and its tests reach.

    Importing librosa.core, .util, .beat compiles (or loads) their @guvectorize functions; the calls
    compile the lazy @jit ones and run every gufunc, which is where a mismatched cache pair crashes.
    Both float dtypes: a cache file holds one signature. The asserts catch a cache that loads but
    computes garbage.
    """
    import librosa
    import librosa.beat  # noqa: F401  (lazy submodules: import them so their gufuncs compile here)
    import librosa.effects  # noqa: F401
    import librosa.feature  # noqa: F401
    import librosa.onset  # noqa: F401
    import librosa.sequence  # noqa: F401
    sr = SAMPLE_RATE
    t = np.arange(sr) / sr
    for dtype in (np.float32, np.float64):
        y = (0.3 * np.sin(2 * np.pi * 220 * t) * (1.2 + np.sin(2 * np.pi * 4 * t))).astype(dtype)
        f0 = librosa.yin(y, fmin=80, fmax=800, sr=sr)  # parabolic interpolation gufunc, localmin
        if not abs(float(np.median(f0)) - 220.0) < 5.0:
            raise RuntimeError(f"librosa.yin found {np.median(f0):.1f} Hz in a 220 Hz tone")
        librosa.pyin(y[: sr // 4], fmin=80, fmax=800, sr=sr)  # + viterbi
        m = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=13)
        librosa.feature.delta(m)
        librosa.feature.stack_memory(m, n_steps=2)
        librosa.zero_crossings(y)
        librosa.feature.zero_crossing_rate(y)
        env = librosa.onset.onset_strength(y=y, sr=sr)
        librosa.onset.onset_detect(onset_envelope=env, sr=sr)  # peak_pick
        librosa.beat.beat_track(onset_envelope=env.astype(dtype), sr=sr)  # the beat gufuncs
        librosa.effects.trim(y)
        librosa.effects.split(y)
        librosa.effects.time_stretch(y[: sr // 4], rate=1.25)  # istft: overlap-add, window sum-square
        librosa.lpc(y[:2048], order=4)
        librosa.sequence.dtw(m[:, :8], m[:, :8])
    for dtype in (np.int16, np.int32, np.int64):
        x = np.array([0, 2, 1, 3, 0], dtype)
        if librosa.util.localmax(x).tolist() != [False, True, False, True, False]:
            raise RuntimeError("librosa.util.localmax gives a wrong answer")
        librosa.util.localmin(x)


def warm_numba(in_process=True, workout=NUMBA_WORKOUT):
    """Mend, fill and check numba's cache before any pool starts; call it in the parent, once per run.

    Every call first drops any gufunc whose two cache files disagree (milliseconds, no numba
    needed). The first time for a cache folder (or after it went bad), the workout runs in a subprocess: a
    crash there (a segfault from a corrupted cache) costs nothing but a rebuild of a folder we own.
    A stamp file then marks the folder as checked. With in_process=True the workout then runs here
    too (it only loads from the checked cache), so forked workers inherit compiled functions.
    """
    import importlib
    import shutil
    import subprocess
    if (workout, in_process) in _NUMBA_WARM or (workout, True) in _NUMBA_WARM:
        return
    cache = Path(os.environ.get("NUMBA_CACHE_DIR") or NUMBA_CACHE_ROOT / _numba_cache_key())
    ours = NUMBA_CACHE_ROOT in cache.parents
    cache.mkdir(parents=True, exist_ok=True)
    stamp = cache / f".checked-{_numba_cache_key()}-{workout}"
    module, function = workout.rsplit(".", 1)
    code = f"import importlib; importlib.import_module({module!r}).{function}()"
    with _locked(cache / ".lock"):  # two runs starting together do not compile side by side
        for name in _drop_mismatched_gufuncs(cache):  # cheap, every run: what a racing pool left
            print(f"numba's cache {cache}: dropped the mismatched files of {name} (numba issue 10128); "
                  "recompiling it", file=sys.stderr)
            stamp.unlink(missing_ok=True)  # recompiled below, here, before any worker needs it
        if not stamp.exists():
            for attempt in (1, 2):
                r = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent,
                                   capture_output=True, text=True)
                if r.returncode == 0:
                    break
                tail = (r.stderr.strip().splitlines() or ["no message"])[-1]
                why = "a segmentation fault" if r.returncode == -11 else f"exit {r.returncode}: {tail}"
                if not ours:
                    raise PipelineError(f"librosa's numba functions crash with the cache in NUMBA_CACHE_DIR="
                                        f"{cache} ({why}); empty that folder, or unset NUMBA_CACHE_DIR")
                if attempt == 2:
                    raise PipelineError(f"librosa's numba functions crash even with an empty cache ({why}); "
                                        "reinstall them: `pip install --force-reinstall -r requirements.txt`")
                print(f"numba's cache {cache} failed its check ({why}): rebuilding it", file=sys.stderr)
                for p in cache.iterdir():
                    if p.name != ".lock":
                        shutil.rmtree(p) if p.is_dir() else p.unlink()
            stamp.write_text("checked by common.warm_numba\n")
        if in_process:
            getattr(importlib.import_module(module), function)()
    _NUMBA_WARM.add((workout, in_process))


def _drop_mismatched_gufuncs(cache):
    """Delete the cache files of every @guvectorize function whose two files disagree; their names.

    A gufunc's kernel (<file>.<func>-<line>.pyXY.<n>.nbc) and its loop (guf-<same name>) are two
    files; the loop calls the kernel by a symbol name whose ABI tag (...B<k>v<number>...) depends on
    the compiling process's history. A loop that names a tag its kernel file lacks calls a null
    pointer: the segfault of numba issue 10128. Reading the bytes needs no numba and takes ms.
    """
    import re
    dropped = []
    for loop in sorted(Path(cache).glob("*/guf-*.nbc")):
        kernel = loop.with_name(loop.name[len("guf-"):])
        qualname = kernel.name.split("-")[0].split(".", 1)[-1]  # utils.__peak_pick -> __peak_pick
        tag = re.compile(rb"%d%sB\d+v(\d+)" % (len(qualname), re.escape(qualname.encode())))
        try:
            wanted = set(tag.findall(loop.read_bytes()))
            ok = kernel.exists() and wanted <= set(tag.findall(kernel.read_bytes()))
        except OSError:
            ok = False
        if not ok:
            stem = kernel.name.rsplit(".", 2)[0]  # pitch._pi_wrapper-430.py311
            for p in list(loop.parent.glob(f"{stem}.*")) + list(loop.parent.glob(f"guf-{stem}.*")):
                p.unlink(missing_ok=True)
            dropped.append(stem)
    return sorted(set(dropped))


@contextlib.contextmanager
def _locked(path):
    """An exclusive lock on `path` while the block runs (a no-op where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
