"""K-Means on the VAE's latents: metrics, cluster file, figures, then results/REPORT.md.

    python analyze_vae.py [--data-dir data] [--results-dir results] [--seed 42] [--n-clusters K]

Labels are optional: every segment is clustered, the labelled ones are scored (metrics.py).

Reads data/features/{mfcc.npy,segments.csv}, results/latents/vae.npy, results/losses/vae.csv
and results/models/vae.pth; writes results/metrics/vae_metrics.csv, results/clusters/vae.csv
and results/figures/vae_*.png.
"""
import argparse
import time

import common
import metrics
import plots
import report
import training
from common import PipelineError

# ----------------------------------------------------------------------------
SEED = 42  # first K-Means seed (the next N_KMEANS_SEEDS - 1 follow), t-SNE and sample seed
MODEL = "vae"  # the model whose latents are clustered
METRICS_FILE = "vae_metrics.csv"  # in results/metrics/


@metrics.limited_threads
def analyze(data_dir, results_dir, seed=SEED, n_clusters=None):
    t0 = time.time()
    common.seed_everything(seed)
    mfcc, segments = common.load_features(data_dir)
    k = metrics.n_clusters(segments, n_clusters)
    metrics.check_labels(segments, k, common.segments_path(data_dir))
    z = training.load_latents(data_dir, results_dir, MODEL, len(segments))
    if z is None:
        raise PipelineError(f"nothing to analyze without {common.latents_path(results_dir, MODEL)}: "
                            f"run `python train_vae.py --data-dir {data_dir} --results-dir {results_dir}` first")
    print(metrics.silhouette_note(len(z)))
    desc = f"{MODEL} latents ({z.shape[1]}-d)"  # the same words as analyze_advanced.py
    rows, assignments = metrics.evaluate(MODEL, z, segments, desc, training.model_uses_labels(results_dir, MODEL),
                                         results_dir, seed, k=k)
    common.write_csv(common.metrics_dir(results_dir) / METRICS_FILE, rows)
    figures = plots.method_figures(MODEL, z, desc, segments, assignments, seed, results_dir)
    figures += [plots.loss_curves(MODEL, results_dir), plots.reconstructions(MODEL, mfcc, segments, results_dir, seed)]
    figures = [f for f in figures if f is not None]
    print(f"metrics: {common.metrics_dir(results_dir) / METRICS_FILE}; clusters: "
          f"{common.clusters_path(results_dir, MODEL)}; {len(figures)} figures in {common.figures_dir(results_dir)}")
    report.record_command(results_dir, __file__, data_dir, seed,
                          ["--n-clusters", n_clusters] if n_clusters is not None else ())
    path = report.write_report(data_dir, results_dir)
    print(f"report: {path}  ({time.time() - t0:.0f} s)")
    return rows


def main():
    parser = common.add_dir_args(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--seed", type=common.seed_value, default=SEED, help="first K-Means seed; also t-SNE and sampling")
    parser.add_argument("--n-clusters", type=int, default=None, help=metrics.N_CLUSTERS_HELP)
    args = parser.parse_args()
    analyze(args.data_dir, args.results_dir, args.seed, args.n_clusters)


if __name__ == "__main__":
    common.run_main(main)
