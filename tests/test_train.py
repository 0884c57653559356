"""train_vae.py and train_cvae.py on tiny features the tests write themselves (one epoch)."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import common  # noqa: E402
import train_cvae  # noqa: E402
import train_vae  # noqa: E402
from models import load_checkpoint  # noqa: E402


def make_features(data_dir, n, shape=(40, 430), nan=False):
    """n random segments from songs of two languages, in the file contract's format."""
    rng = np.random.default_rng(n)
    mfcc = rng.standard_normal((n, *shape), dtype=np.float32)
    if nan:
        mfcc[0, 0, 0] = np.nan
    common.save_npy(common.mfcc_path(data_dir), mfcc)
    common.write_csv(common.segments_path(data_dir), pd.DataFrame({
        "segment_id": [f"s{i:03d}" for i in range(n)],
        "song_id": [f"song{i // 2}" for i in range(n)],
        "language": ["english" if i % 3 else "bangla" for i in range(n)],
        "title": "t", "artist": "a", "start_s": 0.0}))
    return data_dir


def args(data_dir, results_dir, *extra, epochs=1, n_seeds=1):
    return ["--data-dir", str(data_dir), "--results-dir", str(results_dir), "--epochs", str(epochs),
            "--n-seeds", str(n_seeds), *extra]


@pytest.fixture(scope="module")
def data6(tmp_path_factory):
    return make_features(tmp_path_factory.mktemp("data6"), 6)


def test_vae_outputs_and_reload(data6, tmp_path, capsys):
    res = tmp_path / "results"
    train_vae.main(args(data6, res, "--batch-size", "4", epochs=2))
    out = capsys.readouterr().out
    assert "run vae_lat64_beta1_b4_lr1e-4_s42" in out and "vae epoch 2/2" in out and "segments/s" in out

    model, ckpt = load_checkpoint(common.model_path(res, "vae"))  # weights_only=True inside
    cfg = ckpt["config"]
    assert ckpt["epoch"] == 2 and [h["epoch"] for h in ckpt["loss_history"]] == [1, 2]
    assert cfg["languages"] == ["bangla", "english"] and cfg["n_segments"] == 6
    assert (cfg["latent_dim"], cfg["batch_size"], cfg["learning_rate"], cfg["beta"]) == (64, 4, 1e-4, 1.0)
    assert torch.load(common.model_path(res, "vae"), weights_only=True)["config"] == cfg

    losses = pd.read_csv(common.losses_path(res, "vae"))
    assert list(losses.columns) == common.LOSS_COLUMNS and len(losses) == 2
    assert np.allclose(losses["loss"], losses["recon"] + losses["kl"], rtol=1e-4)

    latents = np.load(common.latents_path(res, "vae"))
    assert latents.dtype == np.float32 and latents.shape == (6, 64)  # one row per segment
    mfcc, _ = common.load_features(data6)
    again = train_vae.encode_all(model, mfcc, torch.zeros(6, dtype=torch.long), torch.device("cpu"))
    np.testing.assert_allclose(again, latents, rtol=0, atol=1e-5)

    # a re-run with the same settings is done already; --force retrains
    mtime = common.model_path(res, "vae").stat().st_mtime_ns
    train_vae.main(args(data6, res, "--batch-size", "4", epochs=2))
    assert "skipping" in capsys.readouterr().out
    assert common.model_path(res, "vae").stat().st_mtime_ns == mtime


def test_same_seed_same_latents(data6, tmp_path):
    runs = {}
    for name, seed in (("a", "42"), ("b", "42"), ("c", "7")):
        train_vae.main(args(data6, tmp_path / name, "--seed", seed, "--batch-size", "4"))
        runs[name] = np.load(common.latents_path(tmp_path / name, "vae"))
    assert np.array_equal(runs["a"], runs["b"])
    assert not np.allclose(runs["a"], runs["c"])


def test_cvae_all(data6, tmp_path):
    res = tmp_path / "results"
    train_cvae.main(args(data6, res))
    assert train_cvae.MODELS_HERE[:3] == ["cvae", "beta_vae", "autoencoder"]
    for name in train_cvae.MODELS_HERE:
        assert common.latents_path(res, name).exists(), name
    model, ckpt = load_checkpoint(common.model_path(res, "beta_vae_uncond"))
    assert not model.uses_labels and ckpt["config"]["beta"] == 4.0 and ckpt["config"]["conditional"] is False
    assert type(load_checkpoint(common.model_path(res, "pooled_ae"))[0]).__name__ == "PooledAE"
    for name, beta, cond in (("cvae", 1.0, True), ("beta_vae", 4.0, True), ("autoencoder", 0.0, False)):
        model, ckpt = load_checkpoint(common.model_path(res, name))
        assert (ckpt["config"]["beta"], ckpt["config"]["conditional"], model.uses_labels) == (beta, cond, cond)
        assert np.load(common.latents_path(res, name)).shape == (6, 64)
        kl = pd.read_csv(common.losses_path(res, name))["kl"]
        assert kl.isna().all() == (name == "autoencoder")
    # the constant's flag makes the Beta-VAE unconditional
    train_cvae.main(args(data6, tmp_path / "uncond", "--model", "beta_vae", "--no-beta-vae-conditional"))
    model, ckpt = load_checkpoint(common.model_path(tmp_path / "uncond", "beta_vae"))
    assert not model.uses_labels and ckpt["config"]["conditional"] is False
    assert not any(k.startswith("embed") for k in ckpt["state_dict"])


@pytest.mark.parametrize("n", [3, 33])  # smaller than a batch; a last batch of one segment
def test_small_datasets_train(tmp_path, n):
    data = make_features(tmp_path / "data", n)
    train_cvae.main(args(data, tmp_path / "results", "--model", "cvae"))
    latents = np.load(common.latents_path(tmp_path / "results", "cvae"))
    assert latents.shape == (n, 64) and np.isfinite(latents).all()


def test_nan_keeps_last_good_checkpoint(data6, tmp_path, monkeypatch):
    real_build = train_vae.build_model

    def build_poisoned(config):
        """The loss turns NaN from the third step on (epoch 2 of 2 steps per epoch)."""
        model = real_build(config)
        real_loss, calls = model.loss, []

        def loss(*a):
            calls.append(1)
            out = real_loss(*a)
            return out if len(calls) <= 2 else tuple(t * float("nan") for t in out)
        model.loss = loss
        return model

    monkeypatch.setattr(train_vae, "build_model", build_poisoned)
    res = tmp_path / "results"
    with pytest.raises(train_vae.TrainingStopped, match="epoch 2"):
        train_vae.main(args(data6, res, "--batch-size", "4", epochs=3))
    model, ckpt = load_checkpoint(common.model_path(res, "vae"))
    assert ckpt["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())
    assert len(pd.read_csv(common.losses_path(res, "vae"))) == 1
    assert np.isfinite(np.load(common.latents_path(res, "vae"))).all()
    failures = pd.read_csv(common.failures_path(data6))
    assert list(failures.columns) == common.FAILURE_COLUMNS
    assert (failures["stage"] == "train").any() and failures["error"].str.contains("epoch 2").any()


def run_script(script, *argv):
    return subprocess.run([sys.executable, script, *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_bad_features_exit_1(tmp_path):
    # no features at all: the message names the command that makes them
    r = run_script("train_vae.py", *args(tmp_path / "nothing", tmp_path / "results"))
    assert r.returncode == 1 and "build_dataset.py" in r.stderr and "Traceback" not in r.stderr
    # NaN in the features: stops in epoch 1 with a failure row, nothing written
    data = make_features(tmp_path / "nan", 4, nan=True)
    r = run_script("train_cvae.py", *args(data, tmp_path / "results", "--model", "autoencoder"))
    assert r.returncode == 1 and "epoch 1" in r.stderr and "Traceback" not in r.stderr
    assert "train" in set(pd.read_csv(common.failures_path(data))["stage"])
    assert not common.model_path(tmp_path / "results", "autoencoder").exists()


def test_misshaped_features(tmp_path):
    data = make_features(tmp_path / "data", 4, shape=(20, 430))
    with pytest.raises(common.PipelineError, match="build_dataset.py"):
        train_vae.main(args(data, tmp_path / "results"))


def test_model_seeds_and_their_spread(data6, tmp_path, capsys):
    """N seeds: <model>.* for the first (the contract), <model>_seed<S>.* for the others; the
    analysis clusters each, keeps per-seed rows with model_seed, and the report gives the spread."""
    import analyze_advanced
    import metrics
    res = tmp_path / "results"
    assert train_vae.N_MODEL_SEEDS == 3
    train_vae.main(args(data6, res, "--seed", "5", n_seeds=3))
    names = ["vae", "vae_seed6", "vae_seed7"]
    for n in names:
        for p in (common.model_path(res, n), common.losses_path(res, n), common.latents_path(res, n)):
            assert p.exists(), p
    z = [np.load(common.latents_path(res, n)) for n in names]
    assert not np.allclose(z[0], z[1])
    assert [load_checkpoint(common.model_path(res, n))[1]["config"]["seed"] for n in names] == [5, 6, 7]
    # the seed-5 run is the one a single-seed run with --seed 5 writes
    train_vae.main(args(data6, tmp_path / "one", "--seed", "5"))
    assert np.array_equal(np.load(common.latents_path(tmp_path / "one", "vae")), z[0])
    assert metrics.discover_models(res)[:4] == common.MODEL_NAMES and "vae_seed6" not in metrics.discover_models(res)

    analyze_advanced.analyze(data6, res, seed=3, models=["vae"])
    mdir = common.metrics_dir(res)
    adv = pd.read_csv(mdir / "advanced_metrics.csv")
    assert list(adv.columns) == common.METRIC_COLUMNS  # the contract file: first seed only
    seeds = pd.read_csv(mdir / metrics.MODEL_SEEDS_FILE)
    assert sorted(seeds["model_seed"].unique()) == [5, 6, 7]
    assert len(seeds) == 3 * metrics.N_KMEANS_SEEDS and set(seeds["method"]) == {"vae"}
    for n in ("vae_seed6", "vae_seed7"):
        assert set(pd.read_csv(common.clusters_path(res, n))["seed"]) == set(metrics.kmeans_seeds(3))
    s = metrics.summarize(metrics.read_metrics(res)).set_index("method").loc["vae"]
    assert s["n_seeds"] == 15 and s["n_model_seeds"] == 3
    assert np.isclose(s["acc_mean"], seeds["acc"].mean())
    assert np.isclose(s["acc_model_std"], seeds.groupby("model_seed")["acc"].mean().std(ddof=1))
    text = (res / "REPORT.md").read_text()
    assert "### Spread over model seeds" in text
    assert f"| {metrics.method_title('vae')} | 3 | {s['acc_mean']:.4f} ± {s['acc_std']:.4f} |" in text
