"""Whisper's first pass: how often a song can stop after its best window, and what that costs the
declared method. Accuracy and Whisper's share of windows against the sure posterior.

    python bench/first_pass_eval.py /work/cache/val/voices5 /work/cache/val/espeak5 --out results/first_pass

A corpus folder is as bench/window_choice_eval.py reads it: data/ (or the folder itself) with
audio/, features/segments.csv (song_id, start_s, language, artist), and features/whisper_lang.npy and
whisper_mean.npy holding Whisper's answer for EVERY window (build_features.py --whisper-windows 0
--whisper-first-windows 0). Each song then goes through whisper_features.encode_song itself (the
function build_features runs), with an encoder that hands back those recorded windows and the
window scores of window_choice_eval's VAD cache, for every (first windows, sure posterior) below
and the cap build_features.WHISPER_WINDOWS_PER_SONG. Its rows are pooled per song as
analyze_language pools them and placed by languages.named_clusters (the declared whisper_named)
over metrics.kmeans_seeds, exactly as analyze_language.analyze_named does. Scored per song:
  named_acc   whisper_named's matched accuracy (mean and std over the seeds), k its languages found;
  argmax_in   the pooled posterior's top among the corpus's own languages (window_choice_eval's);
  stopped     the share of songs longer than the first pass that stopped after it;
  whisper     windows Whisper ran, as a share of those it runs without a first pass.
Each corpus is also scored as pseudo-songs (an artist's songs chained to >= 6 windows), as long as
a real library's songs. Writes <out>/first_pass.csv and first_pass.png. Reads labels: an
evaluation, not part of the pipeline.
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import analyze_language as al  # noqa: E402
import build_features as bf  # noqa: E402
import common  # noqa: E402
import languages  # noqa: E402
import metrics  # noqa: E402
import whisper_features as wf  # noqa: E402
from window_choice_eval import (MIN_WINDOWS, cached_vad_scores, corpus_args, load_corpus,  # noqa: E402
                                pseudo_songs, save_figure, whisper_code)

# ----------------------------------------------------------------------------
FIRST_WINDOWS = (0, 1, 2)  # first-pass windows tried (0: no first pass, every song runs the cap)
SURE = (0.5, 0.6, 0.7, 0.8, 0.9)  # sure posteriors tried
OUT_DIR = "results/first_pass"  # the CSV, the figure, and the VAD scores (window_choice_eval's cache)


class RecordedWhisper:
    """An encoder that answers from Whisper's recorded windows: a 'segment' is its row number."""

    def __init__(self, logp, mean):
        self.logp, self.mean, self.runs = logp, mean, 0

    def encode_segments(self, rows, batch=None):
        rows = np.asarray(rows, dtype=int)
        self.runs += len(rows)
        return {"mean": self.mean[rows], "std": np.zeros_like(self.mean[rows]), "logp": self.logp[rows]}


def evaluate(folder, out_dir, group_by=None):
    name = Path(str(folder).rstrip("/")).name
    seg, logp, codes, data = load_corpus(folder)
    mean = np.load(common.features_dir(data) / "whisper_mean.npy")
    rows_of = {s: np.flatnonzero(seg["song_id"].to_numpy() == s) for s in seg["song_id"].unique()}
    scores = cached_vad_scores(seg, data, Path(out_dir) / f"vad_{name}.npz")[0]["vad"]
    if group_by:
        groups = pseudo_songs(seg, rows_of, group_by, MIN_WINDOWS)
        scores = {g: np.concatenate([scores[s] for s in members]) for g, members in groups.items()}
        rows_of = {g: np.concatenate([rows_of[s] for s in members]) for g, members in groups.items()}
        name = f"{name} by {group_by}"
    songs = list(rows_of)
    labels = np.array([seg["language"].iloc[rows_of[s]].astype(str).mode().iloc[0] for s in songs])
    cols = [codes.index(c) for c in sorted({whisper_code(lab, codes) for lab in labels}) if c in codes]
    truth = np.array([whisper_code(lab, codes) for lab in labels])
    cap = bf.WHISPER_WINDOWS_PER_SONG
    real_scores = wf.window_scores
    wf.window_scores = lambda song, starts: scores[song]  # the recorded VAD scores of that song's windows
    out = []
    try:
        for first in FIRST_WINDOWS:
            for sure in (SURE if first else (1.0,)):
                enc = RecordedWhisper(logp, mean)
                L, M, stopped, longer = [], [], 0, 0
                for s in songs:
                    song = wf.encode_song(enc, rows_of[s], cap, starts=rows_of[s], y16k=s, first=first, sure=sure)
                    L.append(np.maximum(song["logp"], np.log(wf.POOL_FLOOR)).mean(axis=0))
                    M.append(song["mean"].mean(axis=0))
                    if first and len(rows_of[s]) > first:
                        longer += 1
                        stopped += int(song["ran"].sum() == first)
                L, M = np.array(L, dtype=np.float64), np.array(M)
                accs, ks = [], []
                for k_seed in metrics.kmeans_seeds(al.SEED):  # analyze_named's seeds
                    named = languages.named_clusters(L, codes, al.cluster_view(M, k_seed), seed=k_seed)
                    accs.append(metrics.acc(labels, named["clusters"]))
                    ks.append(named["k"])
                top_in = np.array(codes)[np.array(cols)[L[:, cols].argmax(axis=1)]]
                out.append({"corpus": name, "songs": len(songs), "first_windows": first,
                            "sure_posterior": sure if first else np.nan, "whisper_windows": enc.runs,
                            "stopped": round(stopped / max(longer, 1), 4) if first else 0.0,
                            "named_acc": round(float(np.mean(accs)), 4), "named_acc_std": round(float(np.std(accs)), 4),
                            "k_found": round(float(np.mean(ks)), 2), "k_true": len(set(labels)),
                            "argmax_in_corpus_acc": round(float(np.mean(top_in == truth)), 4)})
    finally:
        wf.window_scores = real_scores
    df = pd.DataFrame(out)
    df["whisper"] = (df["whisper_windows"] / df["whisper_windows"].iloc[0]).round(4)  # row 0: no first pass
    return df


def plot(df, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for ci, (corpus, g) in enumerate(df.groupby("corpus", sort=False)):
        base = g[g["first_windows"] == 0].iloc[0]
        ax.axhline(base["named_acc"] - 0.01, color=f"C{ci}", lw=0.6, alpha=0.5)
        for first, style in ((1, "-o"), (2, "--s")):
            h = g[g["first_windows"] == first]
            ax.plot(h["whisper"], h["named_acc"], style, color=f"C{ci}", alpha=0.85,
                    label=f"{corpus}, first {first}" if first == 1 else None)
            if first == 1:
                for _, r in h.iterrows():
                    ax.annotate(f"{r['sure_posterior']:g}", (r["whisper"], r["named_acc"]), fontsize=6,
                                xytext=(2, 2), textcoords="offset points", color=f"C{ci}")
        ax.plot([1.0], [base["named_acc"]], "*", color=f"C{ci}", ms=8)
    ax.set_xlabel("Whisper windows run, share of those without a first pass")
    ax.set_ylabel("whisper_named accuracy (songs)")
    ax.set_title("First pass: accuracy against Whisper's work, labels = sure posterior\n"
                 "(solid: 1 first window, dashed: 2; star: no first pass; thin line: that - 0.01)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    save_figure(fig, path)


def main():
    p = corpus_args(argparse.ArgumentParser(description=__doc__.split("\n")[0]), OUT_DIR,
                    "folder for first_pass.csv, first_pass.png and the VAD cache")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    frames = []
    for folder in args.corpora:
        frames.append(evaluate(folder, out))
        if args.group_by:
            frames.append(evaluate(folder, out, args.group_by))
    df = pd.concat(frames, ignore_index=True)
    common.write_csv(out / "first_pass.csv", df)
    plot(df, out / "first_pass.png")
    with pd.option_context("display.width", 220, "display.max_rows", 500):
        print(df.to_string(index=False))
    print(f"-> {out / 'first_pass.csv'}, {out / 'first_pass.png'}")


if __name__ == "__main__":
    common.run_main(main)
