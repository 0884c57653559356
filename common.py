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

# numba's cache folder (NUMBA_CACHE_DIR) is set by importing numba_cache, before any stage imports librosa;
# warm_numba is every stage's one call to it, before a process pool starts
import numba_cache  # noqa: E402
from numba_cache import NUMBA_CACHE_ROOT, warm_numba  # noqa: E402,F401

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
CONDITIONAL_MODELS = {"cvae", "beta_vae"}  # models that see the language label when they encode
# models that give their own clusters (train_vade.py writes their metrics): K-Means skips them
OWN_CLUSTERS_PREFIX = "vade"
MODEL_SEEDS_FILE = "model_seeds_metrics.csv"  # in results/metrics/: every model seed's rows, with model_seed (analyze_advanced.py)

# analyze_language.py's outputs, which report.py reads: each name here once, for both
LANGUAGE_METRICS_FILE = "language_metrics.csv"  # in results/metrics/: its methods' rows (METRIC_COLUMNS + more)
PROBES_FILE = "language_probes.csv"  # in results/metrics/: one row per feature set, its supervised probe
CONFOUNDS_FILE = "confounds.csv"  # in results/metrics/: one row per method, NMI against each attribute
DECLARED_FILE = "declared_methods.csv"  # in results/metrics/: the declared methods and their spread
SONG_LANGUAGES_FILE = "song_languages.csv"  # in results/: the answer per song
SONG_LANGUAGE_COLUMNS = ["song_id", "title", "artist", "cluster", "cluster_language", "cluster_language_name",
                         "confidence", "language"]  # its columns
LANGUAGE_CLUSTERS_FILE = "language_clusters.csv"  # in results/metrics/: one row per cluster of the answer, its name
LANGUAGE_COUNT_FILE = "language_count.csv"  # in results/metrics/: how many languages, the criterion per candidate
LANGUAGE_COUNT_FIGURE = "language_count.png"  # in results/figures/: that criterion as a chart
REPORT_MFCC = "report_mfcc"  # the name of the report's representation (mfcc.npy, flattened) as a feature set


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
# method names (here, not in models.py: naming a method must not import torch)
def vade_features(name):
    """The input of a VaDE method name ('vade' -> 'mfcc', 'vade_fg_bow' -> 'fg_bow'); None otherwise."""
    if name == OWN_CLUSTERS_PREFIX:
        return "mfcc"
    return name[len(OWN_CLUSTERS_PREFIX) + 1:] if name.startswith(OWN_CLUSTERS_PREFIX + "_") else None


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
# pool workers stop when the process that owns the pool does, even when it was SIGKILLed (the OOM killer)
PARENT_POLL_SECONDS = 1.0  # how often a worker's watchdog checks its owner where Linux's pidfd is missing


def die_with_parent(owner_pid=None, poll=PARENT_POLL_SECONDS, use_prctl=True):
    """Make this process exit when the pool's owner dies: call it first in a pool's initializer.

    owner_pid: the owner (os.getpid() there, before the pool starts); None: this process's parent.
    A forkserver's worker must be given it. Its parent is the forkserver, and the forkserver does not
    exit while any worker holds the pipe whose closing would end it, so a SIGKILLed owner would leave
    both behind. On Linux, prctl(PR_SET_PDEATHSIG, SIGKILL) has the kernel kill this process the moment
    its parent goes. A daemon thread also waits on the owner: on a pidfd where the kernel has them
    (woken when the owner exits), else by polling every `poll` seconds. The thread also makes the check
    prctl cannot make: an owner that died before this call.
    """
    import threading
    owner = os.getppid() if owner_pid is None else int(owner_pid)
    if use_prctl and sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass  # the watchdog below still works
    pidfd = None
    try:
        pidfd = os.pidfd_open(owner)  # readable once the owner has exited (a zombie included)
    except ProcessLookupError:
        os._exit(1)  # the owner died before this call
    except (AttributeError, OSError):
        pass  # no pidfd here (not Linux 5.3+): poll
    if not _process_alive(owner):
        os._exit(1)

    def watch():
        import select
        import time
        if pidfd is not None:
            select.select([pidfd], [], [])
            os._exit(1)
        while True:
            time.sleep(poll)
            if not _process_alive(owner):
                os._exit(1)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def _process_alive(pid):
    """The process exists and has not exited (a zombie, dead but not yet reaped, has)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (not Linux): os.kill said it exists


# ----------------------------------------------------------------------------
# content fingerprints: a cache is keyed on the audio it was made from, not on a song's name
_SHA1_CACHE = {}  # (path, inode, size, mtime_ns) -> digest: the analysis checks many models against one file


def file_sha1(path, chunk=1 << 22):
    """SHA-1 of a file's bytes, 40 hex digits (memoized per inode, size and mtime: mfcc.npy can be
    gigabytes, and every atomic write makes a new inode)."""
    import hashlib
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _SHA1_CACHE:
        h = hashlib.sha1()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(chunk), b""):
                h.update(block)
        _SHA1_CACHE[key] = h.hexdigest()
    return _SHA1_CACHE[key]


def digest(obj):
    """12 hex digits of the SHA-1 of obj as sorted JSON: a config's or a list's short name."""
    import hashlib
    import json
    return hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


def audio_path(data_dir, song_id):
    """data/audio/<song_id>.wav: build_dataset.py writes it, every later stage reads it."""
    return Path(data_dir) / "audio" / f"{song_id}.wav"


def corpus_fingerprint(data_dir, segments):
    """{"segments": digest of segment ids and starts, "audio": digest of every song's audio}:
    what a feature file records, and what a reader compares it with. Also returns {song: the
    first 16 hex digits of its audio's SHA-1, or None when the audio is missing}."""
    songs = list(dict.fromkeys(segments["song_id"].astype(str)))
    audio = {s: file_sha1(audio_path(data_dir, s))[:16] if audio_path(data_dir, s).is_file() else None
             for s in songs}  # None: the song's audio is missing
    ids = [segments["segment_id"].astype(str).tolist(), [round(float(x), 3) for x in segments["start_s"]]]
    return {"segments": digest(ids), "audio": digest(audio)}, audio


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
