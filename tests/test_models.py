"""models.py: shapes, the losses against hand computations, learning, the registry."""
import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common  # noqa: E402
import models  # noqa: E402
from models import (MODELS, ae_loss, build_model, kl_divergence, load_checkpoint,  # noqa: E402
                    recon_loss, vae_loss)


def config(name, **kw):
    c = {"model": name, "latent_dim": 64, "n_languages": 2, "embed_dim": 16,
         "beta": 4.0 if name == "beta_vae" else 1.0, "conditional": name in ("cvae", "beta_vae")}
    return dict(c, **kw)


def batch(b=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, common.N_MFCC, common.N_FRAMES, generator=g)
    y = torch.randint(0, 2, (b,), generator=g)
    return x, y


@pytest.mark.parametrize("name", ["vae", "cvae", "beta_vae", "autoencoder", "beta_vae_uncond",
                                  "pooled_vae", "pooled_ae"])
def test_shapes_every_model(name):
    torch.manual_seed(0)
    model = build_model(config(name))
    x, y = batch(3)
    for mode in (model.train, model.eval):
        mode()
        recon, mu, logvar = model(x, y)
        assert recon.shape == (3, 40, 430)
        assert mu.shape == (3, 64)
        assert (logvar is None) == (name in ("autoencoder", "pooled_ae"))
        if logvar is not None:
            assert logvar.shape == (3, 64)
    assert model.encode(x, y).shape == (3, 64)
    assert model.decode(torch.zeros(3, 64), y).shape == (3, 40, 430)
    assert model.uses_labels == (name in ("cvae", "beta_vae"))


def test_beta_vae_uncond_needs_no_labels():
    model = build_model(config("beta_vae_uncond", beta=4.0)).train()
    assert not model.uses_labels and model.beta == 4.0 and not hasattr(model, "embed")
    x, _ = batch(2)
    recon, mu, logvar = model(x)  # no y at all
    assert torch.isfinite(model.loss(recon, x, mu, logvar)[0])


@pytest.mark.parametrize("name", ["pooled_vae", "pooled_ae"])
def test_pooled_encoder_ignores_when(name):
    """Circular padding + stride 1 + pooling over all frames: a circular shift of the frames gives
    the same code, and any number of frames gives a code of the same size."""
    torch.manual_seed(0)
    model = build_model(config(name)).eval()
    x, _ = batch(2)
    with torch.inference_mode():
        z = model.encode(x)
        for shift in (1, 3, 50):
            torch.testing.assert_close(model.encode(torch.roll(x, shift, dims=2)), z, rtol=1e-4, atol=1e-4)
        assert model.encode(x[:, :, :200]).shape == z.shape == (2, 64)
        # the report's flattening encoder does care where a sound is
        vae = build_model(config("vae")).eval()
        assert not torch.allclose(vae.encode(torch.roll(x, 3, dims=2)), vae.encode(x), atol=1e-3)


def test_seeded_names():
    assert models.seeded_name("vae", 42, 42) == "vae" and models.seeded_name("vae", 43, 42) == "vae_seed43"
    assert models.split_seeded("pooled_ae_seed44") == ("pooled_ae", 44)
    assert models.split_seeded("vade_fg_bow") == ("vade_fg_bow", None)
    assert models.train_command("beta_vae_uncond_seed43") == "python train_cvae.py --model beta_vae_uncond"
    assert models.train_command("vade_fg_bow") == "python train_vade.py --features fg_bow"


def test_report_architecture():
    model = build_model(config("vae"))
    convs = [m for m in model.encoder.modules() if isinstance(m, torch.nn.Conv1d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0], c.stride[0], c.padding[0]) for c in convs] == \
        [(40, 64, 4, 2, 1), (64, 128, 4, 2, 1), (128, 256, 4, 2, 1)]
    deconvs = [m for m in model.decoder.modules() if isinstance(m, torch.nn.ConvTranspose1d)]
    assert [(d.in_channels, d.out_channels) for d in deconvs] == [(256, 128), (128, 64), (64, 40)]
    assert model.fc_mu.in_features == 256 * 53
    # the encoder really goes 430 -> 215 -> 107 -> 53 frames
    frames, h = [], torch.zeros(1, 40, 430)
    for layer in model.encoder.net:
        h = layer(h)
        if isinstance(layer, torch.nn.Conv1d):
            frames.append(h.shape[-1])
    assert frames == [215, 107, 53]
    # the output layer is linear: no BatchNorm or ReLU after the last transposed conv
    assert isinstance(model.decoder.net[-1], torch.nn.ConvTranspose1d)


def test_conditioning():
    cvae = build_model(config("cvae"))
    assert cvae.embed.embedding_dim == 16 and cvae.fc_mu.in_features == 256 * 53 + 16
    assert cvae.decoder.fc.in_features == 64 + 16
    x, y = batch(2)
    with pytest.raises(ValueError):
        cvae(x)  # a conditional model without its labels is a bug, not a silent default
    cvae.eval()
    # the label changes the code: the embedding really enters the heads
    assert not torch.allclose(cvae.encode(x, torch.zeros(2, dtype=torch.long)),
                              cvae.encode(x, torch.ones(2, dtype=torch.long)))
    uncond = build_model(config("beta_vae", conditional=False))
    assert not uncond.uses_labels and not hasattr(uncond, "embed") and uncond.beta == 4.0
    assert uncond(x)[0].shape == (2, 40, 430)


def test_losses_by_hand():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    recon = torch.zeros(2, 2)
    # sum of squares 1 + 4 + 9 + 16 = 30 over a batch of 2
    assert recon_loss(recon, x).item() == pytest.approx(15.0)
    mu = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(2.0)], [0.0, 0.0]])
    # -1/2 (1 + 0 - 1 - 1) = 0.5 and -1/2 (1 + ln 2 - 0 - 2) = (1 - ln 2) / 2, over a batch of 2
    kl = (0.5 + (1 - math.log(2.0)) / 2) / 2
    assert kl_divergence(mu, logvar).item() == pytest.approx(kl)
    loss, rec, k = vae_loss(recon, x, mu, logvar, beta=4.0)
    assert (loss.item(), rec.item(), k.item()) == pytest.approx((15.0 + 4.0 * kl, 15.0, kl))
    loss, rec, k = ae_loss(recon, x)
    assert loss.item() == pytest.approx(15.0) and k is None


def test_kl_zero_at_prior():
    assert kl_divergence(torch.zeros(5, 64), torch.zeros(5, 64)).item() == 0.0
    assert kl_divergence(torch.ones(5, 64), torch.zeros(5, 64)).item() > 0


@pytest.mark.parametrize("name", ["vae", "cvae", "autoencoder", "pooled_ae"])
def test_steps_lower_loss(name):
    torch.manual_seed(0)
    model = build_model(config(name)).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = batch(4, seed=1)
    losses = []
    for _ in range(8):
        recon, mu, logvar = model(x, y)
        loss = model.loss(recon, x, mu, logvar)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0], losses


def test_registry_and_checkpoint_errors(tmp_path):
    assert set(MODELS) >= {"vae", "cvae", "beta_vae", "autoencoder"}
    with pytest.raises(common.PipelineError, match="unknown model"):
        build_model(config("nope"))
    with pytest.raises(common.PipelineError, match="train_cvae.py --model cvae"):
        load_checkpoint(tmp_path / "cvae.pth")
    bad = tmp_path / "vae.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(common.PipelineError, match="train_vae.py"):
        load_checkpoint(bad)


def test_checkpoint_roundtrip(tmp_path):
    torch.manual_seed(0)
    model = build_model(config("cvae")).eval()
    path = tmp_path / "cvae.pth"
    common.torch_save(path, {"state_dict": model.state_dict(), "config": config("cvae"), "epoch": 1,
                             "loss_history": []})
    loaded, ckpt = load_checkpoint(path)
    assert not loaded.training and ckpt["epoch"] == 1
    x, y = batch(2)
    with torch.inference_mode():
        assert torch.equal(model.encode(x, y), loaded.encode(x, y))
    assert models.LATENT_DIM == 64 and models.EMBED_DIM == 16
