"""Train the report's convolutional VAE (section 3.2.1) on the MFCC segments.

    python train_vae.py                      # the report's settings below
    python train_vae.py --epochs 3 --seed 1  # any constant can be overridden by its flag

Reads data/features/mfcc.npy and segments.csv (made by build_dataset.py) and writes
results/models/vae.pth (state_dict, config, epoch, loss_history), results/losses/vae.csv
and results/latents/vae.npy (the encoder mean of every segment, in segments.csv order).
The training loop lives in training.py, shared with train_cvae.py and train_vade.py so all models train alike.
Each model is trained with N_MODEL_SEEDS seeds (SEED, SEED + 1, ...; --n-seeds): the first
seed's run writes the files above, every other seed S writes vae_seed<S>.pth / .csv / .npy.

A run's three files are one set, written only when the run completes (the checkpoint last, holding
the SHA-1 of the other two, so a reader can tell a mixed set). While it runs, the checkpoint of the
last finished epoch (model, optimizer, epoch, every RNG state) is results/models/<name>.partial.pth,
a name no analysis reads. Re-running the same command continues from it and ends bitwise identical
to an uninterrupted run (same seed and --threads, on the CPU); a partial checkpoint of other
settings or other data is not used (a line says why). Re-running with the same settings on the
same features skips the finished model (--force retrains from scratch).
The label-free models never read the `language` column; a model given the label (the CVAE, the
report's Beta-VAE) is skipped with one line unless every segment has a language and there are two.
"""
import argparse

import common
from training import TrainingStopped, add_training_args, base_config, check_args, prepare_results, train_seeds

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


def main(argv=None):
    parser = add_training_args(argparse.ArgumentParser(description=__doc__.split("\n")[0]), LATENT_DIM, BATCH_SIZE,
                               LEARNING_RATE, EPOCHS, SEED, N_MODEL_SEEDS, NUM_THREADS)
    parser.add_argument("--beta", type=float, default=BETA, help="KL weight")
    args = parser.parse_args(argv)
    check_args(args)
    prepare_results(args.results_dir)
    stopped = train_seeds("vae", dict(base_config(args), beta=args.beta, conditional=False, embed_dim=0),
                          args.data_dir, args.results_dir, args.n_seeds, force=args.force,
                          threads=args.threads)
    if stopped:
        raise TrainingStopped(" | ".join(stopped))


if __name__ == "__main__":
    common.run_main(main)
