"""Bare Whisper speed: windows per second of WhisperEncoder.encode_segments, batch 1 against batches.

    python bench/bench_whisper.py                          # synthesized songs (no data needed)
    python bench/bench_whisper.py data/audio --windows 16  # the first WAVs there (any sample rate)
    python bench/bench_whisper.py --batches 1,2,4,8 --threads 2
    python bench/bench_whisper.py --vad                    # also the Silero window score's cost

"Bare" = the model alone: audio already cut into 30 s windows at 16 kHz, the model loaded once,
one warm-up call not timed, the best of ROUNDS interleaved timings; build_features.py's whisper
stage adds reading, resampling and the cache. The last line is
`bare whisper: X windows/s (batch B, device D)` for the fastest batch; bench scripts of later stages
import bare_windows_per_second(wavs, batch, n_windows) to get the same figure on their audio.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import whisper_features as wf  # noqa: E402

# ----------------------------------------------------------------------------
WINDOWS = 16  # windows timed per batch size (the same windows for every batch size)
BATCHES = (1, 2, 4, 8)  # batch sizes compared
ROUNDS = 2  # timings per batch size, interleaved; the best counts (other load only slows a run down)
THREADS = 2  # CTranslate2 threads (the 2-core reference machine)
SYNTH_SONGS = 4  # songs synthesized when no audio folder is given
SYNTH_SECONDS = 125.0  # their length: 4 full windows and a short tail each
SEED = 0  # seeds the synthesized songs
MODEL = "base"  # the bundled model


def synth_song16k(seconds, seed):
    """A gliding harmonic tone with a pulse plus noise, at 16 kHz (what the encoder costs does not
    depend on content; detect_language's one decoder step does not either)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * wf.WHISPER_SAMPLE_RATE)) / wf.WHISPER_SAMPLE_RATE
    f0 = 140.0 * 2 ** ((seed % 7) / 12) * (1 + 0.25 * np.sin(2 * np.pi * 0.17 * t))
    phase = 2 * np.pi * np.cumsum(f0) / wf.WHISPER_SAMPLE_RATE
    y = sum(0.25 / h * np.sin(h * phase) for h in (1, 2, 3, 5)) * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t) ** 2)
    return (y + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


def load_songs16k(wavs):
    import soundfile as sf
    out = []
    for w in wavs:
        y, sr = sf.read(str(w), dtype="float32", always_2d=True)
        out.append(wf.to_whisper_rate(y.mean(axis=1), sr))
    return out


def cut_windows(songs, n_windows):
    """The first n_windows non-overlapping 30 s windows (start 30 k s) over the songs, in order."""
    win = int(wf.WHISPER_WINDOW_S * wf.WHISPER_SAMPLE_RATE)
    out = []
    for y in songs:
        out += [y[s:s + win] for s in range(0, len(y), win) if len(y) - s >= wf.WHISPER_SAMPLE_RATE]
    if not out:
        raise SystemExit("error: no window of at least 1 s in the given audio")
    return [out[i % len(out)] for i in range(n_windows)]  # repeat if the audio is short


def bare_windows_per_second(wavs, batch=None, n_windows=WINDOWS, threads=THREADS, encoder=None):
    """Windows per second of encode_segments over the first n_windows windows of `wavs` (paths, or
    arrays already at 16 kHz; None: synthesized songs), warm model, in this process, one timing."""
    if wavs is None:
        songs = [synth_song16k(SYNTH_SECONDS, SEED + i) for i in range(SYNTH_SONGS)]
    elif all(isinstance(w, np.ndarray) for w in wavs):
        songs = list(wavs)
    else:
        songs = load_songs16k(wavs)
    windows = cut_windows(songs, n_windows)
    enc = encoder or wf.WhisperEncoder(MODEL, threads=threads)
    batch = batch or wf.default_batch(enc.device)  # None: what build_features would use on this device
    enc.encode_segments(windows[:batch], batch=batch)  # warm-up: first-call allocations
    t0 = time.perf_counter()
    enc.encode_segments(windows, batch=batch)
    return len(windows) / (time.perf_counter() - t0)


def vad_seconds_per_window(songs, repeats=3):
    """Seconds of whisper_features.window_scores per 30 s window (the window-choice overhead)."""
    win_s = wf.WHISPER_WINDOW_S
    best = np.inf
    n = 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = 0
        for y in songs:
            starts = np.arange(0.0, len(y) / wf.WHISPER_SAMPLE_RATE - 1.0, win_s)
            wf.window_scores(y, starts)
            n += len(starts)
        best = min(best, time.perf_counter() - t0)
    return best / max(n, 1)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("audio_dir", nargs="?", help="folder of audio files (default: synthesized songs)")
    p.add_argument("--songs", type=int, default=8, help="at most this many files of audio_dir (by name)")
    p.add_argument("--windows", type=int, default=WINDOWS, help="windows timed per batch size")
    p.add_argument("--batches", default=",".join(map(str, BATCHES)), help="comma-separated batch sizes")
    p.add_argument("--threads", type=int, default=THREADS, help="CTranslate2 threads")
    p.add_argument("--rounds", type=int, default=ROUNDS, help="timings per batch size (the best is kept)")
    p.add_argument("--vad", action="store_true", help="also time the Silero window score per window")
    args = p.parse_args()
    if args.audio_dir:
        wavs = sorted(f for f in Path(args.audio_dir).iterdir() if f.suffix.lower() in (".wav", ".flac"))[:args.songs]
        if not wavs:
            raise SystemExit(f"error: no .wav or .flac in {args.audio_dir}")
        songs = load_songs16k(wavs)
    else:
        songs = [synth_song16k(SYNTH_SECONDS, SEED + i) for i in range(SYNTH_SONGS)]
    enc = wf.WhisperEncoder(MODEL, threads=args.threads)
    batches = [int(x) for x in args.batches.split(",")]
    rates = {b: 0.0 for b in batches}
    for r in range(args.rounds):  # rounds interleave the batch sizes: a busy machine hits them alike
        for b in batches:
            rates[b] = max(rates[b], bare_windows_per_second(songs, b, args.windows, args.threads, encoder=enc))
            print(f"round {r + 1}, batch {b}: best {rates[b]:.2f} windows/s", flush=True)
    for b in batches:
        print(f"batch {b}: {rates[b]:.2f} windows/s (best of {args.rounds}; {args.windows} windows, "
              f"{args.threads} threads, {enc.device}, {wf.WHISPER_COMPUTE_TYPE})")
    if args.vad:
        s = vad_seconds_per_window(songs)
        print(f"window score (Silero VAD): {s * 1000:.1f} ms per 30 s window "
              f"({s * max(rates.values()):.1%} of a Whisper window)")
    b = max(rates, key=rates.get)
    print(f"bare whisper: {rates[b]:.2f} windows/s (batch {b}, device {enc.device})")


if __name__ == "__main__":
    main()
