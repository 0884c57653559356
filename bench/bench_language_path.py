"""The language path end to end: songs in, songs' languages out, in songs per hour.

    python bench/bench_language_path.py                       # a demo of 24 songs of 60-120 s, made first
    python bench/bench_language_path.py --songs 48 --workers 2
    python bench/bench_language_path.py --manifest my_songs.csv   # your own songs (a build_dataset manifest)

Runs, as a user would, each stage as its own process on a fresh data folder:
`build_dataset.py --source manifest`, `build_features.py --sets language` and
`analyze_language.py --sets language`, and prints each stage's seconds. Making the demo corpus is
not timed (a user's songs already exist). Then bare Whisper's windows/s on the same audio
(bench/bench_whisper.py's figure: the model alone, no reading, resampling or caching), so the
share of the path that is Whisper is visible. The last line is
`language path: N songs/hour (...)`.
"""
import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

# ----------------------------------------------------------------------------
SONGS = 24  # demo songs made when no manifest is given
MIN_SECONDS = 60.0  # their length, uniform in this range (the demo's own default)
MAX_SECONDS = 120.0
SEED = 42  # the demo corpus's seed
WORKERS = 2  # --workers of build_dataset.py and build_features.py (the 2-core reference machine)
BARE_WINDOWS = 16  # windows timed for bare Whisper's figure


def run_stage(args, log):
    """Seconds one stage takes as its own process; its output goes to log, a failure stops the bench."""
    t = time.perf_counter()
    with open(log, "a") as f:
        f.write(f"$ {' '.join(map(str, args))}\n")
        f.flush()
        done = subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        sys.exit(f"{args[0]} failed (exit {done.returncode}); see {log}")
    return time.perf_counter() - t


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--songs", type=int, default=SONGS, help="demo songs to make when no --manifest is given")
    p.add_argument("--seed", type=int, default=SEED, help="the demo corpus's seed")
    p.add_argument("--manifest", default=None, help="a build_dataset.py manifest of your own songs instead")
    p.add_argument("--workers", type=int, default=WORKERS, help="--workers of the two build stages")
    p.add_argument("--work-dir", default=None, help="where the corpus and the data go (default: a temporary folder)")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    args = p.parse_args()

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="bench_language_path_"))
    work.mkdir(parents=True, exist_ok=True)
    log = work / "bench.log"
    manifest = Path(args.manifest).resolve() if args.manifest else work / "corpus" / "manifest.csv"
    if not args.manifest and not manifest.exists():
        print(f"making a demo of {args.songs} songs in {manifest.parent} (not timed) ...", flush=True)
        run_stage(["demo_corpus.py", "--out", manifest.parent, "--songs", args.songs, "--seed", args.seed,
                   "--workers", args.workers, "--set", f"min_seconds={MIN_SECONDS}",
                   "--set", f"max_seconds={MAX_SECONDS}"], log)
    data, results = work / "data", work / "results"
    for d in (data, results):
        shutil.rmtree(d, ignore_errors=True)

    times = {}
    times["build_dataset"] = run_stage(["build_dataset.py", "--source", "manifest", "--manifest", manifest,
                                        "--data-dir", data, "--results-dir", results, "--workers", args.workers], log)
    times["build_features"] = run_stage(["build_features.py", "--sets", "language", "--data-dir", data,
                                         "--workers", args.workers], log)
    times["analyze_language"] = run_stage(["analyze_language.py", "--sets", "language", "--data-dir", data,
                                           "--results-dir", results], log)
    import pandas as pd
    segments = pd.read_csv(data / "features" / "segments.csv", dtype={"song_id": str})
    n_songs, n_windows = segments["song_id"].nunique(), len(segments)
    for stage, s in times.items():
        print(f"{stage:<18s} {s:7.1f} s")

    import whisper_features
    from bench_whisper import bare_windows_per_second
    wavs = sorted((data / "audio").glob("*.wav"))
    device = whisper_features.pick_device()
    batch = whisper_features.default_batch(device)
    bare = bare_windows_per_second(wavs, batch=batch, n_windows=min(BARE_WINDOWS, n_windows))
    total = sum(times.values())
    ran = json.loads((data / "features" / "whisper_lang.json").read_text()).get("windows_run", n_windows)
    print(f"bare whisper: {bare:.2f} windows/s (batch {batch}, {device}) on the same audio; the path ran Whisper "
          f"on {ran} of the {n_windows} windows ({n_windows / n_songs:.1f} a song; build_features.py's "
          f"WHISPER_WINDOWS_PER_SONG and first pass)")
    if not args.keep and not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)
    print(f"language path: {n_songs / total * 3600:.0f} songs/hour ({n_songs} songs, {n_windows} windows, "
          f"{total:.1f} s: " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()) + ")")


if __name__ == "__main__":
    main()
