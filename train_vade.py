"""VaDE (Jiang et al. 2017, "Variational Deep Embedding"): a VAE whose prior is a Gaussian mixture
with one component per language, so the clusters are read from the model, not from K-Means.

    python train_vade.py                       # on the report's (40, 430) MFCC segments
    python train_vade.py --features fg_bow     # on data/features/fg_bow.npy (build_features.py)

Per run: pretraining as an autoencoder (the encoder mean as the code), a diagonal Gaussian
mixture (scikit-learn, seeded) fitted on those codes initializes the prior, then the VaDE ELBO
(models.vade_loss). The clusters are argmax_c q(c|x) at the encoder mean. K is the number of
languages in segments.csv; the labels themselves are read only to score the result.

VaDE varies between runs and can collapse (one component takes nearly every segment), so it is
trained VADE_RUNS times with seeds SEED, SEED + 1, ...; every run is kept and scored and the
table gives mean and std over all of them, collapsed ones included. No run is picked; the
printed summary names the run with the best final ELBO (a label-free criterion) for reference.

Writes, with <name> = vade (MFCC) or vade_<features>, and <name>_seed<S> for runs after the first:
  results/models/<name>.pth     state_dict, config, epoch, loss_history, data_fingerprint
  results/losses/<name>.csv     epoch, loss, recon, kl (pretraining epochs first, kl empty)
  results/latents/<name>.npy    the mean of q(z|x), float32 (N, VADE_LATENT_DIM)
  results/clusters/<name>.csv   segment_id, seed, cluster: every run, seed = the run's seed
  results/metrics/vade_metrics.csv   METRIC_COLUMNS + model_seed, collapsed, elbo: one row per
                                run (rows of other feature sets kept)
"""
import argparse
import copy
import hashlib
import math

import numpy as np
import pandas as pd
import torch
from sklearn.mixture import GaussianMixture

import common
import metrics
from models import VADE_LATENT_DIM, build_model, seeded_name, vade_name
from train_vae import NUM_THREADS, TrainingStopped, encode_all, shuffled_epoch

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
# ----------------------------------------------------------------------------
# runs
SEED = 42  # first run's seed; the others follow
VADE_RUNS = 3  # runs, all kept and scored (mean and std in the tables)
COLLAPSE_SHARE = 0.9  # a run is collapsed when one component takes more than this share
METRICS_FILE = "vade_metrics.csv"  # in results/metrics/
EXTRA_COLUMNS = ["model_seed", "collapsed", "elbo"]  # after METRIC_COLUMNS


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
    st = path.stat()
    fingerprint = {"features_bytes": st.st_size, "features_mtime_ns": st.st_mtime_ns,
                   "segments_sha1": hashlib.sha1(common.segments_path(data_dir).read_bytes()).hexdigest()}
    return x, segments, input_dim, fingerprint


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


def _phase(model, opt, x, labels, epochs, config, device, shuffle, history, tag, ckpt):
    """Train `epochs` epochs, appending to history; stops on a non-finite loss."""
    for epoch in range(1, epochs + 1):
        loss, rec, kl, has_kl, seconds = shuffled_epoch(model, opt, x, labels, shuffle, config["batch_size"],
                                                        device, desc=f"{config['run_name']} {tag} {epoch}/{epochs}")
        if not all(math.isfinite(v) for v in (loss, rec, kl)):
            raise TrainingStopped(f"{config['run_name']}: the loss became NaN or infinite in {tag} epoch "
                                  f"{epoch}; lower --lr. The checkpoint of the last good epoch is kept.")
        history.append({"epoch": len(history) + 1, "loss": loss, "recon": rec, "kl": kl if has_kl else None})
        ckpt(len(history))
        kl_txt = f"  kl {kl:.2f}" if has_kl else ""
        print(f"{config['run_name']} {tag} epoch {epoch}/{epochs}: loss {loss:.2f}  recon {rec:.2f}"
              f"{kl_txt}  {len(x) / seconds:.0f} segments/s")


def train_run(x, segments, input_dim, fingerprint, config, out_name, data_dir, results_dir, force, threads):
    """One VaDE run; returns (latents, gamma, final ELBO). Skips (reloads) a finished run."""
    from models import load_checkpoint
    device = common.pick_device()
    ckpt_path = common.model_path(results_dir, out_name)
    lat_path = common.latents_path(results_dir, out_name)
    if not force and ckpt_path.exists() and lat_path.exists():
        try:
            model, ckpt = load_checkpoint(ckpt_path, device)
            if (ckpt.get("config") == config and ckpt.get("data_fingerprint") == fingerprint
                    and ckpt.get("epoch") == config["pretrain_epochs"] + config["epochs"]):
                print(f"{config['run_name']}: already trained on these features, skipping (--force retrains)")
                return np.load(lat_path), gammas(model, x, device), -ckpt["loss_history"][-1]["loss"]
        except common.PipelineError:
            pass  # unreadable: retrain

    common.seed_everything(config["seed"])
    shuffle = torch.Generator().manual_seed(config["seed"])
    if threads > 0:
        torch.set_num_threads(threads)
    labels = torch.zeros(len(x), dtype=torch.int64)  # never read: VaDE.uses_labels is False
    model = build_model(config).to(device)
    print(f"run {config['run_name']}: {len(x)} segments, K = {config['n_clusters']}, "
          f"{sum(p.numel() for p in model.parameters()):,} parameters, device {device}")
    history = []

    def save(epoch):
        common.torch_save(ckpt_path, {"state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                                      "config": config, "epoch": epoch, "loss_history": copy.deepcopy(history),
                                      "data_fingerprint": fingerprint})

    # 1. pretraining: an autoencoder on the encoder mean (the mixture is not used yet)
    model.pretraining = True
    ae_params = [p for n, p in model.named_parameters() if n not in ("pi_logits", "mu_c", "logvar_c")]
    opt = torch.optim.Adam(ae_params, lr=config["pretrain_lr"])
    _phase(model, opt, x, labels, config["pretrain_epochs"], config, device, shuffle, history, "pretrain", save)
    # 2. the mixture from a GMM on the pretrained codes
    init_mixture(model, encode_all(model, x, labels, device), config["seed"])
    # 3. the VaDE ELBO
    model.pretraining = False
    opt = torch.optim.Adam(model.parameters(), lr=config["learning_rate"])
    _phase(model, opt, x, labels, config["epochs"], config, device, shuffle, history, "vade", save)

    common.write_csv(common.losses_path(results_dir, out_name), pd.DataFrame(history, columns=common.LOSS_COLUMNS))
    latents = encode_all(model, x, labels, device).astype(np.float32)
    common.save_npy(lat_path, latents)
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
    parser.add_argument("--seed", type=int, default=SEED, help="first run's seed (the others: + 1, ...)")
    parser.add_argument("--runs", type=int, default=VADE_RUNS, help="runs (seeds), all kept and scored")
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

    x, segments, input_dim, fingerprint = load_input(args.data_dir, args.features)
    languages = metrics.require_two_languages(segments, common.segments_path(args.data_dir))
    k = len(languages)  # one component per language: the count, never the labels
    method = vade_name(args.features)
    base = {"model": "vade", "features": args.features, "n_clusters": k, "input_dim": input_dim,
            "latent_dim": args.latent_dim, "batch_size": args.batch_size,
            "pretrain_epochs": args.pretrain_epochs, "pretrain_lr": args.pretrain_lr,
            "epochs": args.epochs, "learning_rate": args.lr, "gmm_n_init": GMM_N_INIT,
            "n_segments": len(x), "conditional": False, "languages": languages,
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
        m = metrics.score(latents, segments["language"].astype(str), clusters)
        rows.append({"method": method, "features": desc, "uses_labels": False, **m, "n_segments": len(x),
                     "seed": s, "model_seed": s, "collapsed": collapsed, "elbo": elbo})
        print(f"{out_name}: acc {m['acc']:.4f}  nmi {m['nmi']:.4f}  largest component {share:.2f}"
              f"{'  COLLAPSED' if collapsed else ''}  final ELBO {elbo:.2f}")
    if not rows:
        raise TrainingStopped(" | ".join(stopped))

    df = pd.DataFrame(rows, columns=common.METRIC_COLUMNS + EXTRA_COLUMNS)
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
