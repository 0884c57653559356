"""Find the language: how much of it each representation carries, whether clustering finds it,
and what the clusters follow instead (issue 5, sections 1 and 2).

    python analyze_language.py [--data-dir data] [--results-dir results] [--seed 42] [--sets fg_vtln_bow]

Run after build_dataset.py and build_features.py. Feature sets: the report's representation
(data/features/mfcc.npy flattened, called report_mfcc here) and every data/features/<name>.npy
that build_features.py wrote. For each:
  probe_acc, probe_acc_artist  the supervised ceiling (diagnostics.py): standardize + logistic
                   regression, folds grouped by song, then by artist (the honest one)
  <set>_kmeans     standardize, PCA to CLUSTER_PCA_DIMS, K-Means (k = number of languages) over
                   metrics.N_KMEANS_SEEDS seeds: silhouette, nmi, ari, purity, acc, and per song
                   (majority vote of its segments) song_acc, song_nmi
  <profile>_merge  for each (first stage, profile) pair in MERGES: many K-Means clusters of the
                   first-stage set (segments / OVER_SEGMENTS_PER_CLUSTER of them: a singer's few
                   songs each; fg_bow, which tells singers apart), then merged into one cluster
                   per language by K-Means on their mean profile in a language-sensitive set
                   (fg_vtln_bow: codeword distributions with the singer's voice normalized away),
                   each first-stage cluster weighted by its size
Writes results/metrics/language_metrics.csv (common.METRIC_COLUMNS + probe_acc,
probe_acc_artist, song_acc, song_nmi, uses_metadata), results/metrics/language_probes.csv,
results/clusters/<method>.csv (segment_id, seed, cluster), results/metrics/confounds.csv (NMI of
every method's clusters, this script's and any other results/clusters/*.csv, against the
artist, the segment's position in its song, the VTLN warp and every extra songs.csv column) and
results/figures/confounds_heatmap.png; figures: language_probes.png (every set's probe), the
per-method t-SNE, composition and confusion figures of the best method and of report_mfcc_kmeans,
and methods_comparison.png redrawn with these rows. Nothing but the scores and the probe reads the labels.
"""
import argparse
import time

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

import common
import diagnostics
import metrics
from common import PipelineError

# ----------------------------------------------------------------------------
SEED = 42  # first K-Means seed (the next metrics.N_KMEANS_SEEDS - 1 follow) and PCA seed
CLUSTER_PCA_DIMS = 32  # every set is standardized, then reduced to this many dims for clustering
REPORT_SET = "report_mfcc"  # what the report's representation (mfcc.npy, flattened) is called here
# ----------------------------------------------------------------------------
# many clusters, then merged into one per language
MERGES = (("fg_bow", "fg_vtln_bow"), ("fg_bow", "fg_vtln_bigram"))  # (first-stage set, profile set)
OVER_SEGMENTS_PER_CLUSTER = 8  # first stage k = segments / this
# ----------------------------------------------------------------------------
METRICS_FILE = "language_metrics.csv"  # in results/metrics/
PROBES_FILE = "language_probes.csv"  # in results/metrics/: one row per feature set
CONFOUNDS_FILE = "confounds.csv"  # in results/metrics/: one row per method
HEATMAP_FILE = "confounds_heatmap.png"  # in results/figures/
PROBES_FIGURE = "language_probes.png"  # in results/figures/
EXTRA_COLUMNS = ["probe_acc", "probe_acc_artist", "song_acc", "song_nmi", "uses_metadata"]

SOURCE_WORDS = {"mix": "the mix", "fg": "the REPET-SIM vocal foreground", "bg": "the REPET-SIM background"}
KIND_WORDS = {"stats": "mean+std of cepstra and deltas", "stats_cmn": "mean+std of song-CMN cepstra and deltas",
              "bow": "TF-IDF codeword histogram", "bigram": "TF-IDF unit-bigram histogram"}


def describe(name, dim):
    """Human description of a feature set from its name (build_features.py's naming)."""
    if name == REPORT_SET:
        return f"the report's MFCC (40 x 430, z-scored per segment), flattened ({dim:,}-d)"
    try:
        import build_features
        src, vtln, kind = build_features.parse_name(name)
        return f"{KIND_WORDS[kind]} of {SOURCE_WORDS[src]}{', VTLN-warped' if vtln else ''} ({dim:,}-d)"
    except Exception:
        return f"data/features/{name}.npy ({dim:,}-d)"


def discover_sets(data_dir, n, wanted=None):
    """[(name, path)]: the report's MFCC first, then build_features.py's sets in its order."""
    feat_dir = common.features_dir(data_dir)
    try:
        import build_features
        order = list(build_features.FEATURE_SETS)
    except Exception:
        order = []
    found = sorted(p.stem for p in feat_dir.glob("*.npy") if p.stem != "mfcc")
    names = [REPORT_SET] + [f for f in order if f in found] + [f for f in found if f not in order]
    if wanted:
        missing = [w for w in wanted if w not in names]
        if missing:
            raise PipelineError(f"feature sets {missing} not in {feat_dir}: run `python build_features.py "
                                f"--data-dir {data_dir} --sets {','.join(missing)}`")
        names = [x for x in names if x in wanted]
    out = []
    for name in names:
        path = common.mfcc_path(data_dir) if name == REPORT_SET else feat_dir / f"{name}.npy"
        try:
            shape = np.load(path, mmap_mode="r").shape
        except Exception as e:
            print(f"skipped {name}: {path} is unreadable ({e}); re-run build_features.py")
            continue
        if shape[0] != n:
            print(f"skipped {name}: {path} has {shape[0]} rows but segments.csv has {n}; "
                  f"re-run `python build_features.py --data-dir {data_dir}`")
            continue
        out.append((name, path))
    return out


def cluster_view(x, seed, dims=CLUSTER_PCA_DIMS):
    """Standardize every column, then PCA: the space K-Means and the silhouette work in."""
    z = StandardScaler().fit_transform(np.asarray(x, dtype=np.float32))
    k = min(dims, z.shape[0] - 1, z.shape[1])
    return PCA(n_components=k, svd_solver="randomized", random_state=seed).fit_transform(z).astype(np.float32)


def over_and_merge(z_over, z_profile, k_final, seed, per_cluster=OVER_SEGMENTS_PER_CLUSTER):
    """Many K-Means clusters of z_over, merged into k_final by (size-weighted) K-Means on their
    mean rows of z_profile. Returns (cluster per row, first-stage k)."""
    k = min(max(k_final + 1, len(z_over) // per_cluster), len(z_over))
    over = KMeans(n_clusters=k, n_init=metrics.KMEANS_N_INIT, random_state=seed).fit_predict(z_over)
    used = np.unique(over)
    profiles = np.stack([z_profile[over == c].mean(axis=0) for c in used])
    sizes = np.array([np.sum(over == c) for c in used])
    merged = KMeans(n_clusters=k_final, n_init=metrics.KMEANS_N_INIT,
                    random_state=seed).fit(profiles, sample_weight=sizes).labels_
    return merged[np.searchsorted(used, over)], k


def with_song_scores(rows, assignments, segments, probe):
    """Add song_acc / song_nmi per seed, the probe of the clustered set, uses_metadata."""
    song = [diagnostics.song_scores(assignments[s], segments["song_id"], segments["language"])
            for s in rows["seed"]]
    rows["probe_acc"] = probe["probe_acc"]
    rows["probe_acc_artist"] = probe["probe_acc_artist"]
    rows["song_acc"] = [r["song_acc"] for r in song]
    rows["song_nmi"] = [r["song_nmi"] for r in song]
    rows["uses_metadata"] = False
    return rows


def merge_rows(z_over, z_profile, segments, method, desc, seed):
    """Metrics rows (one per seed) of over_and_merge; the silhouette is taken on z_profile,
    the space of the final decision."""
    labels = segments["language"].astype(str).to_numpy()
    k = len(np.unique(labels))
    distances = metrics.distance_matrix(z_profile)
    rows, assignments = [], {}
    for s in metrics.kmeans_seeds(seed):
        clusters, k_over = over_and_merge(z_over, z_profile, k, s)
        assignments[s] = clusters
        rows.append({"method": method, "features": desc.format(k_over=k_over), "uses_labels": False,
                     **metrics.score(z_profile, labels, clusters, distances, sample_seed=seed),
                     "n_segments": len(labels), "seed": s})
    return pd.DataFrame(rows, columns=common.METRIC_COLUMNS), assignments


def load_cluster_files(results_dir, segments, skip):
    """{method: {seed: clusters}} from every results/clusters/*.csv matching these segments."""
    out = {}
    d = common.clusters_path(results_dir, "x").parent
    ids = segments["segment_id"].astype(str)
    for p in sorted(d.glob("*.csv")) if d.exists() else []:
        if p.stem in skip:
            continue
        try:
            df = pd.read_csv(p, dtype={"segment_id": str})
            if "seed" not in df.columns:
                df["seed"] = 0
            by = {}
            for s, g in df.groupby("seed"):
                g = g.set_index("segment_id")["cluster"]
                if len(g) != len(ids) or not ids.isin(g.index).all():
                    raise ValueError("its segments differ from segments.csv")
                by[int(s)] = g.loc[ids].to_numpy()
            out[p.stem] = by
        except Exception as e:
            print(f"note: {p} left out of the confounds ({e})")
    return out


def confound_table(assignments_by_method, columns):
    rows = []
    for method, by_seed in assignments_by_method.items():
        per_seed = pd.DataFrame([diagnostics.confound_nmi(c, columns) for c in by_seed.values()])
        rows.append({"method": method, "n_seeds": len(by_seed), **per_seed.mean().to_dict()})
    return pd.DataFrame(rows)


def analyze(data_dir, results_dir, seed=SEED, sets=None):
    t0 = time.time()
    common.seed_everything(seed)
    _, segments = common.load_features(data_dir)
    metrics.require_two_languages(segments, common.segments_path(data_dir))
    segments["language"] = segments["language"].astype(str)
    n, labels = len(segments), segments["language"].to_numpy()
    songs_file = common.songs_path(data_dir)
    songs = pd.read_csv(songs_file, dtype={"song_id": str}) if songs_file.exists() else None
    print(f"{n} segments, {segments['song_id'].nunique()} songs, {segments['artist'].nunique()} artists; "
          f"majority-class rate {metrics.majority_rate(labels):.4f}. {metrics.silhouette_note(n)}")

    mdir = common.metrics_dir(results_dir)
    all_rows, probes, assignments_by_method, views = [], {}, {}, {}
    decided_in = {}  # method -> (name of the view its clusters were decided in, description)

    def record(method, rows, assignments, probe, t, view):
        rows = with_song_scores(rows, assignments, segments, probe)
        all_rows.append(rows)
        assignments_by_method[method] = assignments
        decided_in[method] = (view, rows["features"].iloc[0])
        common.write_csv(common.clusters_path(results_dir, method),
                         metrics.clusters_frame(segments["segment_id"], assignments))
        # rewritten after every method: an interrupted run keeps what it finished
        common.write_csv(mdir / METRICS_FILE, pd.concat(all_rows, ignore_index=True))
        m = rows[["acc", "nmi", "song_acc"]].mean()
        print(f"{method:<24s} acc {m['acc']:.4f} ± {rows['acc'].std(ddof=1):.4f}  nmi {m['nmi']:.4f}  "
              f"song_acc {m['song_acc']:.4f}  probe {probe['probe_acc']:.4f} / artist "
              f"{probe['probe_acc_artist']:.4f}  ({time.time() - t:.0f} s)")

    for name, path in discover_sets(data_dir, n, sets):
        t = time.time()
        x = np.asarray(np.load(path, mmap_mode="r"), dtype=np.float32).reshape(n, -1)
        if not np.isfinite(x).all():
            print(f"skipped {name}: {path} holds NaN or infinite values; rebuild it")
            continue
        desc = describe(name, x.shape[1])
        probes[name] = {"features": name, "description": desc, "dim": x.shape[1],
                        **diagnostics.probe_scores(x, segments)}
        common.write_csv(mdir / PROBES_FILE, pd.DataFrame(list(probes.values())))
        z = views[name] = cluster_view(x, seed)
        method = f"{name}_kmeans"
        rows, assignments = metrics.cluster_and_score(z, labels, method, f"{desc}, standardized, PCA {z.shape[1]}",
                                                      False, seed)
        record(method, rows, assignments, probes[name], t, name)

    for over, profile in MERGES:  # many clusters first, then one per language
        if over not in views or profile not in views:
            continue
        t = time.time()
        desc = (f"{{k_over}} K-Means clusters of {over} (standardized, PCA), merged by their mean "
                f"{profile} (standardized, PCA)")
        rows, assignments = merge_rows(views[over], views[profile], segments, f"{profile}_merge", desc, seed)
        record(f"{profile}_merge", rows, assignments, probes[profile], t, profile)
    if not all_rows:
        raise PipelineError(f"no feature set to analyze in {common.features_dir(data_dir)}")

    # what the clusters follow: ours, and every other stage's cluster files found
    columns = diagnostics.confound_columns(segments, songs)
    for p in sorted(common.features_dir(data_dir).glob("vtln_*.csv")):
        a = pd.read_csv(p, dtype={"song_id": str}).set_index("song_id")["alpha"]
        warp = segments["song_id"].map(a)
        if warp.notna().all():
            columns[p.stem + "_alpha"] = diagnostics.binned(warp).to_numpy()
    others = load_cluster_files(results_dir, segments, skip=set(assignments_by_method))
    table = confound_table({**others, **assignments_by_method}, columns)
    common.write_csv(mdir / CONFOUNDS_FILE, table.round(4))
    heat = table.set_index("method").drop(columns="n_seeds")
    fig = common.figures_dir(results_dir) / HEATMAP_FILE
    diagnostics.confounds_heatmap(heat, fig)

    rows = pd.concat(all_rows, ignore_index=True)
    summary = rows.groupby("method", sort=False)[["acc", "song_acc", "probe_acc_artist"]].mean()
    best = summary["acc"].idxmax()
    top_probe = max(probes.values(), key=lambda r: r["probe_acc_artist"])
    print(f"best label-free audio-only clustering: {best} (acc {summary.loc[best, 'acc']:.4f}, "
          f"song_acc {summary.loc[best, 'song_acc']:.4f}); best probe_acc_artist: "
          f"{top_probe['features']} ({top_probe['probe_acc_artist']:.4f})")
    top = heat.loc[best].drop("language").sort_values(ascending=False)
    print(f"what {best}'s clusters follow besides language (NMI): "
          + ", ".join(f"{c} {v:.2f}" for c, v in top.head(4).items()))
    # figures: the probes, then the best method beside the report's representation
    import plots
    majority = metrics.majority_rate(labels)
    figs = [fig, plots.probes_chart(pd.DataFrame(list(probes.values())),
                                    common.figures_dir(results_dir) / PROBES_FIGURE, majority)]
    for method in dict.fromkeys([best, f"{REPORT_SET}_kmeans"]):
        if method in decided_in:
            view, desc = decided_in[method]
            figs += plots.method_figures(method, views[view], desc, segments, assignments_by_method[method],
                                         seed, results_dir)
    figs.append(plots.comparison_from_results(results_dir, majority))
    print(f"metrics: {mdir / METRICS_FILE}, {mdir / PROBES_FILE}, {mdir / CONFOUNDS_FILE}; "
          f"{sum(f is not None for f in figs)} figures in {common.figures_dir(results_dir)} "
          f"({time.time() - t0:.0f} s)")
    try:  # keep results/REPORT.md current, as every analysis stage does
        import report
        report.record_command(results_dir, __file__, data_dir, seed,
                              ["--sets", ",".join(sets)] if sets else ())
        report.write_report(data_dir, results_dir)
    except Exception as e:
        print(f"note: REPORT.md not refreshed ({e})")
    return rows


def main():
    p = common.add_dir_args(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    p.add_argument("--seed", type=int, default=SEED, help="first K-Means seed and PCA seed")
    p.add_argument("--sets", default="", help=f"comma-separated feature sets (default: {REPORT_SET} and "
                                              f"every data/features/<name>.npy)")
    args = p.parse_args()
    analyze(args.data_dir, args.results_dir, args.seed, [s for s in args.sets.split(",") if s.strip()] or None)


if __name__ == "__main__":
    common.run_main(main)
