"""VaDE (Jiang et al. 2017, "Variational Deep Embedding"): a VAE whose prior is a Gaussian mixture
with one component per language, so the clusters are read from the model, not from K-Means.

    python train_vade.py                       # on the report's (40, 430) MFCC segments
    python train_vade.py --features fg_bow     # on data/features/fg_bow.npy (build_features.py)

Per run: pretraining as an autoencoder (the encoder mean as the code), a diagonal Gaussian
mixture (scikit-learn, seeded) fitted on those codes initializes the prior, then the VaDE ELBO
(models.vade_loss). The clusters are argmax_c q(c|x) at the encoder mean. K is --n-clusters if
given; else, with every segment labelled (two languages or more), the number of languages in
segments.csv; else N_LANGUAGES. The labels are read only to score the result, on the labelled
segments alone (no labels: the metric cells are empty).

An interrupted run resumes where it stopped, in either phase (results/models/<name>.partial.pth,
as in train_vae.py), and ends bitwise identical to an uninterrupted run (same seed and --threads,
on the CPU).

VaDE varies between runs and can collapse (one component takes nearly every segment), so it is
trained VADE_RUNS times with seeds SEED, SEED + 1, ...; every run is kept and scored and the
table gives mean and std over all of them, collapsed ones included. No run is picked; the
printed summary names the run with the best final ELBO (a label-free criterion) for reference.

Writes, with <name> = vade (MFCC) or vade_<features>, and <name>_seed<S> for runs after the first:
  results/models/<name>.pth     state_dict, config, epoch, loss_history, data_fingerprint
  results/losses/<name>.csv     epoch, loss, recon, kl (pretraining epochs first, kl empty)
  results/latents/<name>.npy    the mean of q(z|x), float32 (N, VADE_LATENT_DIM)
  results/clusters/<name>.csv   segment_id, seed, cluster: every run, seed = the run's seed
  results/metrics/vade_metrics.csv   METRIC_COLUMNS + n_scored, model_seed, collapsed, elbo: one row per
                                run (rows of other feature sets kept)
"""
import argparse
import math

import numpy as np
import pandas as pd
import torch
from sklearn.mixture import GaussianMixture

import common
import metrics
from models import VADE_LATENT_DIM, build_model, seeded_name, vade_name
from training import (TrainingStopped, data_fingerprint, encode_all, is_done, labelled_mask, load_partial,
                      partial_path, prepare_results, save_partial, set_rng_state, shuffled_epoch, write_finished)

# ----------------------------------------------------------------------------
# input
FEATURES = "mfcc"  # "mfcc": the report's segments (conv encoder); else data/features/<name>.npy (MLP)
# ----------------------------------------------------------------------------
# model and optimisation
LATENT_DIM = VADE_LATENT_DIM  # the paper's 10
BATCH_SIZE = 32  # segments per step
PRETRAIN_EPOCHS = 10  # autoencoder epochs before the mixture is fitted
PRETRAIN_LR = 1e-3  # Adam, pretraining
EPOCHS = 20  # VaDE epochs after the initialization
LEARNING_RATE = 5e-4  # Adam, VaDE phase
GMM_N_INIT = 5  # restarts of the mixture fit on the pretrained codes (best likelihood wins)
N_LANGUAGES = 2  # mixture components (--n-clusters); the labels' count only if all are labelled
# ----------------------------------------------------------------------------
# runs
SEED = 42  # first run's seed; the others follow
VADE_RUNS = 3  # runs, all kept and scored (mean and std in the tables)
COLLAPSE_SHARE = 0.9  # a run is collapsed when one component takes more than this share
METRICS_FILE = "vade_metrics.csv"  # in results/metrics/
EXTRA_COLUMNS = ["model_seed", "collapsed", "elbo"]  # after METRIC_COLUMNS (and n_scored)
NUM_THREADS = 0  # torch CPU threads; 0 keeps torch's default (speed only)


def metrics_columns():
    """METRIC_COLUMNS, n_scored (the labelled segments the label metrics were computed on) unless
    it is among them already, then EXTRA_COLUMNS."""
    scored = [] if "n_scored" in common.METRIC_COLUMNS else ["n_scored"]
    return common.METRIC_COLUMNS + scored + EXTRA_COLUMNS


def load_input(data_dir, features):
    """(x, segments, input_dim, fingerprint): x memory-mapped MFCC (N, 40, 430) with input_dim None,
    or a float32 (N, D) feature matrix standardized per column over the corpus (label-free)."""
    if features == "mfcc":
        x, segments = common.load_features(data_dir)
        path = common.mfcc_path(data_dir)
        input_dim = None
    else:
        segments = common.load_features(data_dir)[1]
        path = common.features_dir(data_dir) / f"{features}.npy"
        if not path.exists():
            raise common.PipelineError(
                f"{path} not found: make it with `python build_features.py` (feature set {features!r}), "
                f"or use --features mfcc")
        try:
            x = np.load(path)
        except Exception as e:
            raise common.PipelineError(f"{path} is unreadable ({e}): re-run `python build_features.py`") from e
        x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
        if len(x) != len(segments):
            raise common.PipelineError(
                f"{path} has {len(x)} rows but {common.segments_path(data_dir)} has {len(segments)} "
                f"segments: re-run `python build_features.py` on the current dataset")
        if not np.isfinite(x).all():
            raise common.PipelineError(f"{path} contains NaN or infinite values: re-run `python build_features.py`")
        x = (x - x.mean(0)) / np.maximum(x.std(0), 1e-6)
        input_dim = x.shape[1]
    return x, segments, input_dim, data_fingerprint(data_dir, segments, features_path=path)


def n_clusters(flag, segments, source="segments.csv"):
    """K: the flag if given; else the number of languages when every segment has one (and there
    are at least two); else N_LANGUAGES. Prints which, so a run says what it assumed."""
    if flag is not None:
        return flag, f"K = {flag} (--n-clusters)"
    mask = labelled_mask(segments)
    if mask.all():
        k = segments["language"].astype(str).nunique()
        if k >= 2:
            return k, f"K = {k}: the number of languages in {source}"
    return N_LANGUAGES, f"K = {N_LANGUAGES} (N_LANGUAGES; {mask.sum()} of {len(mask)} segments labelled)"


def score_run(latents, segments, clusters):
    """The metric cells of one run: silhouette on every segment (label-free), the label metrics on
    the labelled segments only, NaN (an empty cell) where no segment has a language."""
    mask = labelled_mask(segments)
    m = {name: float("nan") for name in metrics.METRIC_NAMES}
    if mask.any():
        m.update(metrics.score(latents[mask], segments["language"].astype(str).to_numpy()[mask], clusters[mask]))
    m["silhouette"] = metrics.silhouette(latents, clusters)
    m["n_scored"] = int(mask.sum())
    m["pretrained"] = metrics.PRETRAINED  # nothing trained elsewhere
    return m


@torch.inference_mode()
def gammas(model, x, device, batch_size=256):
    """q(c|x) at the encoder mean for every segment, (N, K) float64; rows sum to one."""
    model.eval()
    out = [model.gamma(torch.from_numpy(np.array(x[i:i + batch_size])).to(device)).double().cpu()
           for i in range(0, len(x), batch_size)]
    return torch.cat(out).numpy()


def init_mixture(model, codes, seed):
    """The prior from a diagonal GMM fitted on the pretrained codes (VaDE collapses without it)."""
    gmm = GaussianMixture(model.n_clusters, covariance_type="diag", n_init=GMM_N_INIT,
                          random_state=seed).fit(codes.astype(np.float64))
    with torch.no_grad():
        model.pi_logits.copy_(torch.as_tensor(np.log(gmm.weights_), dtype=torch.float32))
        model.mu_c.copy_(torch.as_tensor(gmm.means_, dtype=torch.float32))
        model.logvar_c.copy_(torch.as_tensor(np.log(gmm.covariances_), dtype=torch.float32))


def _phase(model, opt, x, labels, first, epochs, config, device, shuffle, history, tag, ckpt):
    """Train epochs first..epochs of a phase, appending to history and saving the partial
    checkpoint after each; stops on a non-finite loss."""
    for epoch in range(first, epochs + 1):
        loss, rec, kl, has_kl, seconds = shuffled_epoch(model, opt, x, labels, shuffle, config["batch_size"],
                                                        device, desc=f"{config['run_name']} {tag} {epoch}/{epochs}")
        if not all(math.isfinite(v) for v in (loss, rec, kl)):
            raise TrainingStopped(f"{config['run_name']}: the loss became NaN or infinite in {tag} epoch "
                                  f"{epoch}; lower --lr. This run's results were not written.")
        history.append({"epoch": len(history) + 1, "loss": loss, "recon": rec, "kl": kl if has_kl else None})
        ckpt(opt, tag)
        kl_txt = f"  kl {kl:.2f}" if has_kl else ""
        print(f"{config['run_name']} {tag} epoch {epoch}/{epochs}: loss {loss:.2f}  recon {rec:.2f}"
              f"{kl_txt}  {len(x) / seconds:.0f} segments/s")


def _cpu_state(model):
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def train_run(x, segments, input_dim, fingerprint, config, out_name, data_dir, results_dir, force, threads):
    """One VaDE run; returns (latents, gamma, final ELBO). Skips (reloads) a finished run and
    continues an unfinished one (either phase) from results/models/<out_name>.partial.pth."""
    from models import load_checkpoint
    device = common.pick_device()
    ckpt_path = common.model_path(results_dir, out_name)
    lat_path = common.latents_path(results_dir, out_name)
    total = config["pretrain_epochs"] + config["epochs"]
    if not force and is_done(out_name, config, fingerprint, results_dir, total_epochs=total):
        try:
            model, ckpt = load_checkpoint(ckpt_path, device)
            print(f"{config['run_name']}: already trained on these features, skipping (--force retrains)")
            return np.load(lat_path), gammas(model, x, device), -ckpt["loss_history"][-1]["loss"]
        except common.PipelineError:
            pass  # unreadable: retrain

    common.seed_everything(config["seed"])
    shuffle = torch.Generator().manual_seed(config["seed"])
    if threads > 0:
        torch.set_num_threads(threads)
    labels = None  # never read: VaDE.uses_labels is False
    model = build_model(config).to(device)
    print(f"run {config['run_name']}: {len(x)} segments, K = {config['n_clusters']}, "
          f"{sum(p.numel() for p in model.parameters()):,} parameters, device {device}")
    part_path = partial_path(results_dir, out_name)
    resume = None if force else load_partial(part_path, config, fingerprint)
    history = []
    if resume is not None:
        model.load_state_dict(resume["state_dict"])  # in the VaDE phase: the fitted mixture too
        set_rng_state(resume["rng"], shuffle)
        history = list(resume["loss_history"])
        print(f"{config['run_name']}: resuming after epoch {len(history)} of {total} from {part_path}")
    done = len(history)

    def save(opt, phase):
        save_partial(part_path, _cpu_state(model), opt, shuffle, config, fingerprint, history, phase=phase)

    # 1. pretraining: an autoencoder on the encoder mean (the mixture is not used yet)
    pre = config["pretrain_epochs"]
    model.pretraining = True
    ae_params = [p for n, p in model.named_parameters() if n not in ("pi_logits", "mu_c", "logvar_c")]
    opt = torch.optim.Adam(ae_params, lr=config["pretrain_lr"])
    if resume is not None and done <= pre:
        opt.load_state_dict(resume["optimizer"])
    _phase(model, opt, x, labels, done + 1, pre, config, device, shuffle, history, "pretrain", save)
    # 2. the mixture from a GMM on the pretrained codes (seeded; draws on no global RNG), unless
    # the run being continued is past it: its checkpoint holds the fitted and trained mixture
    if done <= pre:
        init_mixture(model, encode_all(model, x, labels, device), config["seed"])
    # 3. the VaDE ELBO
    model.pretraining = False
    opt = torch.optim.Adam(model.parameters(), lr=config["learning_rate"])
    if resume is not None and done > pre:
        opt.load_state_dict(resume["optimizer"])
    _phase(model, opt, x, labels, max(done - pre, 0) + 1, config["epochs"], config, device, shuffle, history,
           "vade", save)

    latents = encode_all(model, x, labels, device).astype(np.float32)
    write_finished(results_dir, out_name, _cpu_state(model), history, config, fingerprint, latents)
    part_path.unlink(missing_ok=True)
    return latents, gammas(model, x, device), -history[-1]["loss"]


def main(argv=None):
    parser = common.add_dir_args(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    parser.add_argument("--features", default=FEATURES,
                        help="mfcc (the report's segments) or the name of a data/features/<name>.npy")
    parser.add_argument("--latent-dim", type=int, default=LATENT_DIM, help="size of the latent code")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="segments per step")
    parser.add_argument("--pretrain-epochs", type=int, default=PRETRAIN_EPOCHS, help="autoencoder epochs")
    parser.add_argument("--pretrain-lr", type=float, default=PRETRAIN_LR, help="Adam learning rate, pretraining")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="VaDE epochs after the initialization")
    parser.add_argument("--lr", type=float, default=LEARNING_RATE, help="Adam learning rate, VaDE phase")
    parser.add_argument("--seed", type=common.seed_value, default=SEED, help="first run's seed (the others: + 1, ...)")
    parser.add_argument("--runs", type=int, default=VADE_RUNS, help="runs (seeds), all kept and scored")
    parser.add_argument("--n-clusters", type=int, default=None,
                        help=f"mixture components (default: N_LANGUAGES = {N_LANGUAGES}, or the number of "
                             f"languages when every segment has one)")
    parser.add_argument("--threads", type=int, default=NUM_THREADS, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--force", action="store_true", help="retrain even if a run is already done")
    args = parser.parse_args(argv)
    for flag in ("latent_dim", "batch_size", "pretrain_epochs", "epochs", "runs"):
        if getattr(args, flag) < 1:
            raise common.PipelineError(f"--{flag.replace('_', '-')} must be at least 1")
    if not (args.lr > 0 and args.pretrain_lr > 0):
        raise common.PipelineError("--lr and --pretrain-lr must be positive")
    if args.features != "mfcc" and not args.features.replace("_", "").isalnum():
        raise common.PipelineError(f"--features {args.features!r}: a feature-set name is letters, digits and _")
    if args.n_clusters is not None and args.n_clusters < 2:
        raise common.PipelineError("--n-clusters must be at least 2")

    prepare_results(args.results_dir, ("models", "losses", "latents", "clusters", "metrics"))
    x, segments, input_dim, fingerprint = load_input(args.data_dir, args.features)
    k, k_note = n_clusters(args.n_clusters, segments, common.segments_path(args.data_dir))
    print(f"VaDE: {k_note}")
    method = vade_name(args.features)
    base = {"model": "vade", "features": args.features, "n_clusters": k, "input_dim": input_dim,
            "latent_dim": args.latent_dim, "batch_size": args.batch_size,
            "pretrain_epochs": args.pretrain_epochs, "pretrain_lr": args.pretrain_lr,
            "epochs": args.epochs, "learning_rate": args.lr, "gmm_n_init": GMM_N_INIT,
            "n_segments": len(x), "conditional": False,
            "optimizer": "adam", "device": common.pick_device().type}
    desc = ("VaDE q(c|x) on the (40, 430) MFCC" if input_dim is None
            else f"VaDE q(c|x) on {args.features} ({input_dim}-d, standardized)")

    rows, assignments, stopped = [], {}, []
    for s in [args.seed + i for i in range(args.runs)]:
        out_name = seeded_name(method, s, args.seed)
        config = dict(base, seed=s, run_name=f"{out_name}_lat{args.latent_dim}_s{s}")
        try:
            latents, gamma, elbo = train_run(x, segments, input_dim, fingerprint, config, out_name,
                                             args.data_dir, args.results_dir, args.force, args.threads)
        except TrainingStopped as e:  # one diverged run must not cost the others
            common.log_failure(args.data_dir, "train", out_name, args.features, str(e))
            stopped.append(str(e))
            continue
        clusters = gamma.argmax(1)
        share = np.bincount(clusters, minlength=k).max() / len(clusters)
        collapsed = bool(share > COLLAPSE_SHARE)
        assignments[s] = clusters
        m = score_run(latents, segments, clusters)
        rows.append({"method": method, "features": desc, "uses_labels": False, **m, "n_segments": len(x),
                     "seed": s, "model_seed": s, "collapsed": collapsed, "elbo": elbo})
        print(f"{out_name}: acc {m['acc']:.4f}  nmi {m['nmi']:.4f} (on {m['n_scored']} labelled segments)  "
              f"largest component {share:.2f}"
              f"{'  COLLAPSED' if collapsed else ''}  final ELBO {elbo:.2f}")
    if not rows:
        raise TrainingStopped(" | ".join(stopped))

    df = pd.DataFrame(rows, columns=metrics_columns())
    common.write_csv(common.clusters_path(args.results_dir, method),
                     metrics.clusters_frame(segments["segment_id"], assignments))
    path = common.metrics_dir(args.results_dir) / METRICS_FILE
    if path.exists():  # keep the other feature sets' rows
        old = pd.read_csv(path)
        df = pd.concat([old[old["method"] != method], df], ignore_index=True)
    common.write_csv(path, df)
    mine = df[df["method"] == method]
    best = mine.loc[mine["elbo"].idxmax()]
    print(f"{method}: {len(mine)} runs, collapsed {int(mine['collapsed'].sum())}/{len(mine)} "
          f"({mine['collapsed'].mean():.2f}); acc {mine['acc'].mean():.4f} ± {mine['acc'].std(ddof=1):.4f}, "
          f"nmi {mine['nmi'].mean():.4f} ± {mine['nmi'].std(ddof=1):.4f} (mean ± std over runs, none picked); "
          f"best final ELBO (label-free): seed {int(best['seed'])}, acc {best['acc']:.4f} -> {path}")
    if stopped:
        raise TrainingStopped(" | ".join(stopped))


if __name__ == "__main__":
    common.run_main(main)
