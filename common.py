"""Shared helpers for every stage: paths, seeding, device, atomic file writes, failures log.

Stages hand data to each other only through files; this module is the one place that
knows where those files live and how they are written safely.
"""
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
METRIC_COLUMNS = ["method", "features", "uses_labels", "silhouette", "nmi", "ari",
                  "purity", "acc", "n_segments", "seed"]
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
    """Seed Python, NumPy and torch (imported lazily: the data stage does not need it)."""
    random.seed(seed)
    np.random.seed(seed)
    if "torch" in sys.modules or _torch_available():
        import torch
        torch.manual_seed(seed)
        torch.cuda.manual_seed_all(seed)


def _torch_available():
    try:
        import torch  # noqa: F401
        return True
    except ImportError:
        return False


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
def log_failure(data_dir, stage, song_id, source, error):
    """Append to data/failures.csv (append-only, header on first write) and say it."""
    path = failures_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    error = " ".join(str(error).split())  # one line per failure, whatever the exception said
    with open(path, "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(FAILURE_COLUMNS)
        w.writerow([stage, song_id, source, error])
    print(f"skipped [{stage}] {song_id}: {error}", file=sys.stderr)


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
    segments = pd.read_csv(sp, dtype={"segment_id": str, "song_id": str})
    missing = [c for c in SEGMENT_COLUMNS if c not in segments.columns]
    if missing:
        raise PipelineError(f"{sp} lacks columns {missing}: {fix}")
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
