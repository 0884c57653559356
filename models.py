"""The report's four models (section 3.2) and their losses.

    from models import build_model, load_checkpoint
    model = build_model({"model": "cvae", "latent_dim": 64, "n_languages": 2,
                         "embed_dim": 16, "beta": 1.0, "conditional": True})

Every model maps an MFCC segment x of shape (B, 40, 430) to
`forward(x, y=None) -> (recon, mu, logvar)` (logvar is None for the autoencoder),
`encode(x, y=None) -> mu` (what results/latents/<model>.npy holds) and `decode(z, y=None)`;
`uses_labels` is True where the model sees the language label y (integer ids).
Trained by train_vae.py (vae) and train_cvae.py (the others).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import N_FRAMES, N_MFCC, PipelineError

# ----------------------------------------------------------------------------
# architecture (report section 3.2.1)
LATENT_DIM = 64  # size of the latent code
EMBED_DIM = 16  # size of the learned language embedding (conditional models)
CHANNELS = (64, 128, 256)  # encoder conv channels; the decoder mirrors them
KERNEL, STRIDE, PADDING = 4, 2, 1  # every conv and transposed conv
ENC_FRAMES = 53  # 430 -> 215 -> 107 -> 53 frames after the three strided convs
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
}


def train_command(name):
    """The command that writes results/models/<name>.pth (for error messages)."""
    return "python train_vae.py" if name == "vae" else f"python train_cvae.py --model {name}"


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
