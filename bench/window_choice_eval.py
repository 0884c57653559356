"""How many Whisper windows a song needs: language accuracy against windows per song, by window choice.

    python bench/window_choice_eval.py /work/cache/val/*/          # every corpus folder given
    python bench/window_choice_eval.py corpusA corpusB --out results/window_choice

A corpus folder holds data/ (or is it): audio/<song_id>.wav, features/segments.csv (song_id, start_s,
language) and features/whisper_lang.npy (+ .json with "languages"), Whisper's log posteriors for
EVERY segment. For N in WINDOW_COUNTS (and all) each song keeps N windows, chosen by
  vad     whisper_features.window_scores + choose_windows (what build_features would run),
  vad_mean  the same with the mean speech probability as the score (the alternative not taken),
  first   the first N windows,
  random  N windows drawn at random (RANDOM_SEEDS seeds, averaged),
its log posteriors floored at whisper_features.POOL_FLOOR are averaged over those windows only
(analyze_language's song rows), and two answers are scored per song against its language:
  kmeans  K-Means on the songs (k = the corpus's languages; centred, PCA as analyze_language.song_rows
          does), one-to-one matched accuracy (metrics.acc), averaged over KMEANS_SEEDS;
  argmax  the pooled posterior's top language is the language's Whisper code (all 99 / only the
          corpus's languages: argmax_in_corpus).
Songs of real libraries hold 6-10 windows, the validation corpora's 2-4: so each corpus is scored
twice, as it is and as pseudo-songs (an artist's songs chained into groups of >= MIN_WINDOWS windows:
one singer, one language), where choosing few windows matters.
Writes <out>/window_choice.csv and <out>/window_choice.png (accuracy against windows per song, one line
per corpus and choice). Reads labels: an evaluation, not part of the pipeline.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import analyze_language as al  # noqa: E402
import common  # noqa: E402
import languages  # noqa: E402
import metrics  # noqa: E402
import whisper_features as wf  # noqa: E402

# ----------------------------------------------------------------------------
WINDOW_COUNTS = (1, 2, 3, 4, 6)  # windows per song tried, besides all of them
RANDOM_SEEDS = (0, 1, 2, 3, 4)  # the random choice is averaged over these
KMEANS_SEEDS = (0, 1, 2, 3, 4)  # the PCA and K-Means are redrawn with each; their accuracies averaged
KMEANS_N_INIT = 10  # K-Means restarts
CHOICES = ("vad", "vad_mean", "first", "random")  # how a song's windows are chosen (see above)
OUT_DIR = "results/window_choice"  # where the CSV, the figure and the VAD scores (cached) go
GROUP_BY = "artist"  # pseudo-songs: an artist's songs chained, as long as a real library's songs
MIN_WINDOWS = 6  # windows a pseudo-song holds at least (real songs: 6-10; the validation corpora's: 2-4)
def corpus_data_dir(folder):
    folder = Path(folder)
    return folder / "data" if (folder / "data" / "features").is_dir() else folder


def whisper_code(language, codes):
    """A label's code among Whisper's `codes` ('bangla' -> 'bn'), matched through ISO 639
    (languages.label_code, langcodes; Whisper's 'jw' is ISO 'jv'), else the label itself."""
    code = languages.label_code(language)
    by_iso = {languages.iso_code(c): c for c in codes}
    return by_iso.get(code, code or str(language).lower())


def load_corpus(folder):
    """(segments with their rows in whisper_lang.npy, log posteriors, language codes, data dir)."""
    data = corpus_data_dir(folder)
    seg = pd.read_csv(common.segments_path(data), dtype={"song_id": str})
    feat = common.features_dir(data)
    logp = np.load(feat / "whisper_lang.npy")
    codes = [str(c) for c in json.loads((feat / "whisper_lang.json").read_text())["languages"]]
    if len(logp) != len(seg) or logp.shape[1] != len(codes):
        raise common.PipelineError(f"{feat}: whisper_lang.npy {logp.shape} does not match segments.csv "
                                   f"({len(seg)} rows) and its {len(codes)} languages")
    return seg.reset_index(drop=True), logp, codes, data


def vad_scores(seg, data):
    """{"vad": {song_id: window_scores of its segments, in segments.csv order}, "vad_mean": the same
    with the mean speech probability as the score}, and the seconds the VAD took."""
    import time
    import soundfile as sf
    out, seconds = {"vad": {}, "vad_mean": {}}, 0.0
    for song, g in seg.groupby("song_id", sort=False):
        y, sr = sf.read(str(common.audio_path(data, song)), dtype="float32", always_2d=True)
        y = wf.to_whisper_rate(y.mean(axis=1), sr)
        t0 = time.perf_counter()
        prob, valid = wf.window_speech(y, g["start_s"].to_numpy())
        seconds += time.perf_counter() - t0
        out["vad"][song] = ((prob > wf.VAD_THRESHOLD) & valid).mean(axis=1)  # = window_scores
        out["vad_mean"][song] = (prob * valid).mean(axis=1)
    return out, seconds


def choose(choice, scores, n, rng):
    """Indices (into the song's windows) that `choice` keeps, n = 0 meaning all."""
    m = len(scores)
    if n <= 0 or n >= m:
        return np.arange(m)
    if choice.startswith("vad"):
        return wf.choose_windows(scores, n)
    if choice == "first":
        return np.arange(n)
    return np.sort(rng.choice(m, size=n, replace=False))


def score_choice(pooled, labels, codes, corpus_codes):
    """(kmeans matched accuracy, argmax accuracy over all languages, over the corpus's languages)."""
    from sklearn.cluster import KMeans
    k = len(set(labels))
    km_acc = []
    for seed in KMEANS_SEEDS:
        z = al.cluster_view(pooled, seed, standardize=False)  # centred, PCA: analyze_language's view
        km = KMeans(n_clusters=min(k, len(pooled)), n_init=KMEANS_N_INIT, random_state=seed).fit(z)
        km_acc.append(metrics.acc(labels, km.labels_))
    truth = np.array([whisper_code(lab, codes) for lab in labels])
    top = np.array(codes)[pooled.argmax(axis=1)]
    cols = [codes.index(c) for c in corpus_codes if c in codes]
    top_in = np.array(codes)[np.array(cols)[pooled[:, cols].argmax(axis=1)]] if cols else top
    return float(np.mean(km_acc)), float(np.mean(top == truth)), float(np.mean(top_in == truth))


def pseudo_songs(seg, rows_of, column, min_windows):
    """Longer 'songs' for libraries whose songs have more windows than the validation corpora's:
    each value of `column` (e.g. artist: one singer, one language) chains its songs, in order, into
    groups of at least min_windows windows (a short remainder joins the last group)."""
    groups = {}
    for value, g in seg.groupby(column, sort=True):
        chunk, chunks = [], []
        for s in g["song_id"].unique():
            chunk.append(s)
            if sum(len(rows_of[x]) for x in chunk) >= min_windows:
                chunks.append(chunk)
                chunk = []
        if chunk:
            if chunks:
                chunks[-1] += chunk
            else:
                chunks.append(chunk)
        for j, c in enumerate(chunks):
            groups[f"{value}#{j}"] = c
    return groups


def cached_vad_scores(seg, data, cache):
    """vad_scores, kept in `cache` (.npz) between runs of this script for the same segments."""
    key = json.dumps([wf.choice_config(1), seg["song_id"].tolist(), seg["start_s"].tolist()])
    if cache.exists():
        with np.load(cache, allow_pickle=False) as z:
            if str(z["key"]) == key:
                return {c: {s: z[f"{c}|{s}"] for s in seg["song_id"].unique()} for c in ("vad", "vad_mean")}, None
    scores, seconds = vad_scores(seg, data)
    cache.parent.mkdir(parents=True, exist_ok=True)
    with common.atomic_path(cache) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, key=np.array(key), **{f"{c}|{s}": v for c, d in scores.items() for s, v in d.items()})
    return scores, seconds


def evaluate(folder, name, out_dir, group_by=None, min_windows=6):
    seg, logp, codes, data = load_corpus(folder)
    floored = np.maximum(logp, np.log(wf.POOL_FLOOR))
    rows_of = {s: np.flatnonzero(seg["song_id"].to_numpy() == s) for s in seg["song_id"].unique()}
    scores, vad_s = cached_vad_scores(seg, data, Path(out_dir) / f"vad_{name}.npz")
    n_windows = len(seg)
    if vad_s is not None:
        print(f"{name}: VAD {vad_s / n_windows * 1000:.1f} ms a window ({n_windows} windows)")
    if group_by:  # pseudo-songs: their rows and scores are their songs', in order
        groups = pseudo_songs(seg, rows_of, group_by, min_windows)
        scores = {c: {gid: np.concatenate([d[s] for s in members]) for gid, members in groups.items()}
                  for c, d in scores.items()}
        rows_of = {gid: np.concatenate([rows_of[s] for s in members]) for gid, members in groups.items()}
        name = f"{name} by {group_by} (>= {min_windows} windows)"
    songs = list(rows_of)
    labels = [seg["language"].iloc[rows_of[s]].astype(str).mode().iloc[0] for s in songs]
    corpus_codes = sorted({whisper_code(lab, codes) for lab in labels})
    sizes = np.array([len(rows_of[s]) for s in songs])
    print(f"{name}: {len(songs)} songs of {sizes.min()}-{sizes.max()} windows (median {np.median(sizes):g}), "
          f"languages {corpus_codes}")
    out = []
    for n in (*WINDOW_COUNTS, 0):
        for choice in CHOICES:
            seeds = RANDOM_SEEDS if choice == "random" and n else (0,)
            res = []
            for seed in seeds:
                pooled, run = [], 0
                for i, s in enumerate(songs):
                    idx = choose(choice, scores["vad_mean" if choice == "vad_mean" else "vad"][s], n,
                                 np.random.default_rng([seed, i]))
                    pooled.append(floored[rows_of[s][idx]].mean(axis=0))
                    run += len(idx)
                res.append((*score_choice(np.array(pooled), labels, codes, corpus_codes), run / n_windows))
            km, am, ai, frac = np.mean(res, axis=0)
            out.append({"corpus": name, "choice": choice if n else "(all)", "windows_per_song": n if n else "all",
                        "songs": len(songs), "windows": n_windows, "whisper_fraction": round(frac, 4),
                        "kmeans_acc": round(km, 4), "argmax_acc": round(am, 4),
                        "argmax_in_corpus_acc": round(ai, 4), "repeats": len(seeds)})
            if not n:
                break  # every window: the choice does not matter
    return out


def plot(df, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    x_of = {str(n): i for i, n in enumerate((*WINDOW_COUNTS, "all"))}
    styles = {"vad": "-o", "vad_mean": "-.d", "first": "--s", "random": ":^"}
    for ax, col, title in zip(axes, ("kmeans_acc", "argmax_acc"),
                              ("K-Means on songs (matched accuracy)", "argmax of the pooled posterior")):
        for ci, (corpus, g) in enumerate(df.groupby("corpus", sort=False)):
            full = g[g["windows_per_song"].astype(str) == "all"][col].iloc[0]
            for choice in CHOICES:
                h = g[(g["choice"] == choice) | (g["windows_per_song"].astype(str) == "all")]
                xs = [x_of[str(n)] for n in h["windows_per_song"]]
                ax.plot(xs, h[col], styles[choice], color=f"C{ci}", label=f"{corpus}, {choice}", alpha=0.85)
            ax.axhline(full - 0.01, color=f"C{ci}", lw=0.6, alpha=0.4)
        ax.set_xticks(range(len(x_of)), list(x_of))
        ax.set_xlabel("Whisper windows per song")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (songs)")
    axes[1].legend(fontsize=7, loc="lower right")
    fig.suptitle("Window choice: accuracy against Whisper windows per song (thin line: all windows - 0.01)",
                 fontsize=10)
    save_figure(fig, path)


def save_figure(fig, path):
    """An evaluation's figure, written atomically (dpi 110, as the pipeline's) and closed."""
    import matplotlib.pyplot as plt
    fig.tight_layout()
    with common.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def corpus_args(p, out_default, out_help):
    """The arguments every corpus evaluation here takes: the corpora, --out, --group-by."""
    p.add_argument("corpora", nargs="+", help="corpus folders (each with data/ or audio/ + features/)")
    p.add_argument("--out", default=out_default, help=out_help)
    p.add_argument("--group-by", default=GROUP_BY,
                   help="also score pseudo-songs: songs sharing this segments.csv column chained ('' = off)")
    return p


def main():
    p = corpus_args(argparse.ArgumentParser(description=__doc__.split("\n")[0]), OUT_DIR,
                    "folder for window_choice.csv and window_choice.png")
    p.add_argument("--min-windows", type=int, default=MIN_WINDOWS, help="windows a pseudo-song holds at least")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for folder in args.corpora:
        name = Path(folder.rstrip("/")).name
        rows += evaluate(folder, name, out)
        if args.group_by:
            rows += evaluate(folder, name, out, args.group_by, args.min_windows)
    df = pd.DataFrame(rows)
    common.write_csv(out / "window_choice.csv", df)
    plot(df, out / "window_choice.png")
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        print(df.drop(columns=["repeats"]).to_string(index=False))
    print(f"-> {out / 'window_choice.csv'}, {out / 'window_choice.png'}")


if __name__ == "__main__":
    common.run_main(main)
