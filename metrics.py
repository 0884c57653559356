"""Clustering metrics and the K-Means runs behind every metrics row, in one place.

Used by analyze_vae.py, analyze_advanced.py, analyze_hybrid.py and analyze_language.py; tested in
tests/test_metrics.py. Nothing here is a script, and nothing here reads a file: the scores are pure
functions of arrays (as in mir_eval); reading checkpoints and latents is training.py's, naming methods
and reading the metrics files back is tables.py's.

Labels are optional: a segment whose language is empty (NaN once read) is unlabelled. Every
K-Means clusters every segment; the label metrics (nmi, ari, purity, acc) are computed on the
labelled segments only (`n_scored` says how many) and left empty (NaN) when fewer than two
languages are labelled; silhouette needs no label and is always computed, on every segment.

Metrics (all take the true languages and the cluster ids of the same segments):
  silhouette  Euclidean, on the very features that were clustered
  nmi, ari    scikit-learn's (NMI with the arithmetic mean: 2 I(Y;C) / (H(Y) + H(C)))
  purity      sum over clusters of the cluster's majority-language count, over N
  acc         accuracy after the best one-to-one matching of clusters to languages
              (Hungarian); a cluster left without a language counts as wrong
Purity alone misleads: when every cluster's majority is the same language, purity equals
the majority-class rate whatever the clustering does; acc does not.
"""
import functools

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, silhouette_score
from sklearn.metrics.pairwise import euclidean_distances
from threadpoolctl import threadpool_limits  # installed with scikit-learn

import common
from common import METRIC_COLUMNS, PipelineError

# ----------------------------------------------------------------------------
# K-Means
N_KMEANS_SEEDS = 5  # every K-Means result is the mean and std over this many seeds
KMEANS_N_INIT = 10  # restarts inside one K-Means run (the best inertia wins)
# on a busy 2-core machine more BLAS/OpenMP threads spin-wait on each other: 5 K-Means runs on
# 40 segments took 16 s with the default threads and 0.3 s with one
THREADS = 1  # threads for K-Means, PCA, t-SNE and distances in the analyze scripts
# ----------------------------------------------------------------------------
# silhouette
SILHOUETTE_MAX_POINTS = 6000  # up to here: exact, from one distance matrix per feature set
# (6000^2 float32 = 144 MB); above it: a seeded sample of this many segments, same for every seed
# ----------------------------------------------------------------------------
# clusters and labels
N_LANGUAGES = 2  # clusters K-Means finds (--n-clusters); the labels' count only if every segment has one
PRETRAINED = "none"  # the `pretrained` family of every method here: made from this corpus alone
N_CLUSTERS_HELP = (f"clusters K-Means finds (default: the number of languages if every segment is labelled, "
                   f"else N_LANGUAGES = {N_LANGUAGES})")  # the analyze scripts' --n-clusters
# ----------------------------------------------------------------------------
# names
METRIC_NAMES = ["silhouette", "nmi", "ari", "purity", "acc"]  # the metric columns, in table order
LABEL_METRICS = ["nmi", "ari", "purity", "acc"]  # the ones that read the labels (empty without)

# ----------------------------------------------------------------------------
# the metrics
def _codes(values):
    """Map any labels (strings, ints) to 0..n-1; returns (codes, the distinct values)."""
    uniques, codes = np.unique(np.asarray(values).astype(str), return_inverse=True)
    return codes, uniques


def contingency(labels, clusters):
    """Counts table, rows = clusters, columns = languages; plus both value lists."""
    lc, lv = _codes(labels)
    cc, cv = _codes(clusters)
    table = np.zeros((len(cv), len(lv)), dtype=np.int64)
    np.add.at(table, (cc, lc), 1)
    return table, cv, lv


def purity(labels, clusters):
    table, _, _ = contingency(labels, clusters)
    return float(table.max(axis=1).sum() / table.sum())


def matching(labels, clusters):
    """Best one-to-one matching of clusters to languages: {cluster value: language}."""
    table, cv, lv = contingency(labels, clusters)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return {cv[r]: lv[c] for r, c in zip(rows, cols)}


def acc(labels, clusters):
    """Accuracy after the Hungarian matching; works for k != number of languages."""
    table, _, _ = contingency(labels, clusters)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / table.sum())


def majority_rate(labels):
    """Share of the most common language among the labelled segments: what 'everything in one
    cluster' scores on purity. NaN when no segment is labelled."""
    labels = np.asarray(labels, dtype=object)[labelled_mask(labels)]
    if not len(labels):
        return float("nan")
    _, counts = np.unique(labels.astype(str), return_counts=True)
    return float(counts.max() / counts.sum())


def nmi(labels, clusters):
    """Normalized mutual information, arithmetic mean of the entropies (scikit-learn's default and
    its conventions: 1 when both sides hold one value, 0 when the information is 0). From the
    contingency table in numpy: scikit-learn's input checks cost ~5 ms a call, and the confound
    table makes thousands of calls."""
    table, cv, lv = contingency(labels, clusters)
    if len(cv) == len(lv) == 1 or table.sum() == 0:
        return 1.0
    p = table / table.sum()
    pc, pl = p.sum(axis=1), p.sum(axis=0)
    nz = p > 0
    mi = float(np.sum(p[nz] * np.log(p[nz] / np.outer(pc, pl)[nz])))
    if mi <= 0:
        return 0.0
    h = -np.sum(pc * np.log(pc)) - np.sum(pl * np.log(pl))
    return float(mi / max(h / 2, np.finfo(float).eps))


def ari(labels, clusters):
    return float(adjusted_rand_score(_codes(labels)[0], _codes(clusters)[0]))


def distance_matrix(features):
    """Euclidean distances, computed once per feature set and shared by every seed's
    silhouette; None when there are too many segments (then silhouette samples)."""
    if len(features) > SILHOUETTE_MAX_POINTS:
        return None
    x = np.asarray(features, dtype=np.float32)
    return euclidean_distances(x, x).astype(np.float32)


def silhouette_sample(n, seed=0):
    """Indices the silhouette uses: all segments, or a seeded sample for large corpora."""
    if n <= SILHOUETTE_MAX_POINTS:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, SILHOUETTE_MAX_POINTS, replace=False))


def silhouette_note(n):
    """One line saying how the silhouette was computed for n segments."""
    if n <= SILHOUETTE_MAX_POINTS:
        return f"silhouette: exact over all {n} segments (one Euclidean distance matrix per feature set)"
    return (f"silhouette: on a seeded sample of {SILHOUETTE_MAX_POINTS} of {n} segments "
            f"(SILHOUETTE_MAX_POINTS; the same sample for every K-Means seed)")


def silhouette(features, clusters, distances=None, sample_seed=0):
    """Mean silhouette (Euclidean) on the clustered features; NaN when there is one cluster.

    distances: the matrix from distance_matrix(features), to avoid recomputing it per seed.
    """
    clusters = np.asarray(clusters)
    if distances is not None:
        if len(np.unique(clusters)) < 2 or len(np.unique(clusters)) >= len(clusters):
            return float("nan")
        return float(silhouette_score(distances, clusters, metric="precomputed"))
    idx = silhouette_sample(len(clusters), sample_seed)
    x, c = np.asarray(features[idx], dtype=np.float32), clusters[idx]
    if len(np.unique(c)) < 2 or len(np.unique(c)) >= len(c):
        return float("nan")
    return float(silhouette_score(x, c, metric="euclidean"))


def score(features, labels, clusters, distances=None, sample_seed=0):
    """Every metric for one clustering, as a dict keyed by METRIC_NAMES (every segment labelled)."""
    return {
        "silhouette": silhouette(features, clusters, distances, sample_seed),
        "nmi": nmi(labels, clusters),
        "ari": ari(labels, clusters),
        "purity": purity(labels, clusters),
        "acc": acc(labels, clusters),
    }


def score_labelled(features, labels, clusters, distances=None, sample_seed=0):
    """Every metric of one clustering of every segment, where only some segments may be labelled.

    silhouette: on every segment (label-free). nmi, ari, purity, acc: on the labelled segments
    only, NaN (an empty CSV cell) when fewer than two languages are labelled: a score against one
    language, or against a placeholder, would read as a result. Adds n_scored, the segments the
    label metrics were computed on (0 when they are NaN).
    """
    clusters = np.asarray(clusters)
    mask = labelled_mask(labels)
    m = {"silhouette": silhouette(features, clusters, distances, sample_seed)}
    known = np.asarray(labels, dtype=object)[mask].astype(str)
    if len(set(known)) >= 2:
        m.update({name: fn(known, clusters[mask]) for name, fn in
                  (("nmi", nmi), ("ari", ari), ("purity", purity), ("acc", acc))})
        m["n_scored"] = int(mask.sum())
    else:
        m.update({name: float("nan") for name in LABEL_METRICS})
        m["n_scored"] = 0
    return m


def fmt_metric(value, digits=4):
    """A metric for a console line or a table: '-' for an empty (NaN) cell."""
    return "-" if value is None or pd.isna(value) else f"{value:.{digits}f}"


# ----------------------------------------------------------------------------
# inputs
def labelled_mask(languages):
    """True where a segment has a language. `languages`: segments (a DataFrame with a language
    column) or the column itself; an empty cell (NaN once read, "nan" once made text) or blank
    text means unlabelled."""
    if isinstance(languages, pd.DataFrame):
        languages = languages["language"]
    lang = pd.Series(np.asarray(languages, dtype=object))
    text = lang.astype(str).str.strip()
    return (lang.notna() & text.ne("") & text.str.lower().ne("nan")).to_numpy()


def labelled_languages(languages):
    """The distinct languages of the labelled segments, sorted."""
    if isinstance(languages, pd.DataFrame):
        languages = languages["language"]
    values = np.asarray(languages, dtype=object)
    return sorted(set(values[labelled_mask(values)].astype(str)))


def n_clusters(segments, override=None):
    """K for every K-Means: `override` (the --n-clusters flag) if set; else the number of
    languages when every segment has one and there are at least two; else N_LANGUAGES."""
    if override is not None:
        if int(override) < 2:
            raise PipelineError(f"--n-clusters {override}: clustering needs at least 2 clusters")
        return int(override)
    langs = labelled_languages(segments)
    if labelled_mask(segments).all() and len(langs) >= 2:
        return len(langs)
    return N_LANGUAGES


def check_labels(segments, k, source="segments.csv"):
    """Say what the labels allow (every segment is clustered; the labelled ones are scored) and
    stop only when there are fewer segments than clusters. Returns the labelled languages."""
    if len(segments) < k:
        raise PipelineError(f"{source} holds {len(segments)} segments, fewer than the {k} clusters asked "
                            f"for: add songs and rebuild the dataset, or lower --n-clusters")
    mask = labelled_mask(segments)
    langs = labelled_languages(segments)
    songs = segments["song_id"].astype(str) if "song_id" in segments else pd.Series(np.arange(len(segments)))
    labelled_songs = songs[mask].nunique()
    if not mask.any():
        what = "no labels were given: every segment is clustered, none is scored (the metric cells stay empty)"
    elif len(langs) < 2:
        what = (f"{mask.sum()} of {len(mask)} segments are labelled, all {langs[0]}: scoring needs two "
                f"languages, so the metric cells stay empty")
    else:
        what = (f"{mask.sum()} of {len(mask)} segments ({labelled_songs} of {songs.nunique()} songs) labelled "
                f"({', '.join(langs)}): every segment is clustered, the labelled ones are scored")
    print(f"k = {k} clusters; {what}")
    return langs


# ----------------------------------------------------------------------------
# K-Means over seeds
def limited_threads(fn):
    """Decorator: run fn with at most THREADS BLAS/OpenMP threads."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with threadpool_limits(limits=THREADS):
            return fn(*args, **kwargs)
    return wrapper


def kmeans(features, k, seed, n_init=KMEANS_N_INIT):
    return KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit_predict(features)


def kmeans_seeds(seed, n_seeds=N_KMEANS_SEEDS):
    return [seed + i for i in range(n_seeds)]


@limited_threads
def cluster_and_score(features, labels, method, features_desc, uses_labels, seed,
                      n_seeds=N_KMEANS_SEEDS, k=None):
    """K-Means of every segment (k from n_clusters unless given) for n_seeds seeds from `seed`,
    scored on the labelled segments (score_labelled).

    Returns (rows, assignments): rows a DataFrame with exactly METRIC_COLUMNS, one per seed;
    assignments {kmeans seed: cluster ids (N,)}.
    """
    labels = np.asarray(labels, dtype=object)
    features = np.asarray(features, dtype=np.float32)
    k = k or n_clusters(labels)
    distances = distance_matrix(features)
    rows, assignments = [], {}
    for s in kmeans_seeds(seed, n_seeds):
        clusters = kmeans(features, k, s)
        assignments[s] = clusters
        m = score_labelled(features, labels, clusters, distances, sample_seed=seed)
        rows.append({"method": method, "features": features_desc, "uses_labels": bool(uses_labels),
                     "pretrained": PRETRAINED, **m, "n_segments": len(labels), "seed": s})
    return pd.DataFrame(rows, columns=METRIC_COLUMNS), assignments


def clusters_frame(segment_ids, assignments):
    """Long format for results/clusters/<method>.csv: segment_id, seed, cluster."""
    parts = [pd.DataFrame({"segment_id": np.asarray(segment_ids), "seed": s, "cluster": c})
             for s, c in assignments.items()]
    return pd.concat(parts, ignore_index=True)


def evaluate(method, features, segments, features_desc, uses_labels, results_dir, seed,
             n_seeds=N_KMEANS_SEEDS, extra=None, clusters_name=None, k=None):
    """cluster_and_score, then write results/clusters/<clusters_name or method>.csv; print the mean line.

    extra: {column: value} appended to every row (e.g. uses_metadata for the hybrids).
    k: clusters (default: n_clusters(segments)). Returns (rows, assignments).
    """
    rows, assignments = cluster_and_score(features, segments["language"], method, features_desc,
                                          uses_labels, seed, n_seeds, k=k)
    for col, value in (extra or {}).items():
        rows[col] = value
    common.write_csv(common.clusters_path(results_dir, clusters_name or method),
                     clusters_frame(segments["segment_id"], assignments))
    means = rows[METRIC_NAMES].astype(float).mean()
    print(f"{clusters_name or method:<20s} " + "  ".join(f"{m} {fmt_metric(means[m])}" for m in METRIC_NAMES)
          + f"  (mean of {n_seeds} K-Means seeds; {int(rows['n_scored'].iloc[0])} labelled segments scored)")
    return rows, assignments


def summarize(rows):
    """Mean and sample std (ddof=1) over seeds per method, in the order methods appear: over every
    row, so for a model trained with several seeds over model seeds x K-Means seeds. With a
    model_seed column: n_model_seeds, acc_model_std (std over model seeds of each seed's mean acc)
    and, where the rows say (VaDE), collapsed_fraction."""
    rows = pd.DataFrame(rows)
    keys = [c for c in ["method", "features", "uses_labels", "pretrained", "uses_metadata", "n_segments",
                        "n_scored", "metrics_file"] if c in rows.columns]
    out = []
    for method, g in rows.groupby("method", sort=False):
        r = {k: g[k].iloc[0] for k in keys}
        r["n_seeds"] = len(g)
        for m in METRIC_NAMES:  # NaN cells (nothing scored) are skipped; all NaN gives NaN
            values = pd.to_numeric(g[m], errors="coerce")
            r[f"{m}_mean"] = float(values.mean())
            r[f"{m}_std"] = float(values.std(ddof=1)) if values.notna().sum() > 1 else float("nan")
        if "model_seed" in g and g["model_seed"].notna().any():
            per_seed = g.groupby("model_seed")["acc"].mean()
            r["n_model_seeds"] = len(per_seed)
            r["acc_model_std"] = float(per_seed.std(ddof=1)) if len(per_seed) > 1 else float("nan")
        if "collapsed" in g and g["collapsed"].notna().any():
            r["collapsed_fraction"] = float(g["collapsed"].astype(bool).mean())
        out.append(r)
    return pd.DataFrame(out)
