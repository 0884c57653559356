"""Train the report's CVAE, Beta-VAE and baseline autoencoder (sections 3.2.2 to 3.2.4), and
the label-free models added by issue 5: beta_vae_uncond (the Beta-VAE without the label) and
pooled_vae / pooled_ae (an encoder that pools over time instead of flattening it).

    python train_cvae.py                      # all of them, the report's settings
    python train_cvae.py --model beta_vae --epochs 3 --n-seeds 1

Same data, outputs and training loop (training.py) as train_vae.py (results/models/<model>.pth,
results/losses/<model>.csv, results/latents/<model>.npy for the first seed,
<model>_seed<S>.* for the other N_MODEL_SEEDS - 1 seeds). The CVAE, and the report's
Beta-VAE, see the language label they are later scored against: their configs say
conditional=True and every table marks them `uses_labels`. Labels are optional: the CVAE and the
report's Beta-VAE are skipped with one line unless every segment has a language and there are at
least two (they condition each segment on its label, and their latents must cover every segment);
the label-free models (autoencoder, beta_vae_uncond, pooled_*) train on every segment and never
read the language. An interrupted run resumes, as in train_vae.py.
"""
import argparse

import common
from training import TrainingStopped, add_training_args, base_config, check_args, prepare_results, train_seeds

# ----------------------------------------------------------------------------
# optimisation: the report's values, the same as train_vae.py's so the four models train alike
LATENT_DIM = 64  # size of the latent code
BATCH_SIZE = 32  # segments per step; a last smaller batch is kept
LEARNING_RATE = 1e-4  # Adam
EPOCHS = 10  # fixed, no early stopping, as in the report
SEED = 42  # seeds weights, shuffling and the reparameterisation noise
N_MODEL_SEEDS = 3  # runs per model with seeds SEED, SEED + 1, ...
NUM_THREADS = 0  # torch CPU threads; 0 keeps torch's default (speed only)
# ----------------------------------------------------------------------------
# models (report sections 3.2.2 to 3.2.4)
EMBED_DIM = 16  # learned language embedding, concatenated before the heads and to z
CVAE_BETA = 1.0  # KL weight of the CVAE
BETA_VAE_BETA = 4.0  # the Beta-VAE's KL weight
BETA_VAE_CONDITIONAL = True  # the report's Beta-VAE is the CVAE with beta 4; False drops the label
POOLED_VAE_BETA = 1.0  # KL weight of the time-pooled VAE
# what --model all trains, in this order
MODELS_HERE = ["cvae", "beta_vae", "autoencoder", "beta_vae_uncond", "pooled_vae", "pooled_ae"]


def model_settings(args):
    """name -> what differs between the models; a new model is one line here and in MODELS_HERE."""
    return {
        "cvae": {"beta": args.cvae_beta, "conditional": True},
        "beta_vae": {"beta": args.beta_vae_beta, "conditional": args.beta_vae_conditional},
        "autoencoder": {"beta": 0.0, "conditional": False},  # no KL term at all
        "beta_vae_uncond": {"beta": args.beta_vae_beta, "conditional": False},
        "pooled_vae": {"beta": args.pooled_vae_beta, "conditional": False},
        "pooled_ae": {"beta": 0.0, "conditional": False},
    }


def main(argv=None):
    parser = add_training_args(argparse.ArgumentParser(description=__doc__.split("\n")[0]), LATENT_DIM, BATCH_SIZE,
                               LEARNING_RATE, EPOCHS, SEED, N_MODEL_SEEDS, NUM_THREADS)
    parser.add_argument("--model", default="all", choices=MODELS_HERE + ["all"],
                        help="which model to train (all: each in turn)")
    parser.add_argument("--embed-dim", type=int, default=EMBED_DIM, help="language embedding size")
    parser.add_argument("--cvae-beta", type=float, default=CVAE_BETA, help="KL weight of the CVAE")
    parser.add_argument("--beta-vae-beta", type=float, default=BETA_VAE_BETA,
                        help="KL weight of the Beta-VAE")
    parser.add_argument("--beta-vae-conditional", action=argparse.BooleanOptionalAction,
                        default=BETA_VAE_CONDITIONAL,
                        help="give the Beta-VAE the language label, as the report does")
    parser.add_argument("--pooled-vae-beta", type=float, default=POOLED_VAE_BETA,
                        help="KL weight of the time-pooled VAE")
    args = parser.parse_args(argv)
    check_args(args)
    if args.embed_dim < 1:
        raise common.PipelineError("--embed-dim must be at least 1")
    prepare_results(args.results_dir)
    settings = model_settings(args)
    names = MODELS_HERE if args.model == "all" else [args.model]
    stopped = []
    for name in names:
        s = settings[name]
        config = dict(base_config(args), **s, embed_dim=args.embed_dim if s["conditional"] else 0)
        # one diverged model (or seed) must not cost the others
        stopped += train_seeds(name, config, args.data_dir, args.results_dir, args.n_seeds,
                               force=args.force, threads=args.threads)
    if stopped:
        raise TrainingStopped(" | ".join(stopped))


if __name__ == "__main__":
    common.run_main(main)
