"""Train the report's convolutional VAE (section 3.2.1) on the MFCC segments.

    python train_vae.py                      # the report's settings below
    python train_vae.py --epochs 3 --seed 1  # any constant can be overridden by its flag

Reads data/features/mfcc.npy and segments.csv (made by build_dataset.py) and writes
results/models/vae.pth (state_dict, config, epoch, loss_history), results/losses/vae.csv
and results/latents/vae.npy (the encoder mean of every segment, in segments.csv order).
The training loop, train(), is shared with train_cvae.py and train_vade.py so all models train alike.
Each model is trained with N_MODEL_SEEDS seeds (SEED, SEED + 1, ...; --n-seeds): the first
seed's run writes the files above, every other seed S writes vae_seed<S>.pth / .csv / .npy.
Re-running with the same settings on the same features skips the finished model (--force retrains).
"""
import argparse
import copy
import hashlib
import math
import time

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

import common
from models import build_model, seeded_name

# ----------------------------------------------------------------------------
# model (report section 3.2.1)
LATENT_DIM = 64  # size of the latent code
BETA = 1.0  # KL weight of the plain VAE
# ----------------------------------------------------------------------------
# optimisation (report sections 3.2.1 and 4); train_cvae.py uses the same values
BATCH_SIZE = 32  # segments per step; a last smaller batch is kept (even a batch of 1 trains)
LEARNING_RATE = 1e-4  # Adam
EPOCHS = 10  # fixed, no early stopping, as in the report
SEED = 42  # seeds weights, shuffling and the reparameterisation noise
N_MODEL_SEEDS = 3  # runs per model with seeds SEED, SEED + 1, ...: the tables give their spread
# ----------------------------------------------------------------------------
# speed only: none of these changes what is computed
NUM_THREADS = 0  # torch CPU threads; 0 keeps torch's default (one per physical core)
ENCODE_BATCH = 256  # segments per forward pass when writing the latents


class TrainingStopped(common.PipelineError):
    """The loss became NaN or infinite; the last good checkpoint was kept."""


def run_name(config):
    """A name that says what ran, e.g. vae_lat64_b32_lr1e-4_s42."""
    lr = f"{config['learning_rate']:.0e}".replace("e-0", "e-").replace("e+0", "e")
    beta = f"_beta{config['beta']:g}" if config["model"] not in ("autoencoder", "pooled_ae") else ""
    cond = "_cond" if config["conditional"] else ""
    return (f"{config['model']}_lat{config['latent_dim']}{cond}{beta}"
            f"_b{config['batch_size']}_lr{lr}_s{config['seed']}")


def data_fingerprint(data_dir):
    """Identifies the features a model was trained on, so a re-run knows whether it is done."""
    mp, sp = common.mfcc_path(data_dir), common.segments_path(data_dir)
    st = mp.stat()
    return {"mfcc_bytes": st.st_size, "mfcc_mtime_ns": st.st_mtime_ns,
            "segments_sha1": hashlib.sha1(sp.read_bytes()).hexdigest()}


def is_done(model_name, config, fingerprint, results_dir):
    """True when this exact run already finished and wrote all three outputs."""
    paths = [common.model_path(results_dir, model_name), common.losses_path(results_dir, model_name),
             common.latents_path(results_dir, model_name)]
    if not all(p.exists() for p in paths):
        return False
    try:
        ckpt = torch.load(paths[0], map_location="cpu", weights_only=True)
        latents = np.load(paths[2], mmap_mode="r")
    except Exception:  # unreadable: retrain
        return False
    return (ckpt.get("config") == config and ckpt.get("data_fingerprint") == fingerprint
            and ckpt.get("epoch") == config["epochs"]
            and latents.shape == (config["n_segments"], config["latent_dim"]))


def run_epoch(model, opt, mfcc, labels, perm, batch_size, device, desc="train"):
    """One pass over the segments in the order perm. Returns the batch-size-weighted sums of
    (loss, recon, kl) as one tensor (no per-batch .item(): the numbers stay on the device)
    and whether the model has a KL term at all (the autoencoder has none)."""
    model.train()
    has_kl = True
    sums = torch.zeros(3, device=device)
    zero = torch.zeros((), device=device)
    for start in tqdm(range(0, len(perm), batch_size), desc=desc, leave=False, disable=None):
        idx = perm[start:start + batch_size]
        # a gather from the memory-mapped file: the OS page cache keeps it in RAM after epoch 1
        x = torch.from_numpy(mfcc[idx]).to(device, non_blocking=True)
        y = labels[idx].to(device, non_blocking=True) if model.uses_labels else None
        recon, mu, logvar = model(x, y)
        loss, rec, kl = model.loss(recon, x, mu, logvar)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        has_kl = kl is not None
        sums += torch.stack([loss.detach(), rec.detach(), kl.detach() if has_kl else zero]) * len(idx)
    return sums, has_kl


def shuffled_epoch(model, opt, x, labels, shuffle, batch_size, device, desc):
    """run_epoch over a fresh permutation drawn from the generator `shuffle`; returns the means
    (loss, recon, kl), has_kl and the seconds it took. A NaN or inf is returned, not raised."""
    perm = torch.randperm(len(x), generator=shuffle).numpy()
    t0 = time.perf_counter()
    sums, has_kl = run_epoch(model, opt, x, labels, perm, batch_size, device, desc=desc)
    loss, rec, kl = (sums / len(x)).tolist()
    return loss, rec, kl, has_kl, time.perf_counter() - t0


@torch.inference_mode()
def encode_all(model, mfcc, labels, device, batch_size=ENCODE_BATCH):
    """The encoder mean (eval mode) of every segment, float32 (N, latent_dim), in file order."""
    model.eval()
    out = []
    for start in range(0, len(mfcc), batch_size):
        # np.array copies: torch wants a writable array and the memmap is read-only
        x = torch.from_numpy(np.array(mfcc[start:start + batch_size])).to(device)
        y = labels[start:start + batch_size].to(device) if model.uses_labels else None
        out.append(model.encode(x, y).float().cpu())
    return torch.cat(out).numpy()


def _state_on_cpu(model):
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def train(model_name, config, data_dir, results_dir, force=False, threads=NUM_THREADS, out_name=None):
    """Train one model and write its checkpoint, loss CSV and latents; return the full config.

    out_name: the file stem of the outputs (default model_name; train_seeds gives <model>_seed<S>).
    config holds the hyperparameters (latent_dim, embed_dim, beta, conditional, batch_size,
    learning_rate, epochs, seed); the data adds languages, n_languages and n_segments.
    Raises TrainingStopped (a PipelineError) if the loss stops being finite.
    """
    mfcc, segments = common.load_features(data_dir)  # memory-mapped; names build_dataset.py if absent
    # label id = index in the sorted language names, recorded in the config
    languages = sorted(segments["language"].astype(str).unique())
    labels = torch.as_tensor(
        pd.Categorical(segments["language"].astype(str), categories=languages).codes.astype(np.int64))
    device = common.pick_device()
    config = dict(config, model=model_name, languages=languages, n_languages=len(languages),
                  n_segments=len(mfcc), n_mfcc=common.N_MFCC, n_frames=common.N_FRAMES,
                  optimizer="adam", device=device.type)
    config["run_name"] = run_name(config)
    fingerprint = data_fingerprint(data_dir)
    model_name, out_name = config["model"], out_name or model_name
    if not force and is_done(out_name, config, fingerprint, results_dir):
        print(f"{config['run_name']}: already trained on these features, skipping (--force retrains)")
        return config

    # ---- seeding: Python, NumPy and torch; the shuffling has its own generator
    common.seed_everything(config["seed"])
    shuffle = torch.Generator().manual_seed(config["seed"])
    if threads > 0:
        torch.set_num_threads(threads)

    model = build_model(config).to(device)
    # fused Adam: the same update in one kernel instead of a dozen per parameter tensor
    opt = torch.optim.Adam(model.parameters(), lr=config["learning_rate"], fused=True)
    n, epochs = len(mfcc), config["epochs"]
    print(f"run {config['run_name']}: {n} segments, languages {languages}, "
          f"{sum(p.numel() for p in model.parameters()):,} parameters, device {device}"
          + (f" ({torch.get_num_threads()} threads)" if device.type == "cpu" else ""))

    ckpt_path = common.model_path(results_dir, out_name)
    history, good_state, stopped = [], None, None
    for epoch in range(1, epochs + 1):
        loss, rec, kl, has_kl, seconds = shuffled_epoch(model, opt, mfcc, labels, shuffle, config["batch_size"],
                                                        device, desc=f"{model_name} {epoch}/{epochs}")
        if not all(math.isfinite(v) for v in (loss, rec, kl)):
            stopped = epoch
            break
        history.append({"epoch": epoch, "loss": loss, "recon": rec, "kl": kl if has_kl else None})
        good_state = _state_on_cpu(model)
        # a checkpoint after every good epoch: an interrupted or diverged run keeps its work
        common.torch_save(ckpt_path, {"state_dict": good_state, "config": config, "epoch": epoch,
                                      "loss_history": copy.deepcopy(history),
                                      "data_fingerprint": fingerprint})
        kl_txt = "" if history[-1]["kl"] is None else f"  kl {kl:.2f}"
        print(f"{model_name} epoch {epoch}/{epochs}: loss {loss:.2f}  recon {rec:.2f}{kl_txt}  "
              f"{n / seconds:.0f} segments/s")

    if history:
        common.write_csv(common.losses_path(results_dir, out_name),
                         pd.DataFrame(history, columns=common.LOSS_COLUMNS))
        model.load_state_dict(good_state)  # after a NaN epoch the live weights are garbage
        latents = encode_all(model, mfcc, labels, device)
        common.save_npy(common.latents_path(results_dir, out_name), latents.astype(np.float32))
    if stopped is not None:
        kept = (f"kept the checkpoint of epoch {stopped - 1} in {ckpt_path} and its latents"
                if history else "no epoch finished, nothing was written")
        msg = (f"{out_name}: the loss became NaN or infinite in epoch {stopped}; training stopped, "
               f"{kept}. Check the features for NaN/inf or lower --lr.")
        common.log_failure(data_dir, "train", out_name, str(common.mfcc_path(data_dir)), msg)
        raise TrainingStopped(msg)
    print(f"{config['run_name']}: wrote {ckpt_path}, {common.losses_path(results_dir, out_name)}, "
          f"{common.latents_path(results_dir, out_name)}")
    return config


def model_seeds(seed, n_seeds):
    """The seeds of one model's runs; the first is the one behind the plain file names."""
    return [seed + i for i in range(n_seeds)]


def train_seeds(model_name, config, data_dir, results_dir, n_seeds, force=False, threads=NUM_THREADS):
    """train() once per seed (config["seed"], + 1, ...): <model> files for the first seed,
    <model>_seed<S> for the others. A diverged seed does not cost the others; returns the
    TrainingStopped messages (empty when every seed finished)."""
    stopped = []
    for s in model_seeds(config["seed"], n_seeds):
        try:
            train(model_name, dict(config, seed=s), data_dir, results_dir, force=force, threads=threads,
                  out_name=seeded_name(model_name, s, config["seed"]))
        except TrainingStopped as e:
            stopped.append(str(e))
    return stopped


# ----------------------------------------------------------------------------
# command line, shared with train_cvae.py
def add_training_args(parser):
    common.add_dir_args(parser)
    parser.add_argument("--latent-dim", type=int, default=LATENT_DIM, help="size of the latent code")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="segments per step")
    parser.add_argument("--lr", type=float, default=LEARNING_RATE, help="Adam learning rate")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="passes over the data")
    parser.add_argument("--seed", type=int, default=SEED,
                        help="seed for weights, order and noise (of the first run; the others: + 1, ...)")
    parser.add_argument("--n-seeds", type=int, default=N_MODEL_SEEDS,
                        help="runs per model, seeds --seed, --seed + 1, ...")
    parser.add_argument("--threads", type=int, default=NUM_THREADS,
                        help="torch CPU threads (0: torch's default)")
    parser.add_argument("--force", action="store_true", help="retrain even if this run is already done")
    return parser


def check_args(args):
    for flag in ("latent_dim", "batch_size", "epochs", "n_seeds"):
        if getattr(args, flag) < 1:
            raise common.PipelineError(f"--{flag.replace('_', '-')} must be at least 1")
    if not args.lr > 0:
        raise common.PipelineError("--lr must be positive")


def base_config(args):
    return {"latent_dim": args.latent_dim, "batch_size": args.batch_size, "learning_rate": args.lr,
            "epochs": args.epochs, "seed": args.seed}


def main(argv=None):
    parser = add_training_args(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    parser.add_argument("--beta", type=float, default=BETA, help="KL weight")
    args = parser.parse_args(argv)
    check_args(args)
    stopped = train_seeds("vae", dict(base_config(args), beta=args.beta, conditional=False, embed_dim=0),
                          args.data_dir, args.results_dir, args.n_seeds, force=args.force,
                          threads=args.threads)
    if stopped:
        raise TrainingStopped(" | ".join(stopped))


if __name__ == "__main__":
    common.run_main(main)
