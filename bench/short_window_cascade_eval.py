"""Would a short first pass do? Whisper on the first 15 s of each window, then the full 30 s
windows only for songs whose short answer is unsure: accuracy and encoder cost against all 30 s.

    python bench/short_window_cascade_eval.py /work/cache/val/voices5 /work/cache/val/voices2

A corpus folder holds data/ (or is it): audio/<song_id>.wav, features/segments.csv (song_id,
start_s, language) and features/whisper_lang.npy (+ .json with "languages"): Whisper's log
posteriors of EVERY 30 s window (build_features.py --whisper-windows 0). The short pass runs here
(cached in <out>/short_<digest>.npy, keyed on segments.csv, the audio's hashes and the model).
Per song: the windows' log posteriors floored at whisper_features.POOL_FLOOR and averaged,
restricted to the corpus's labelled languages; the answer is the argmax, its confidence the
restricted posterior's top. A song escalates when its short confidence is below tau; the encoder
cost counts a 15 s window as SHORT_COST of a 30 s one (measured: 0.28 s against 0.91 s, 2 threads).
Reads labels: an evaluation, not part of the pipeline. The last line per corpus is the table.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import whisper_features as wf  # noqa: E402
from window_choice_eval import corpus_data_dir, whisper_code  # noqa: E402

# ----------------------------------------------------------------------------
SHORT_S = 15.0  # seconds of each window the first pass hears (unpadded: the encoder runs on 750 frames)
SHORT_COST = 0.3  # encoder time of a SHORT_S window relative to a 30 s one (bench_whisper-style timing here)
TAUS = (0.6, 0.8, 0.9, 0.95, 0.99)  # confidence below which a song escalates to its 30 s windows
OUT_DIR = "results/short_window_cascade"  # the short pass's cache
MODEL = "base"  # the bundled Whisper model (the one the 30 s posteriors came from)
THREADS = 2  # CTranslate2 threads


def short_posteriors(encoder, data, seg, codes):
    """(n_windows, len(codes)) log posteriors of the first SHORT_S seconds of every window."""
    import ctranslate2
    import soundfile as sf
    out = np.zeros((len(seg), len(codes)), np.float32)
    n = int(SHORT_S * wf.WHISPER_SAMPLE_RATE)
    for sid, g in seg.groupby("song_id", sort=False):
        y, sr = sf.read(common.audio_path(data, sid), dtype="float32")
        y = wf.to_whisper_rate(y if y.ndim == 1 else y.mean(axis=1), sr)
        for i, start in zip(g.index, g["start_s"]):
            a = int(round(start * wf.WHISPER_SAMPLE_RATE))
            feats = encoder.model.feature_extractor(y[a:a + n])[:, : int(SHORT_S * 100)].astype(np.float32)
            enc = encoder.model.model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(feats[None])))
            probs = {tok.strip("<|>"): p for tok, p in encoder.model.model.detect_language(enc)[0]}
            out[i] = np.log(np.maximum([probs.get(c, 0.0) for c in codes], wf.LOG_FLOOR))
    return out


def song_answers(logp, seg, cols):
    """(answer index, confidence) per song: pooled, restricted to the corpus's languages."""
    answers, confidence = [], []
    for _, g in seg.groupby("song_id", sort=False):
        r = np.maximum(logp[g.index], np.log(wf.POOL_FLOOR)).mean(axis=0)[cols]
        p = np.exp(r - r.max())
        p /= p.sum()
        answers.append(int(p.argmax()))
        confidence.append(float(p.max()))
    return np.array(answers), np.array(confidence)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("corpora", nargs="+", help="corpus folders (data/ inside, or the data folder itself)")
    p.add_argument("--out", default=OUT_DIR, help="where the short pass is cached")
    p.add_argument("--threads", type=int, default=THREADS, help="CTranslate2 threads")
    args = p.parse_args()
    encoder = None
    for folder in args.corpora:
        data = corpus_data_dir(folder)
        seg = pd.read_csv(common.segments_path(data), dtype={"song_id": str})
        full = np.load(data / "features" / "whisper_lang.npy")
        codes = json.loads((data / "features" / "whisper_lang.json").read_text())["languages"]
        labels = sorted(seg["language"].unique())
        cols = [codes.index(whisper_code(lab, codes)) for lab in labels]
        key = common.digest({"segments": common.file_sha1(common.segments_path(data)), "model": MODEL,
                             "short_s": SHORT_S, "audio": [common.file_sha1(common.audio_path(data, s))
                                                           for s in seg["song_id"].unique()]})
        cache = Path(args.out) / f"short_{key}.npy"
        if cache.exists():
            short = np.load(cache)
        else:
            encoder = encoder or wf.WhisperEncoder(MODEL, threads=args.threads)
            short = short_posteriors(encoder, data, seg, codes)
            cache.parent.mkdir(parents=True, exist_ok=True)
            common.save_npy(cache, short)
        truth = np.array([labels.index(g["language"].iloc[0]) for _, g in seg.groupby("song_id", sort=False)])
        a30, _ = song_answers(full, seg, cols)
        a15, c15 = song_answers(short, seg, cols)
        print(f"{Path(folder).name}: {len(truth)} songs; all 30 s windows {np.mean(a30 == truth):.3f}, "
              f"all {SHORT_S:g} s {np.mean(a15 == truth):.3f}")
        for tau in TAUS:
            up = c15 < tau
            acc = np.mean(np.where(up, a30, a15) == truth)
            cost = (1 - up.mean()) * SHORT_COST + up.mean() * (1 + SHORT_COST)
            print(f"  tau {tau:<4g} accuracy {acc:.3f}  escalated {up.mean():.2f}  encoder cost {cost:.2f} of all 30 s")


if __name__ == "__main__":
    main()
