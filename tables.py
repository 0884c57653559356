"""What the report and its figures call things, and reading the metrics files back into one table.

Used by report.py and plots.py (the comparison chart). Nothing here is a script, and nothing here
computes a score (metrics.py does): it names methods (METHOD_TITLES, method_title), orders them as
the report's Table 5.1 does (REPORT_METHODS, method_rank), and reads every results/metrics/*.csv
(read_metrics).
"""
import pandas as pd

import common
from common import METRIC_COLUMNS
from metrics import PRETRAINED

# ----------------------------------------------------------------------------
# names
# how each method is called in tables and figure titles (the report's Table 5.1 names)
METHOD_TITLES = {
    "pca_kmeans": "PCA + K-Means",
    "mfcc_kmeans": "K-Means on raw MFCC",
    "vae": "VAE + K-Means",
    "autoencoder": "Autoencoder + K-Means",
    "cvae": "CVAE + K-Means",
    "beta_vae": "Beta-VAE + K-Means",
    "hybrid_cvae": "Multi-Modal (CVAE+Text+Artist)",
    "hybrid_vae": "Multi-Modal (VAE+Text+Artist)",
    "hybrid_autoencoder": "Multi-Modal (Autoencoder+Text+Artist)",
    "hybrid_beta_vae": "Multi-Modal (Beta-VAE+Text+Artist)",
    "text_artist": "Text+Artist only (no audio)",
    "beta_vae_uncond": "Beta-VAE (no label) + K-Means",
    "pooled_vae": "Time-pooled VAE + K-Means",
    "pooled_ae": "Time-pooled Autoencoder + K-Means",
    "vade": "VaDE, clusters from q(c|x)",
}


def method_title(method):
    if method in METHOD_TITLES:
        return METHOD_TITLES[method]
    if common.vade_features(method) is not None:  # "vade" itself is in METHOD_TITLES
        return f"VaDE on {common.vade_features(method)}, clusters from q(c|x)"
    if method.startswith("hybrid_"):
        return f"Multi-Modal ({method[len('hybrid_'):]}+Text+Artist)"
    # analyze_language.py's methods: <set>_kmeans, <set>_merge
    if method.endswith("_kmeans"):
        return f"{method[:-len('_kmeans')]} + K-Means"
    if method.endswith("_merge"):
        return f"{method[:-len('_merge')]}: singer clusters merged per language"
    if method.endswith("_songs"):
        return f"{method[:-len('_songs')]} per song + K-Means on songs"
    if method == "whisper_lid_reference":
        return "Whisper's own language ID (reference, told the languages)"
    if method == "whisper_named":
        return "Whisper names the languages, songs placed among them"
    return f"{method} + K-Means"


# ----------------------------------------------------------------------------
# reading the metrics back (report.py, the comparison chart)
# results/metrics/ files that hold no metrics rows (analyze_language.py's): read_metrics skips them
NOT_METRICS_FILES = {common.PROBES_FILE, common.CONFOUNDS_FILE, common.DECLARED_FILE, common.LANGUAGE_CLUSTERS_FILE,
                     common.LANGUAGE_COUNT_FILE}
METRICS_FILES = ["vae_metrics.csv", "advanced_metrics.csv", "hybrid_metrics.csv"]  # pipeline order
# the report's Table 5.1 rows, in its order; other methods follow
REPORT_METHODS = ["pca_kmeans", "mfcc_kmeans", "vae", "autoencoder", "cvae", "beta_vae", "hybrid_cvae"]


ADDED_METHODS = ["hybrid_vae", "hybrid_autoencoder", "hybrid_beta_vae", "text_artist"]  # then the rest
# columns a metrics file written before they existed may lack: {column: its value from the row}
OPTIONAL_COLUMNS = {
    "pretrained": lambda df: PRETRAINED,
    "n_scored": lambda df: df["n_segments"].where(pd.to_numeric(df["acc"], errors="coerce").notna(), 0),
}


def method_rank(method):
    order = REPORT_METHODS + ADDED_METHODS
    return (order.index(method), "") if method in order else (len(order), method)


def read_metrics(results_dir):
    """Every results/metrics/*.csv as one DataFrame (None if there is none), methods in the
    report's order. A method in two files (vae: analyze_vae.py and analyze_advanced.py) keeps
    the rows of the later file in pipeline order."""
    d = common.metrics_dir(results_dir)
    if not d.exists():
        return None
    files = [d / f for f in METRICS_FILES if (d / f).exists()]
    files += sorted(p for p in d.glob("*.csv") if p.name not in set(METRICS_FILES) | NOT_METRICS_FILES)
    by_method = {}
    for f in files:
        df = pd.read_csv(f)
        if not set(METRIC_COLUMNS) - set(OPTIONAL_COLUMNS) <= set(df.columns):
            print(f"note: {f} lacks the metrics columns; left out")
            continue
        for col, default in OPTIONAL_COLUMNS.items():
            if col not in df or df[col].isna().all():  # an older file, or a column left empty
                df[col] = default(df)
            else:
                df[col] = df[col].fillna(default(df))
        df["metrics_file"] = f.name  # report.py groups its table by where a row came from
        for method, g in df.groupby("method", sort=False):
            by_method[method] = g
    if not by_method:
        return None
    rows = pd.concat([by_method[m] for m in sorted(by_method, key=method_rank)], ignore_index=True)
    if "uses_metadata" in rows:
        rows["uses_metadata"] = rows["uses_metadata"].fillna(False).astype(bool)
    else:
        rows["uses_metadata"] = False
    rows["uses_labels"] = rows["uses_labels"].astype(bool)
    return rows
