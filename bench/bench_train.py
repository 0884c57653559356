"""Training speed in segments per second: the bare models and the real training loop.

    python bench/bench_train.py                      # every model, best of 3
    python bench/bench_train.py --models vae --repeats 5

For each model it times (1) the bare model: forward, loss, backward and Adam step on one
random batch of the report's shape (32, 40, 430), and (2) the real loop, training.run_epoch,
over data/features/mfcc.npy (memory-mapped, shuffled) when it exists, else over a synthetic
file written to a temporary folder; and once, training.train() end to end (loading,
checkpoint after every epoch, latents) on the synthetic file. Timings take the best of
--repeats runs because other processes share the cores. Target: VAE >= 300 segments/s,
real loop within 10% of the bare model.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common  # noqa: E402
import training  # noqa: E402
from models import MODELS, VADE_LATENT_DIM, build_model  # noqa: E402

# ----------------------------------------------------------------------------
BATCH_SIZE = 32  # the report's batch
STEPS = 10  # training steps per timed run of the bare model
REPEATS = 3  # timed runs; the best counts
WARMUP = 3  # untimed steps first (oneDNN builds its kernels on first use)
SEGMENTS = 640  # segments per timed epoch of the real loop (20 batches)
E2E_EPOCHS = 2  # epochs of the end-to-end train() run
TARGET = 300  # segments/s the VAE must reach on the CPU
SEED = 0


def model_config(name, n_languages=2):
    conditional = name in ("cvae", "beta_vae")
    # VaDE: one mixture component per language, on the report's MFCC, its own latent size
    return {"model": name, "latent_dim": VADE_LATENT_DIM if name == "vade" else 64,
            "n_languages": n_languages, "n_clusters": n_languages, "input_dim": None, "embed_dim": 16,
            "beta": 4.0 if name.startswith("beta_vae") else 1.0, "conditional": conditional,
            "batch_size": BATCH_SIZE, "learning_rate": 1e-4, "epochs": E2E_EPOCHS, "seed": SEED}


def make_model(name, device):
    torch.manual_seed(SEED)
    model = build_model(model_config(name)).to(device)
    return model, torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)


def bench_bare(name, device, steps, repeats):
    model, opt = make_model(name, device)
    model.train()
    x = torch.randn(BATCH_SIZE, common.N_MFCC, common.N_FRAMES, device=device)
    y = torch.randint(0, 2, (BATCH_SIZE,), device=device) if model.uses_labels else None

    def step():
        recon, mu, logvar = model(x, y)
        loss = model.loss(recon, x, mu, logvar)[0]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(WARMUP):
        step()
    best = 0.0
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        for _ in range(steps):
            step()
        sync(device)
        best = max(best, steps * BATCH_SIZE / (time.perf_counter() - t))
    return best


def bench_loop(name, device, mfcc, n_segments, repeats):
    model, opt = make_model(name, device)
    labels = torch.randint(0, 2, (len(mfcc),))
    rng = np.random.default_rng(SEED)
    # warm-up on a few batches, then whole timed epochs of the real loop
    training.run_epoch(model, opt, mfcc, labels, rng.permutation(len(mfcc))[:WARMUP * BATCH_SIZE],
                        BATCH_SIZE, device)
    best = 0.0
    for _ in range(repeats):
        perm = rng.permutation(len(mfcc))[:n_segments]
        sync(device)
        t = time.perf_counter()
        sums, _ = training.run_epoch(model, opt, mfcc, labels, perm, BATCH_SIZE, device)
        sums.tolist()  # the epoch's one sync, as in train()
        best = max(best, len(perm) / (time.perf_counter() - t))
    return best


def write_synthetic(data_dir, n):
    """A features folder of n random segments, two languages, in the contract's format."""
    rng = np.random.default_rng(SEED)
    mfcc = rng.standard_normal((n, common.N_MFCC, common.N_FRAMES), dtype=np.float32)
    common.save_npy(common.mfcc_path(data_dir), mfcc)
    common.write_csv(common.segments_path(data_dir), pd.DataFrame({
        "segment_id": [f"seg{i:05d}" for i in range(n)],
        "song_id": [f"song{i // 8:04d}" for i in range(n)],
        "language": ["english" if i % 2 else "bangla" for i in range(n)], "title": "", "artist": "",
        "start_s": [30.0 * (i % 8) for i in range(n)]}))


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default="data", help="uses <data-dir>/features/mfcc.npy if present")
    parser.add_argument("--models", nargs="+", default=list(MODELS), help="models to time")
    parser.add_argument("--repeats", type=int, default=REPEATS, help="timed runs, best counts")
    parser.add_argument("--steps", type=int, default=STEPS, help="steps per bare-model run")
    parser.add_argument("--segments", type=int, default=SEGMENTS, help="segments per real-loop epoch")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--no-e2e", action="store_true", help="skip the end-to-end train() run")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = common.pick_device()
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"device {device}, load average {os.getloadavg()[0]:.2f}")

    with tempfile.TemporaryDirectory() as tmp:
        synth_dir = Path(tmp) / "data"
        write_synthetic(synth_dir, args.segments)
        if common.mfcc_path(args.data_dir).exists():
            mfcc, _ = common.load_features(args.data_dir)
            source = f"{common.mfcc_path(args.data_dir)} ({len(mfcc)} segments, memory-mapped)"
        else:
            mfcc, _ = common.load_features(synth_dir)
            source = f"synthetic mfcc.npy ({len(mfcc)} segments, memory-mapped)"
        n_segments = min(args.segments, len(mfcc))
        print(f"real loop: {n_segments} shuffled segments per epoch of {source}, batch {BATCH_SIZE}")

        print(f"{'model':<16} {'bare seg/s':>10} {'loop seg/s':>10} {'loop/bare':>9}")
        for name in args.models:
            bare = bench_bare(name, device, args.steps, args.repeats)
            loop = bench_loop(name, device, mfcc, n_segments, args.repeats)
            print(f"{name:<16} {bare:>10.0f} {loop:>10.0f} {loop / bare:>8.0%}", flush=True)
            if name == "vae":
                verdict = "meets" if loop >= TARGET else "MISSES"
                print(f"  vae: 10 epochs over 4,954 segments ~ {10 * 4954 / loop / 60:.1f} min "
                      f"({verdict} the {TARGET} segments/s target)")

        if not args.no_e2e:
            name = "vae" if "vae" in args.models else args.models[0]
            cfg = {k: v for k, v in model_config(name).items()
                   if k not in ("model", "n_languages", "n_clusters", "input_dim")}
            t = time.perf_counter()
            with open(os.devnull, "w") as quiet:  # train() prints its own epoch lines
                stdout, sys.stdout = sys.stdout, quiet
                try:
                    training.train(name, cfg, synth_dir, Path(tmp) / "results", force=True)
                finally:
                    sys.stdout = stdout
            wall = time.perf_counter() - t
            print(f"end to end: train('{name}') {E2E_EPOCHS} epochs x {args.segments} segments "
                  f"+ checkpoints + latents in {wall:.1f} s = {E2E_EPOCHS * args.segments / wall:.0f} segments/s")


if __name__ == "__main__":
    main()
