"""VaDE (models.VaDE, train_vade.py): the ELBO terms by hand, q(c|x), and the script's outputs."""
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import common  # noqa: E402
import metrics  # noqa: E402
import models  # noqa: E402
import training  # noqa: E402
import train_vade  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread in this file's tests (restored after; set before the module's fixtures
    train, since the thread count changes float rounding): on a busy 2-core machine more threads
    only spin-wait on each other, and these models are tiny."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_case():
    """K = 2 components, latent 2, one sample, numbers chosen to be easy by hand."""
    mu = torch.tensor([[0.5, -1.0]])
    logvar = torch.log(torch.tensor([[0.25, 1.0]]))
    pi_logits = torch.log(torch.tensor([0.3, 0.7]))
    mu_c = torch.tensor([[0.0, 0.0], [1.0, -1.0]])
    logvar_c = torch.log(torch.tensor([[1.0, 1.0], [0.5, 2.0]]))
    return mu, logvar, pi_logits, mu_c, logvar_c


def test_elbo_terms_by_hand():
    mu, logvar, pi_logits, mu_c, logvar_c = tiny_case()
    z = mu  # evaluate gamma at the mean
    # by hand: log N(z | mu_c, var_c) per component
    l0 = -0.5 * (2 * math.log(2 * math.pi) + 0 + 0 + 0.5 ** 2 / 1 + 1.0 ** 2 / 1)
    l1 = -0.5 * (2 * math.log(2 * math.pi) + math.log(0.5) + math.log(2.0) + 0.5 ** 2 / 0.5 + 0.0 / 2.0)
    w = np.array([0.3 * math.exp(l0), 0.7 * math.exp(l1)])
    g = w / w.sum()
    gamma = models.vade_gamma(z, pi_logits, mu_c, logvar_c)
    np.testing.assert_allclose(gamma.numpy()[0], g, rtol=1e-5)

    # E[log p(z|c)] = -1/2 sum_c g_c sum_j [log 2pi + log var_cj + (var_j + (mu_j - mu_cj)^2) / var_cj]
    t0 = (math.log(2 * math.pi) + 0 + (0.25 + 0.25) / 1) + (math.log(2 * math.pi) + 0 + (1 + 1) / 1)
    t1 = (math.log(2 * math.pi) + math.log(0.5) + (0.25 + 0.25) / 0.5) + \
         (math.log(2 * math.pi) + math.log(2.0) + (1 + 0) / 2.0)
    log_pzc = -0.5 * (g[0] * t0 + g[1] * t1)
    log_pc = g[0] * math.log(0.3) + g[1] * math.log(0.7)
    h_z = 0.5 * ((math.log(2 * math.pi) + 1 + math.log(0.25)) + (math.log(2 * math.pi) + 1 + 0))
    h_c = -(g * np.log(g)).sum()
    assert models.vade_log_p_z_given_c(mu, logvar, gamma, mu_c, logvar_c).item() == pytest.approx(log_pzc, rel=1e-5)
    assert models.vade_log_p_c(gamma, pi_logits).item() == pytest.approx(log_pc, rel=1e-5)
    assert models.vade_entropy_z(logvar).item() == pytest.approx(h_z, rel=1e-5)
    assert models.vade_entropy_c(gamma).item() == pytest.approx(h_c, rel=1e-5)

    # the full loss: recon + the negated ELBO terms
    x, recon = torch.zeros(1, 3), torch.tensor([[1.0, 2.0, 0.0]])
    total, rec, kl = models.vade_loss(recon, x, mu, logvar, gamma, pi_logits, mu_c, logvar_c)
    assert rec.item() == pytest.approx(5.0)
    assert kl.item() == pytest.approx(-(log_pzc + log_pc + h_z + h_c), rel=1e-5)
    assert total.item() == pytest.approx(5.0 + kl.item(), rel=1e-6)


def test_kl_part_is_vae_kl_for_one_component():
    """With K = 1 and a standard normal component the VaDE terms are the VAE's KL to N(0, I)."""
    mu, logvar = torch.tensor([[0.3, -0.7], [1.0, 0.2]]), torch.tensor([[-0.5, 0.1], [0.0, 0.4]])
    gamma = torch.ones(2, 1)
    kl = -(models.vade_log_p_z_given_c(mu, logvar, gamma, torch.zeros(1, 2), torch.zeros(1, 2))
           + models.vade_log_p_c(gamma, torch.zeros(1)) + models.vade_entropy_z(logvar)
           + models.vade_entropy_c(gamma))
    assert kl.item() == pytest.approx(models.kl_divergence(mu, logvar).item(), rel=1e-5)


@pytest.mark.parametrize("input_dim", [None, 12])
def test_q_c_given_x_sums_to_one(input_dim):
    torch.manual_seed(0)
    model = models.build_model({"model": "vade", "n_clusters": 3, "latent_dim": 4, "input_dim": input_dim})
    x = torch.randn(5, 40, 430) if input_dim is None else torch.randn(5, input_dim)
    g = model.gamma(x)
    assert g.shape == (5, 3) and (g >= 0).all()
    torch.testing.assert_close(g.sum(1), torch.ones(5))
    model.train()
    recon, mu, logvar = model(x)
    loss, rec, kl = model.loss(recon, x, mu, logvar)
    assert recon.shape == x.shape and torch.isfinite(loss) and not model.uses_labels
    loss.backward()
    assert model.mu_c.grad is not None  # the mixture is learned


def make_data(root, n=12, dim=6):
    rng = np.random.default_rng(0)
    langs = np.array(["english", "bangla"] * (n // 2))
    common.save_npy(common.mfcc_path(root), rng.standard_normal((n, 40, 430), dtype=np.float32))
    common.write_csv(common.segments_path(root), pd.DataFrame({
        "segment_id": [f"s{i:03d}" for i in range(n)], "song_id": [f"song{i // 2}" for i in range(n)],
        "language": langs, "title": "t", "artist": "a", "start_s": 0.0}))
    toy = rng.standard_normal((n, dim)).astype(np.float32) + 3.0 * (langs == "english")[:, None]
    common.save_npy(common.features_dir(root) / "toy.npy", toy)
    return root


def run_args(data, res, *extra):
    return ["--data-dir", str(data), "--results-dir", str(res), "--pretrain-epochs", "2", "--epochs", "2",
            "--batch-size", "4", *extra]


def test_train_vade_outputs(tmp_path, capsys):
    data, res = make_data(tmp_path / "data"), tmp_path / "results"
    train_vade.main(run_args(data, res, "--features", "toy", "--runs", "2"))
    out = capsys.readouterr().out
    assert "collapsed" in out and "none picked" in out and "best final ELBO (label-free)" in out
    for name in ("vade_toy", "vade_toy_seed43"):
        model, ckpt = models.load_checkpoint(common.model_path(res, name))
        assert ckpt["config"]["n_clusters"] == 2 and ckpt["config"]["input_dim"] == 6
        assert np.load(common.latents_path(res, name)).shape == (12, train_vade.LATENT_DIM)
        losses = pd.read_csv(common.losses_path(res, name))
        assert list(losses.columns) == common.LOSS_COLUMNS and len(losses) == 4
        assert losses["kl"].isna().tolist() == [True, True, False, False]  # pretraining, then VaDE
    df = pd.read_csv(common.metrics_dir(res) / train_vade.METRICS_FILE)
    assert list(df.columns) == train_vade.metrics_columns() and (df["n_scored"] == 12).all()
    assert list(df["model_seed"]) == [42, 43] and not df["uses_labels"].any()
    # the metrics come from q(c|x): recompute them from the cluster file
    seg = pd.read_csv(common.segments_path(data))
    cl = pd.read_csv(common.clusters_path(res, "vade_toy"))
    for _, row in df.iterrows():
        c = cl[cl["seed"] == row["seed"]].set_index("segment_id").loc[seg["segment_id"], "cluster"]
        assert row["acc"] == pytest.approx(metrics.acc(seg["language"], c.to_numpy()))
        share = np.bincount(c, minlength=2).max() / len(c)
        assert bool(row["collapsed"]) == (share > train_vade.COLLAPSE_SHARE)

    # the report's MFCC input (conv encoder), one run; rows of the other feature set are kept
    train_vade.main(run_args(data, res, "--runs", "1"))
    df = pd.read_csv(common.metrics_dir(res) / train_vade.METRICS_FILE)
    assert set(df["method"]) == {"vade_toy", "vade"}
    assert models.load_checkpoint(common.model_path(res, "vade"))[1]["config"]["input_dim"] is None
    # the report shows the VaDE rows and the collapse fraction; K-Means skips VaDE latents
    import report
    text = report.write_report(data, res).read_text()
    assert "| VaDE on toy, clusters from q(c|x)" in text and "collapsed runs" in text
    assert not any(m.startswith("vade") for m in training.discover_models(res))
    # a re-run is skipped, and gives the same rows
    train_vade.main(run_args(data, res, "--runs", "1"))
    assert "skipping" in capsys.readouterr().out
    again = pd.read_csv(common.metrics_dir(res) / train_vade.METRICS_FILE)
    pd.testing.assert_frame_equal(again[again.method == "vade"].reset_index(drop=True),
                                  df[df.method == "vade"].reset_index(drop=True))


def test_missing_feature_set(tmp_path):
    data = make_data(tmp_path / "data")
    with pytest.raises(common.PipelineError, match="build_features.py"):
        train_vade.main(run_args(data, tmp_path / "results", "--features", "nope"))


# ----------------------------------------------------------------------------
# interrupted runs resume, in either phase; labels are optional
def interrupt_after(monkeypatch, n_epochs):
    """Ctrl-C in epoch n_epochs + 1 (pretraining and VaDE epochs counted together)."""
    real, calls = train_vade.shuffled_epoch, []

    def epoch(*a, **kw):
        calls.append(1)
        if len(calls) > n_epochs:
            raise KeyboardInterrupt
        return real(*a, **kw)
    monkeypatch.setattr(train_vade, "shuffled_epoch", epoch)
    return lambda: monkeypatch.setattr(train_vade, "shuffled_epoch", real)


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("toy"))


@pytest.fixture(scope="module")
def whole_run(toy_data, tmp_path_factory):
    res = tmp_path_factory.mktemp("whole")
    train_vade.main(run_args(toy_data, res, "--features", "toy", "--runs", "1"))
    return res


# 1: in pretraining; 2: after pretraining, before the mixture is fitted; 3: in the VaDE phase
@pytest.mark.parametrize("done", [1, 2, 3])
def test_interrupted_vade_resumes_bitwise(done, toy_data, whole_run, tmp_path, monkeypatch, capsys):
    res = tmp_path / "results"
    restore = interrupt_after(monkeypatch, done)
    with pytest.raises(KeyboardInterrupt):
        train_vade.main(run_args(toy_data, res, "--features", "toy", "--runs", "1"))
    assert not common.model_path(res, "vade_toy").exists() and not common.latents_path(res, "vade_toy").exists()
    partial = torch.load(train_vade.partial_path(res, "vade_toy"), weights_only=True)
    assert partial["epoch"] == done and partial["phase"] == ("pretrain" if done <= 2 else "vade")
    restore()
    capsys.readouterr()
    train_vade.main(run_args(toy_data, res, "--features", "toy", "--runs", "1"))
    assert f"resuming after epoch {done} of 4" in capsys.readouterr().out
    a = torch.load(common.model_path(whole_run, "vade_toy"), weights_only=True)
    b = torch.load(common.model_path(res, "vade_toy"), weights_only=True)
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    assert a["loss_history"] == b["loss_history"]
    for path in (common.latents_path, common.losses_path, common.clusters_path):
        assert path(whole_run, "vade_toy").read_bytes() == path(res, "vade_toy").read_bytes()
    assert not train_vade.partial_path(res, "vade_toy").exists()


def test_number_of_clusters():
    seg = pd.DataFrame({"language": ["english", "bangla", "hindi", "english"]})
    assert train_vade.n_clusters(None, seg)[0] == 3  # every segment labelled: the labels' count
    assert train_vade.n_clusters(5, seg)[0] == 5  # the flag wins
    part = seg.assign(language=["english", None, "", "bangla"])
    assert train_vade.n_clusters(None, part)[0] == train_vade.N_LANGUAGES == 2
    assert train_vade.n_clusters(None, seg.assign(language="english"))[0] == 2


def test_vade_without_labels(tmp_path, capsys):
    data, res = make_data(tmp_path / "data"), tmp_path / "results"
    seg = pd.read_csv(common.segments_path(data))
    seg["language"] = ""  # nobody labelled anything
    common.write_csv(common.segments_path(data), seg)
    train_vade.main(run_args(data, res, "--features", "toy", "--runs", "1", "--n-clusters", "3"))
    assert "K = 3 (--n-clusters)" in capsys.readouterr().out
    df = pd.read_csv(common.metrics_dir(res) / train_vade.METRICS_FILE)
    assert df["n_scored"].tolist() == [0] and df[["nmi", "ari", "purity", "acc"]].isna().all().all()
    assert np.isfinite(df["silhouette"]).all()  # label-free, computed on every segment
    assert set(pd.read_csv(common.clusters_path(res, "vade_toy"))["cluster"]) <= {0, 1, 2}
    assert models.load_checkpoint(common.model_path(res, "vade_toy"))[1]["config"]["n_clusters"] == 3
