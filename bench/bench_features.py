"""Feature-extraction speed: segments per second from WAVs, with 1 worker and with WORKERS.

    python bench/bench_features.py                 # the WAVs in data/audio
    python bench/bench_features.py some/dir --songs 20

Times what build_dataset.py does per song after acquisition (read the 22,050 Hz WAV, cut 30 s
segments, 40 x 430 MFCCs, z-score), without its cache. With no WAVs there, it synthesizes a few
noise songs in a temporary folder so the benchmark still runs. Target on a 2-core machine:
at least 25 segments/s with 2 workers (the report's 4,954 segments in under 4 minutes).
"""
import argparse
import concurrent.futures as cf
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import build_dataset as bd  # noqa: E402
import common  # noqa: E402

# ----------------------------------------------------------------------------
BENCH_SONGS = 40  # at most this many WAVs are timed (the first, by name)
SYNTH_SONGS = 16  # noise songs made when the folder has no WAVs
SYNTH_SECONDS = 125  # their length: 4 segments each
SEED = 0  # seeds the synthesized noise
TARGET = 25.0  # segments per second wanted with 2 workers


def synthesize(folder, n, seconds, seed):
    rng = np.random.default_rng(seed)
    for i in range(n):
        y = 0.1 * rng.standard_normal(int(seconds * common.SAMPLE_RATE)).astype(np.float32)
        sf.write(folder / f"noise_{i:02d}.wav", y, common.SAMPLE_RATE, subtype="PCM_16")
    return sorted(folder.glob("*.wav"))


def count_segments(wav, cfg):
    return len(bd.wav_features(wav, cfg)[1])


def timed(wavs, workers, cfg):
    t0 = time.perf_counter()
    if workers == 1:
        n = sum(count_segments(w, cfg) for w in wavs)
    else:
        ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else None)
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            n = sum(pool.map(count_segments, wavs, [cfg] * len(wavs)))
    return n, time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("audio_dir", nargs="?", default="data/audio", help="folder of 22,050 Hz mono WAVs")
    p.add_argument("--songs", type=int, default=BENCH_SONGS, help="time at most this many WAVs")
    p.add_argument("--workers", type=int, default=bd.WORKERS, help="the parallel worker count to compare")
    p.add_argument("--seed", type=int, default=SEED, help="seed of the synthesized noise songs")
    args = p.parse_args()
    cfg = bd.feature_config()
    with tempfile.TemporaryDirectory() as tmp:
        wavs = sorted(Path(args.audio_dir).glob("*.wav"))[:args.songs]
        if not wavs:
            print(f"no WAVs in {args.audio_dir}: synthesizing {SYNTH_SONGS} noise songs of {SYNTH_SECONDS} s")
            wavs = synthesize(Path(tmp), SYNTH_SONGS, SYNTH_SECONDS, args.seed)
        count_segments(wavs[0], cfg)  # warm-up: imports and first-call costs, inherited by forked workers
        print(f"{len(wavs)} songs from {wavs[0].parent}")
        for workers in sorted({1, args.workers}):
            n, secs = timed(wavs, workers, cfg)
            print(f"{workers} worker{'s' if workers > 1 else ' '}: {n} segments in {secs:.2f} s = "
                  f"{n / secs:.1f} segments/s")
    print(f"target: >= {TARGET:.0f} segments/s with 2 workers (the lead measures on a quiet machine)")


if __name__ == "__main__":
    common.run_main(main)
