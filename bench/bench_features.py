"""Feature-extraction speed: segments per second from WAVs, with 1 worker and with WORKERS.

    python bench/bench_features.py                 # the WAVs in data/audio
    python bench/bench_features.py some/dir --songs 20
    python bench/bench_features.py --whisper-songs 0   # MFCCs only

Whisper (build_features.py's whisper_* sets): the bare model cost (WhisperEncoder.encode_segments
on segments already at 16 kHz, in this process with every core) beside the stage's own rate
(build_features.build on the same songs, nothing cached, 1 worker and WORKERS); the stage should
be within 15 % of the bare cost.

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
WHISPER_SONGS = 6  # songs timed through Whisper (each gives its 30 s segments)
WHISPER_OVERHEAD = 0.15  # the stage may cost at most this much more than the bare model


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
    p.add_argument("--whisper-songs", type=int, default=WHISPER_SONGS, help="songs timed through Whisper (0: skip)")
    args = p.parse_args()
    cfg = bd.feature_config()
    with tempfile.TemporaryDirectory() as tmp:
        wavs = sorted(Path(args.audio_dir).glob("*.wav"))[:args.songs]
        if not wavs:
            print(f"no WAVs in {args.audio_dir}: synthesizing {SYNTH_SONGS} noise songs of {SYNTH_SECONDS} s")
            wavs = synthesize(Path(tmp), SYNTH_SONGS, SYNTH_SECONDS, args.seed)
        common.warm_numba()  # numba's cache checked and filled before any worker starts
        count_segments(wavs[0], cfg)  # warm-up: imports and first-call costs, inherited by forked workers
        print(f"{len(wavs)} songs from {wavs[0].parent}")
        for workers in sorted({1, args.workers}):
            n, secs = timed(wavs, workers, cfg)
            print(f"{workers} worker{'s' if workers > 1 else ' '}: {n} segments in {secs:.2f} s = "
                  f"{n / secs:.1f} segments/s")
    print(f"target: >= {TARGET:.0f} segments/s with 2 workers (the lead measures on a quiet machine)")
    if args.whisper_songs > 0:
        with tempfile.TemporaryDirectory() as tmp:
            wavs = sorted(Path(args.audio_dir).glob("*.wav"))[:args.whisper_songs]
            if not wavs:
                wavs = synthesize(Path(tmp), args.whisper_songs, SYNTH_SECONDS, args.seed)
            bench_whisper(wavs, args.workers, Path(tmp))


def bench_whisper(wavs, workers, tmp):
    """Bare Whisper segments/s against build_features.py's whisper stage on the same audio."""
    import os

    import pandas as pd

    import build_features as bf
    import whisper_features as wf
    data = tmp / "whisper_data"
    rows, segments = [], []
    for i, w in enumerate(wavs):
        y, sr = sf.read(w, dtype="float32", always_2d=True)
        y = y.mean(axis=1)
        sid = f"s{i:03d}"
        (data / "audio").mkdir(parents=True, exist_ok=True)
        sf.write(data / "audio" / f"{sid}.wav", y, sr, subtype="PCM_16")
        y16 = wf.to_whisper_rate(y, sr)
        for k in range(int(len(y) / sr // common.SEGMENT_SECONDS)):
            rows.append({"segment_id": f"{sid}_{k}", "song_id": sid, "language": "", "title": "", "artist": "",
                         "start_s": 30.0 * k})
            segments.append(y16[int(30 * k * wf.WHISPER_SAMPLE_RATE):][:int(30 * wf.WHISPER_SAMPLE_RATE)])
    common.write_csv(common.segments_path(data), pd.DataFrame(rows, columns=common.SEGMENT_COLUMNS))
    enc = wf.WhisperEncoder(bf.WHISPER_MODEL, threads=os.cpu_count() or 1)
    enc.encode_segments(segments[:1])  # warm-up
    t0 = time.perf_counter()
    enc.encode_segments(segments)
    bare = len(segments) / (time.perf_counter() - t0)
    print(f"Whisper {bf.WHISPER_MODEL} ({wf.WHISPER_COMPUTE_TYPE}, {os.cpu_count()} threads), bare model: "
          f"{len(segments)} segments at {bare:.2f} segments/s")
    for n_workers in sorted({1, workers}):
        for p in common.features_dir(data).glob("whisper_*"):  # nothing cached between runs
            if p.is_dir():
                import shutil
                shutil.rmtree(p)
            else:
                p.unlink()
        t0 = time.perf_counter()
        bf.build(data, ["whisper_mean"], workers=n_workers)
        rate = len(segments) / (time.perf_counter() - t0)
        print(f"build_features whisper stage, {n_workers} worker{'s' if n_workers > 1 else ' '}: "
              f"{rate:.2f} segments/s ({rate / bare:.0%} of the bare model; target >= {1 - WHISPER_OVERHEAD:.0%}, "
              f"model loading included)")


if __name__ == "__main__":
    common.run_main(main)
