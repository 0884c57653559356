"""The report's multi-modal fusion: audio latents + title/artist text + artist one-hot, clustered.

    python analyze_hybrid.py [--data-dir data] [--results-dir results] [--seed 42] [--n-clusters K]

Per segment: the audio model's latents (64), TF-IDF of "title artist" reduced to 32 values by
TruncatedSVD (PCA without centring, the usual choice for sparse TF-IDF), and a one-hot of the 20
most frequent artists (an artist outside them is all zeros); each block standardized on its own,
concatenated (116 values), then K-Means. One row per audio model (cvae as in the report, then
vae and autoencoder; a missing one is skipped with a line) and a row for text + artist alone.
Title and artist are not the label but can stand in for it (no artist sings in both languages),
so every row here has uses_metadata True. Labels are optional: every segment is clustered, the
labelled ones are scored; a missing title or artist is an empty string.
Writes results/metrics/hybrid_metrics.csv,
results/clusters/<method>.csv and results/figures/<method>_*.png; then REPORT.md.
"""
import argparse
import time

import numpy as np
import pandas as pd
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import StandardScaler

import common
import metrics
import plots
import report
import training

# ----------------------------------------------------------------------------
SEED = 42  # first K-Means seed (the next N_KMEANS_SEEDS - 1 follow), SVD, t-SNE and sample seed
AUDIO_MODELS = ["cvae", "vae", "autoencoder"]  # whose latents are fused; cvae first, as in the report
TEXT_DIMS = 32  # TF-IDF of title + artist reduced to this many values
TOP_ARTISTS = 20  # one-hot columns: the most frequent artists by segment count
# words in any script; Bangla vowel signs are not \w in Python, so the Bengali block is added
TFIDF_TOKEN_PATTERN = r"(?u)[\w\u0980-\u09FF]+"
METRICS_FILE = "hybrid_metrics.csv"  # in results/metrics/


def text_block(segments, seed):
    """TF-IDF of title + artist, reduced by TruncatedSVD to at most TEXT_DIMS values."""
    text = (segments["title"].fillna("").astype(str) + " " + segments["artist"].fillna("").astype(str))
    try:
        tfidf = TfidfVectorizer(token_pattern=TFIDF_TOKEN_PATTERN).fit_transform(text)
    except ValueError:  # no words at all (empty titles and artists)
        return np.zeros((len(segments), 0), dtype=np.float32)
    dims = min(TEXT_DIMS, tfidf.shape[1] - 1, len(segments) - 1)
    if dims < 1:
        return tfidf.toarray().astype(np.float32)
    return TruncatedSVD(n_components=dims, random_state=seed).fit_transform(tfidf).astype(np.float32)


def artist_block(segments):
    """One-hot of the TOP_ARTISTS most frequent artists (ties broken by name, for determinism)."""
    artists = segments["artist"].fillna("").astype(str)
    counts = artists.value_counts()
    top = sorted(counts.index, key=lambda a: (-counts[a], a))[:TOP_ARTISTS]
    return (artists.to_numpy()[:, None] == np.array(top)[None, :]).astype(np.float32)


def standardize(block):
    if block.shape[1] == 0:
        return block
    return StandardScaler().fit_transform(block).astype(np.float32)


@metrics.limited_threads
def analyze(data_dir, results_dir, seed=SEED, audio_models=AUDIO_MODELS, n_clusters=None):
    t0 = time.time()
    common.seed_everything(seed)
    mfcc, segments = common.load_features(data_dir)
    k = metrics.n_clusters(segments, n_clusters)
    metrics.check_labels(segments, k, common.segments_path(data_dir))
    n = len(segments)
    print(metrics.silhouette_note(n))
    text, artist = standardize(text_block(segments, seed)), standardize(artist_block(segments))
    meta_desc = (f"title/artist TF-IDF→TruncatedSVD ({text.shape[1]}) + top-{TOP_ARTISTS} artist "
                 f"one-hot ({artist.shape[1]})")
    all_rows, n_figures = [], 0

    def run(method, features, desc, uses_labels):
        nonlocal n_figures
        rows, assignments = metrics.evaluate(method, features, segments, desc, uses_labels, results_dir, seed,
                                             extra={"uses_metadata": True}, k=k)
        all_rows.append(rows)
        common.write_csv(common.metrics_dir(results_dir) / METRICS_FILE, pd.concat(all_rows, ignore_index=True))
        n_figures += len(plots.method_figures(method, features, desc, segments, assignments, seed, results_dir))

    for model in audio_models:
        z = training.load_latents(data_dir, results_dir, model, n)
        if z is None:
            continue
        fused = np.hstack([standardize(z), text, artist])
        desc = f"{model} latents ({z.shape[1]}) + {meta_desc}, each standardized = {fused.shape[1]}-d"
        run(f"hybrid_{model}", fused, desc, training.model_uses_labels(results_dir, model))
    meta = np.hstack([text, artist])
    run("text_artist", meta, f"{meta_desc}, each standardized = {meta.shape[1]}-d (no audio)", False)

    n_figures += plots.comparison_from_results(results_dir, metrics.majority_rate(segments["language"])) is not None
    print(f"metrics: {common.metrics_dir(results_dir) / METRICS_FILE} ({len(all_rows)} methods); "
          f"{n_figures} figures in {common.figures_dir(results_dir)}")
    report.record_command(results_dir, __file__, data_dir, seed,
                          [*(["--models", *audio_models] if list(audio_models) != AUDIO_MODELS else []),
                           *(["--n-clusters", n_clusters] if n_clusters is not None else [])])
    path = report.write_report(data_dir, results_dir)
    print(f"report: {path}  ({time.time() - t0:.0f} s)")
    return pd.concat(all_rows, ignore_index=True)


def main():
    parser = common.add_dir_args(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--seed", type=common.seed_value, default=SEED, help="first K-Means seed; also SVD, t-SNE and sampling")
    parser.add_argument("--models", nargs="*", default=AUDIO_MODELS,
                        help="audio models whose latents are fused with the metadata, one row each")
    parser.add_argument("--n-clusters", type=int, default=None, help=metrics.N_CLUSTERS_HELP)
    args = parser.parse_args()
    analyze(args.data_dir, args.results_dir, args.seed, args.models, args.n_clusters)


if __name__ == "__main__":
    common.run_main(main)
