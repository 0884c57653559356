"""The report's four models (section 3.2) and their losses.

    from models import build_model, load_checkpoint
    model = build_model({"model": "cvae", "latent_dim": 64, "n_languages": 2,
                         "embed_dim": 16, "beta": 1.0, "conditional": True})

Every model maps an MFCC segment x of shape (B, 40, 430) to
`forward(x, y=None) -> (recon, mu, logvar)` (logvar is None for the autoencoder),
`encode(x, y=None) -> mu` (what results/latents/<model>.npy holds) and `decode(z, y=None)`;
`uses_labels` is True where the model sees the language label y (integer ids).
Trained by train_vae.py (vae) and train_cvae.py (the others, and the added beta_vae_uncond,
pooled_vae, pooled_ae); VaDE (a Gaussian-mixture prior, clusters from q(c|x)) by train_vade.py.
Models trained with several seeds: the first seed's files are <model>.pth / .npy / .csv, the
others <model>_seed<S>.pth / .npy / .csv (seeded_name, split_seeded).
"""
import math
import re

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import N_FRAMES, N_MFCC, PipelineError, vade_features

# ----------------------------------------------------------------------------
# architecture (report section 3.2.1)
LATENT_DIM = 64  # size of the latent code
EMBED_DIM = 16  # size of the learned language embedding (conditional models)
CHANNELS = (64, 128, 256)  # encoder conv channels; the decoder mirrors them
KERNEL, STRIDE, PADDING = 4, 2, 1  # every conv and transposed conv
ENC_FRAMES = 53  # 430 -> 215 -> 107 -> 53 frames after the three strided convs
# ----------------------------------------------------------------------------
# pooled encoder (issue 5): stride-1 convs with circular padding, then mean and std over all
# frames, so the code does not depend on *when* a sound happens (the report's flattening does)
POOL_CHANNELS = (64, 64, 64)  # pooled encoder conv channels (small: stride 1 costs 430 frames per layer)
POOL_KERNEL = 5  # odd: "same" length with circular padding
POOL_DILATIONS = (1, 2, 4)  # receptive field 1 + 4 * (1 + 2 + 4) = 29 frames, about 2 s
# ----------------------------------------------------------------------------
# VaDE (Jiang et al. 2017)
VADE_LATENT_DIM = 10  # the paper's latent size; the mixture lives here
MLP_HIDDEN = (256, 128)  # VaDE on flat feature vectors: encoder widths, the decoder mirrors them
# the decoder's output paddings: 53 -> 107 -> 215 -> 430 exactly, no interpolation
OUTPUT_PADDINGS = (1, 1, 0)


def _conv_len(n):
    return (n + 2 * PADDING - KERNEL) // STRIDE + 1


def _deconv_len(n, output_padding):
    return (n - 1) * STRIDE - 2 * PADDING + KERNEL + output_padding


# the shapes above are arithmetic, not hopes: fail at import if someone edits one of them
_n = N_FRAMES
for _ in CHANNELS:
    _n = _conv_len(_n)
assert _n == ENC_FRAMES, _n
for _op in OUTPUT_PADDINGS:
    _n = _deconv_len(_n, _op)
assert _n == N_FRAMES, _n


# ----------------------------------------------------------------------------
# losses: per segment sums, averaged over the batch, so beta means the same at any batch size
def recon_loss(recon, x):
    # L_recon = (1/B) * sum_b sum_{c,t} (x̂[b,c,t] - x[b,c,t])^2
    return F.mse_loss(recon, x, reduction="sum") / x.shape[0]


def kl_divergence(mu, logvar):
    # KL(N(mu, exp(logvar)) || N(0, I)) = (1/B) * sum_b sum_j -1/2 (1 + logvar - mu^2 - exp(logvar))
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / mu.shape[0]


def vae_loss(recon, x, mu, logvar, beta):
    # L_VAE = L_recon + beta * KL
    rec, kl = recon_loss(recon, x), kl_divergence(mu, logvar)
    return rec + beta * kl, rec, kl


def ae_loss(recon, x):
    # L_AE = L_recon (no KL term: kl is None)
    rec = recon_loss(recon, x)
    return rec, rec, None


# ----------------------------------------------------------------------------
# the shared encoder and decoder
class Encoder(nn.Module):
    """(B, 40, 430) -> (B, 256 * 53): three strided Conv1d + BatchNorm + ReLU, flattened."""

    def __init__(self):
        super().__init__()
        layers, c_in = [], N_MFCC
        for c_out in CHANNELS:
            layers += [nn.Conv1d(c_in, c_out, KERNEL, STRIDE, PADDING),
                       nn.BatchNorm1d(c_out), nn.ReLU(inplace=True)]
            c_in = c_out
        self.net = nn.Sequential(*layers)
        self.out_dim = CHANNELS[-1] * ENC_FRAMES

    def forward(self, x):
        return self.net(x).flatten(1)


class Decoder(nn.Module):
    """(B, in_dim) -> (B, 40, 430): linear to (256, 53), then ConvTranspose1d 256->128->64->40."""

    def __init__(self, in_dim):
        super().__init__()
        self.fc = nn.Linear(in_dim, CHANNELS[-1] * ENC_FRAMES)
        chans = list(reversed(CHANNELS)) + [N_MFCC]  # 256, 128, 64, 40
        layers = []
        for i, (c_in, c_out) in enumerate(zip(chans[:-1], chans[1:])):
            layers.append(nn.ConvTranspose1d(c_in, c_out, KERNEL, STRIDE, PADDING,
                                             output_padding=OUTPUT_PADDINGS[i]))
            if i < len(chans) - 2:  # the last layer is linear: MFCCs are z-scored, not bounded
                layers += [nn.BatchNorm1d(c_out), nn.ReLU(inplace=True)]
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        return self.net(self.fc(z).view(-1, CHANNELS[-1], ENC_FRAMES))


# ----------------------------------------------------------------------------
# the models
class ConvVAE(nn.Module):
    """Report 3.2.1; with conditional=True, the label embedding of 3.2.2 joins the heads and z."""

    def __init__(self, latent_dim=LATENT_DIM, beta=1.0, conditional=False, n_languages=2,
                 embed_dim=EMBED_DIM):
        super().__init__()
        self.latent_dim, self.beta, self.uses_labels = latent_dim, float(beta), bool(conditional)
        self.encoder = Encoder()
        cond_dim = embed_dim if conditional else 0
        if conditional:
            self.embed = nn.Embedding(n_languages, embed_dim)
        self.fc_mu = nn.Linear(self.encoder.out_dim + cond_dim, latent_dim)
        self.fc_logvar = nn.Linear(self.encoder.out_dim + cond_dim, latent_dim)
        self.decoder = Decoder(latent_dim + cond_dim)

    def _with_label(self, h, y):
        if not self.uses_labels:
            return h
        if y is None:
            raise ValueError(f"{type(self).__name__} is conditional: pass the language ids y")
        return torch.cat([h, self.embed(y)], dim=1)

    def encode_dist(self, x, y=None):
        h = self._with_label(self.encoder(x), y)
        return self.fc_mu(h), self.fc_logvar(h)

    def encode(self, x, y=None):
        return self.encode_dist(x, y)[0]

    def decode(self, z, y=None):
        return self.decoder(self._with_label(z, y))

    def forward(self, x, y=None):
        mu, logvar = self.encode_dist(x, y)
        # sample while training; in eval mode decode the mean so reconstructions are repeatable
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.decode(z, y), mu, logvar

    def loss(self, recon, x, mu, logvar):
        return vae_loss(recon, x, mu, logvar, self.beta)


class CVAE(ConvVAE):
    """Report 3.2.2: a learned 16-d language embedding concatenated before the heads and to z."""

    def __init__(self, n_languages=2, latent_dim=LATENT_DIM, embed_dim=EMBED_DIM, beta=1.0):
        super().__init__(latent_dim, beta, True, n_languages, embed_dim)


class BetaVAE(ConvVAE):
    """Report 3.2.3: the CVAE with beta = 4; conditional=False drops the label (plain VAE, beta 4)."""

    def __init__(self, n_languages=2, latent_dim=LATENT_DIM, embed_dim=EMBED_DIM, beta=4.0,
                 conditional=True):
        super().__init__(latent_dim, beta, conditional, n_languages, embed_dim)


class Autoencoder(nn.Module):
    """Report 3.2.4: the same encoder and decoder with a deterministic 64-d code, no KL."""

    uses_labels = False

    def __init__(self, latent_dim=LATENT_DIM):
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = Encoder()
        self.fc_code = nn.Linear(self.encoder.out_dim, latent_dim)
        self.decoder = Decoder(latent_dim)

    def encode(self, x, y=None):
        return self.fc_code(self.encoder(x))

    def decode(self, z, y=None):
        return self.decoder(z)

    def forward(self, x, y=None):
        code = self.encode(x)
        return self.decode(code), code, None

    def loss(self, recon, x, mu, logvar):
        return ae_loss(recon, x)


class PooledEncoder(nn.Module):
    """(B, 40, T) -> (B, 2 * POOL_CHANNELS[-1]): circular stride-1 dilated convs, then mean and std over time.
    Any T works, and a circular shift of the frames leaves the output unchanged (exactly, up to
    float rounding): every layer commutes with the shift and the pooling forgets it."""

    def __init__(self):
        super().__init__()
        layers, c_in = [], N_MFCC
        for c_out, d in zip(POOL_CHANNELS, POOL_DILATIONS):
            layers += [nn.Conv1d(c_in, c_out, POOL_KERNEL, 1, d * (POOL_KERNEL // 2), dilation=d,
                                 padding_mode="circular"),
                       nn.BatchNorm1d(c_out), nn.ReLU(inplace=True)]
            c_in = c_out
        self.net = nn.Sequential(*layers)
        self.out_dim = 2 * POOL_CHANNELS[-1]

    def forward(self, x):
        h = self.net(x)
        # std from the mean square: torch.std's backward is NaN for a constant channel
        mean = h.mean(dim=2)
        std = (h.pow(2).mean(dim=2) - mean.pow(2)).clamp_min(1e-6).sqrt()
        return torch.cat([mean, std], dim=1)


class PooledVAE(ConvVAE):
    """The ConvVAE with the time-pooled encoder (the report's decoder); beta 0 makes no sense,
    use PooledAE for the autoencoder."""

    def __init__(self, latent_dim=LATENT_DIM, beta=1.0):
        super().__init__(latent_dim, beta, conditional=False)
        self.encoder = PooledEncoder()
        self.fc_mu = nn.Linear(self.encoder.out_dim, latent_dim)
        self.fc_logvar = nn.Linear(self.encoder.out_dim, latent_dim)


class PooledAE(Autoencoder):
    """The Autoencoder with the time-pooled encoder (the report's decoder)."""

    def __init__(self, latent_dim=LATENT_DIM):
        super().__init__(latent_dim)
        self.encoder = PooledEncoder()
        self.fc_code = nn.Linear(self.encoder.out_dim, latent_dim)


# ----------------------------------------------------------------------------
# VaDE losses, per sample and averaged over the batch like the others. Notation: q(z|x) =
# N(mu, exp(logvar)) (J dims), prior p(c) = pi (K), p(z|c) = N(mu_c, exp(logvar_c)),
# gamma[b, c] = q(c|x_b) ~ p(c|z_b) (Jiang et al. 2017, eq. 16).
LOG_2PI = math.log(2 * math.pi)


def vade_gamma(z, pi_logits, mu_c, logvar_c):
    # gamma_c = pi_c N(z | mu_c, var_c) / sum_c' pi_c' N(z | mu_c', var_c')   (softmax of log terms)
    log_pz_c = -0.5 * (LOG_2PI + logvar_c + (z.unsqueeze(1) - mu_c).pow(2) / logvar_c.exp()).sum(2)
    return torch.softmax(torch.log_softmax(pi_logits, 0) + log_pz_c, dim=1)


def vade_log_p_z_given_c(mu, logvar, gamma, mu_c, logvar_c):
    # E_q[log p(z|c)] = -1/2 sum_c gamma_c sum_j [log 2pi + logvar_cj + (var_j + (mu_j - mu_cj)^2) / var_cj]
    t = LOG_2PI + logvar_c + (logvar.exp().unsqueeze(1) + (mu.unsqueeze(1) - mu_c).pow(2)) / logvar_c.exp()
    return (-0.5 * (gamma * t.sum(2)).sum(1)).mean()


def vade_log_p_c(gamma, pi_logits):
    # E_q[log p(c)] = sum_c gamma_c log pi_c
    return (gamma * torch.log_softmax(pi_logits, 0)).sum(1).mean()


def vade_entropy_z(logvar):
    # -E_q[log q(z|x)] = 1/2 sum_j (log 2pi + 1 + logvar_j)
    return (0.5 * (LOG_2PI + 1 + logvar).sum(1)).mean()


def vade_entropy_c(gamma):
    # -E_q[log q(c|x)] = -sum_c gamma_c log gamma_c
    return -(gamma * torch.log(gamma.clamp_min(1e-10))).sum(1).mean()


def vade_loss(recon, x, mu, logvar, gamma, pi_logits, mu_c, logvar_c):
    # -ELBO = L_recon - E[log p(z|c)] - E[log p(c)] - H[q(z|x)] - H[q(c|x)]; the last four are "kl"
    rec = recon_loss(recon, x)
    kl = -(vade_log_p_z_given_c(mu, logvar, gamma, mu_c, logvar_c) + vade_log_p_c(gamma, pi_logits)
           + vade_entropy_z(logvar) + vade_entropy_c(gamma))
    return rec + kl, rec, kl


class MLPEncoder(nn.Module):
    """(B, D) -> (B, MLP_HIDDEN[-1]) for flat feature vectors."""

    def __init__(self, in_dim):
        super().__init__()
        layers, d = [], in_dim
        for h in MLP_HIDDEN:
            layers += [nn.Linear(d, h), nn.ReLU(inplace=True)]
            d = h
        self.net, self.out_dim = nn.Sequential(*layers), d

    def forward(self, x):
        return self.net(x)


class MLPDecoder(nn.Module):
    """(B, latent) -> (B, D), mirroring MLPEncoder, linear output (standardized features)."""

    def __init__(self, latent_dim, out_dim):
        super().__init__()
        layers, d = [], latent_dim
        for h in reversed(MLP_HIDDEN):
            layers += [nn.Linear(d, h), nn.ReLU(inplace=True)]
            d = h
        self.net = nn.Sequential(*layers, nn.Linear(d, out_dim))

    def forward(self, z):
        return self.net(z)


class VaDE(nn.Module):
    """Variational Deep Embedding: a VAE whose prior is a K-component Gaussian mixture.

    input_dim None: the report's conv encoder/decoder on (B, 40, 430) MFCC; an int D: an MLP on
    (B, D) feature vectors. K is the number of languages in the data (the labels are never read).
    forward(x) -> (recon, mu, logvar); gamma(x) -> q(c|x), (B, K); clusters = gamma.argmax(1).
    """

    uses_labels = False

    def __init__(self, n_clusters, latent_dim=VADE_LATENT_DIM, input_dim=None):
        super().__init__()
        self.latent_dim, self.n_clusters = latent_dim, n_clusters
        if input_dim is None:
            self.encoder, self.decoder = Encoder(), Decoder(latent_dim)
        else:
            self.encoder, self.decoder = MLPEncoder(input_dim), MLPDecoder(latent_dim, input_dim)
        self.fc_mu = nn.Linear(self.encoder.out_dim, latent_dim)
        self.fc_logvar = nn.Linear(self.encoder.out_dim, latent_dim)
        # the mixture; set from a GMM on the pretrained codes by train_vade.py
        self.pi_logits = nn.Parameter(torch.zeros(n_clusters))
        self.mu_c = nn.Parameter(torch.randn(n_clusters, latent_dim))
        self.logvar_c = nn.Parameter(torch.zeros(n_clusters, latent_dim))
        self.pretraining = False  # True: a plain autoencoder on the mean (Jiang's pretraining)

    def encode_dist(self, x, y=None):
        h = self.encoder(x)
        return self.fc_mu(h), self.fc_logvar(h)

    def encode(self, x, y=None):
        return self.encode_dist(x)[0]

    def decode(self, z, y=None):
        return self.decoder(z)

    def forward(self, x, y=None):
        mu, logvar = self.encode_dist(x)
        if self.pretraining:
            return self.decode(mu), mu, None
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        self._z = z  # gamma is evaluated at the sampled z, as in the paper
        return self.decode(z), mu, logvar

    def gamma_of_z(self, z):
        return vade_gamma(z, self.pi_logits, self.mu_c, self.logvar_c)

    @torch.no_grad()
    def gamma(self, x):
        """q(c|x) at the encoder mean: (B, K), rows sum to one."""
        return self.gamma_of_z(self.encode(x))

    def loss(self, recon, x, mu, logvar):
        if self.pretraining or logvar is None:
            return ae_loss(recon, x)
        gamma = self.gamma_of_z(self._z)
        return vade_loss(recon, x, mu, logvar, gamma, self.pi_logits, self.mu_c, self.logvar_c)


# ----------------------------------------------------------------------------
# several seeds per model: <model> for the first seed, <model>_seed<S> for the others
SEED_SUFFIX = re.compile(r"^(?P<model>.+)_seed(?P<seed>\d+)$")


def seeded_name(model, seed, first_seed):
    """The file stem of one seed's run: the first seed keeps the contract's plain name."""
    return model if seed == first_seed else f"{model}_seed{seed}"


def vade_name(features):
    """VaDE's file stem and method name for an input: vade (the report's MFCC) or vade_<features>."""
    return "vade" if features == "mfcc" else f"vade_{features}"


def split_seeded(name):
    """'vae_seed43' -> ('vae', 43); 'vae' -> ('vae', None)."""
    m = SEED_SUFFIX.match(name)
    return (m["model"], int(m["seed"])) if m else (name, None)


# ----------------------------------------------------------------------------
# registry: name -> builder(config). Add a model with one line, e.g.
#   MODELS["beta_vae_uncond"] = lambda c: BetaVAE(c["n_languages"], c["latent_dim"],
#                                                 c["embed_dim"], c["beta"], conditional=False)
MODELS = {
    "vae": lambda c: ConvVAE(c["latent_dim"], c["beta"]),
    "cvae": lambda c: CVAE(c["n_languages"], c["latent_dim"], c["embed_dim"], c["beta"]),
    "beta_vae": lambda c: BetaVAE(c["n_languages"], c["latent_dim"], c["embed_dim"], c["beta"],
                                  c["conditional"]),
    "autoencoder": lambda c: Autoencoder(c["latent_dim"]),
    # issue 5: the report's Beta-VAE saw the labels; this one does not
    "beta_vae_uncond": lambda c: BetaVAE(c["n_languages"], c["latent_dim"], c["embed_dim"], c["beta"],
                                         conditional=False),
    "pooled_vae": lambda c: PooledVAE(c["latent_dim"], c["beta"]),
    "pooled_ae": lambda c: PooledAE(c["latent_dim"]),
    # K = the number of languages in the data; input_dim None = MFCC segments
    "vade": lambda c: VaDE(c["n_clusters"], c["latent_dim"], c.get("input_dim")),
}


def train_command(name):
    """The command that writes results/models/<name>.pth (for error messages)."""
    name = split_seeded(name)[0]
    if name == "vae":
        return "python train_vae.py"
    if vade_features(name) is not None:
        return f"python train_vade.py --features {vade_features(name)}"
    return f"python train_cvae.py --model {name}"


def build_model(config):
    name = config["model"]
    if name not in MODELS:
        raise PipelineError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    return MODELS[name](config)


def load_checkpoint(path, device="cpu"):
    """Return (model in eval mode on device, checkpoint dict) for results/models/<model>.pth."""
    from pathlib import Path
    path = Path(path)
    if not path.exists():
        raise PipelineError(f"{path} not found: run `{train_command(path.stem)}` first")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
        model = build_model(ckpt["config"])
        model.load_state_dict(ckpt["state_dict"])
    except PipelineError:
        raise
    except Exception as e:  # truncated file, or one written by another version of the model
        raise PipelineError(f"{path} is unreadable ({e}): re-run `{train_command(path.stem)}`") from e
    return model.to(device).eval(), ckpt
