"""Every trained model's latents and two baselines, clustered and compared; then REPORT.md.

    python analyze_advanced.py [--data-dir data] [--results-dir results] [--seed 42] [--n-clusters K]

Methods: pca_kmeans (PCA to 64 dims of the flattened MFCC, then K-Means), mfcc_kmeans (K-Means
on all 17,200 MFCC values of a segment), and K-Means on results/latents/<model>.npy for vae,
cvae, beta_vae, autoencoder and any other model found there (a missing one is skipped with a
line). Writes results/metrics/advanced_metrics.csv, results/clusters/<method>.csv and figures:
per method t-SNE (by language, by cluster), cluster composition, confusion matrix; per model
loss curves and reconstructions; all_losses.png and methods_comparison.png.
A model trained with several seeds (<model>_seed<S>.npy beside <model>.npy) is clustered once per
model seed: advanced_metrics.csv keeps the first seed's rows (the contract), results/metrics/
model_seeds_metrics.csv every seed's with a model_seed column (the table's mean ± std is over those),
clusters/<model>_seed<S>.csv the other seeds' assignments; figures are drawn for the first seed.
VaDE (train_vade.py) gives its own clusters and is not K-Means'd here. Labels are optional: every
segment is clustered, the labelled ones are scored (metrics.py); a model given the label (cvae,
beta_vae) is skipped with a line when some segments have none.
"""
import argparse
import time

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA

import common
import metrics
import plots
import report
import training

# ----------------------------------------------------------------------------
SEED = 42  # first K-Means seed (the next N_KMEANS_SEEDS - 1 follow), PCA, t-SNE and sample seed
PCA_DIMS = 64  # the PCA baseline's dimensions (the report's; same as the models' latents)
METRICS_FILE = "advanced_metrics.csv"  # in results/metrics/


def write_rows(results_dir, all_rows):
    # rewritten after every method: an interrupted run keeps what it finished
    common.write_csv(common.metrics_dir(results_dir) / METRICS_FILE, pd.concat(all_rows, ignore_index=True))


@metrics.limited_threads
def analyze(data_dir, results_dir, seed=SEED, models=None, n_clusters=None):
    t0 = time.time()
    common.seed_everything(seed)
    mfcc, segments = common.load_features(data_dir)
    k = metrics.n_clusters(segments, n_clusters)
    metrics.check_labels(segments, k, common.segments_path(data_dir))
    n = len(segments)
    print(metrics.silhouette_note(n))
    all_rows, n_figures = [], 0

    seed_rows = []  # every model seed's rows, model_seed added

    def run(method, features, desc, uses_labels):
        nonlocal n_figures
        rows, assignments = metrics.evaluate(method, features, segments, desc, uses_labels, results_dir, seed, k=k)
        all_rows.append(rows)
        write_rows(results_dir, all_rows)
        n_figures += len(plots.method_figures(method, features, desc, segments, assignments, seed, results_dir))
        return rows

    # baselines on the MFCCs themselves; float32 halves memory and K-Means time on 17,200-d
    x = np.asarray(mfcc, dtype=np.float32).reshape(n, -1)
    dims = min(PCA_DIMS, n, x.shape[1])
    pcs = PCA(n_components=dims, svd_solver="randomized", random_state=seed).fit_transform(x)
    run("pca_kmeans", pcs, f"PCA ({dims}-d) of the flattened MFCC", False)
    run("mfcc_kmeans", x, f"raw MFCC ({x.shape[1]:,}-d)", False)
    del x, pcs

    trained = []
    for model in models or training.discover_models(results_dir):
        z = training.load_latents(data_dir, results_dir, model, n)
        if z is None:
            continue
        trained.append(model)
        uses_labels = training.model_uses_labels(results_dir, model)
        runs = training.model_seed_runs(results_dir, model)
        rows = run(model, z, f"{model} latents ({z.shape[1]}-d)", uses_labels)
        if len(runs) > 1:
            seed_rows.append(rows.assign(model_seed=runs[0][0]))
        for model_seed, name in runs[1:]:  # the other model seeds: rows and cluster files, no figures
            zs = training.load_latents(data_dir, results_dir, name, n)
            r, _ = metrics.evaluate(model, zs, segments, f"{model} latents ({zs.shape[1]}-d)", uses_labels,
                                    results_dir, seed, clusters_name=name, k=k)
            seed_rows.append(r.assign(model_seed=model_seed))
        extra = [plots.loss_curves(model, results_dir), plots.reconstructions(model, mfcc, segments, results_dir, seed)]
        n_figures += sum(f is not None for f in extra)
    seeds_file = common.metrics_dir(results_dir) / common.MODEL_SEEDS_FILE
    if seed_rows:
        common.write_csv(seeds_file, pd.concat(seed_rows, ignore_index=True))
        print(f"model seeds: {seeds_file}")
    elif seeds_file.exists():  # from an earlier run with several seeds: stale now
        seeds_file.unlink()
    n_figures += plots.all_losses(trained, results_dir) is not None
    majority = metrics.majority_rate(segments["language"])
    n_figures += plots.comparison_from_results(results_dir, majority) is not None

    print(f"metrics: {common.metrics_dir(results_dir) / METRICS_FILE} ({len(all_rows)} methods); "
          f"{n_figures} figures in {common.figures_dir(results_dir)}")
    report.record_command(results_dir, __file__, data_dir, seed, [*(["--models", *models] if models else []),
                          *(["--n-clusters", n_clusters] if n_clusters is not None else [])])
    path = report.write_report(data_dir, results_dir)
    print(f"report: {path}  ({time.time() - t0:.0f} s)")
    return pd.concat(all_rows, ignore_index=True)


def main():
    parser = common.add_dir_args(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--seed", type=common.seed_value, default=SEED, help="first K-Means seed; also PCA, t-SNE and sampling")
    parser.add_argument("--models", nargs="*", default=None,
                        help="models whose latents to cluster (default: vae cvae beta_vae autoencoder "
                             "and any other results/latents/*.npy)")
    parser.add_argument("--n-clusters", type=int, default=None, help=metrics.N_CLUSTERS_HELP)
    args = parser.parse_args()
    analyze(args.data_dir, args.results_dir, args.seed, args.models, args.n_clusters)


if __name__ == "__main__":
    common.run_main(main)
