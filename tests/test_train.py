"""train_vae.py and train_cvae.py on tiny features the tests write themselves (one epoch)."""
import os
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
import tables  # noqa: E402
import training  # noqa: E402
from conftest import run_main_in_process  # noqa: E402
from models import load_checkpoint  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread in this file's tests (restored after; set before the module's fixtures
    train, since the thread count changes float rounding): on a busy 2-core machine more threads
    only spin-wait on each other, and these models are tiny."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
    assert cfg["languages"] == [] and cfg["n_segments"] == 6  # label-free: the labels are never read
    assert (cfg["latent_dim"], cfg["batch_size"], cfg["learning_rate"], cfg["beta"]) == (64, 4, 1e-4, 1.0)
    assert torch.load(common.model_path(res, "vae"), weights_only=True)["config"] == cfg

    losses = pd.read_csv(common.losses_path(res, "vae"))
    assert list(losses.columns) == common.LOSS_COLUMNS and len(losses) == 2
    assert np.allclose(losses["loss"], losses["recon"] + losses["kl"], rtol=1e-4)

    latents = np.load(common.latents_path(res, "vae"))
    assert latents.dtype == np.float32 and latents.shape == (6, 64)  # one row per segment
    mfcc, _ = common.load_features(data6)
    again = training.encode_all(model, mfcc, torch.zeros(6, dtype=torch.long), torch.device("cpu"))
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
        assert ckpt["config"]["languages"] == (["bangla", "english"] if cond else [])
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
    real_build = training.build_model

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

    monkeypatch.setattr(training, "build_model", build_poisoned)
    res = tmp_path / "results"
    with pytest.raises(training.TrainingStopped, match="epoch 2"):
        train_vae.main(args(data6, res, "--batch-size", "4", epochs=3))
    model, ckpt = load_checkpoint(common.model_path(res, "vae"))
    assert ckpt["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())
    assert len(pd.read_csv(common.losses_path(res, "vae"))) == 1
    assert np.isfinite(np.load(common.latents_path(res, "vae"))).all()
    failures = pd.read_csv(common.failures_path(data6))
    assert list(failures.columns) == common.FAILURE_COLUMNS
    assert (failures["stage"] == "train").any() and failures["error"].str.contains("epoch 2").any()


def test_bad_features_exit_1(tmp_path, capsys):
    # no features at all: the message names the command that makes them
    code, err = run_main_in_process(train_vae.main, args(tmp_path / "nothing", tmp_path / "results"), capsys)
    assert code == 1 and "build_dataset.py" in err and "Traceback" not in err
    # NaN in the features: stops in epoch 1 with a failure row, nothing written
    data = make_features(tmp_path / "nan", 4, nan=True)
    code, err = run_main_in_process(train_cvae.main, args(data, tmp_path / "results", "--model", "autoencoder"), capsys)
    assert code == 1 and "epoch 1" in err and "Traceback" not in err
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
    assert training.discover_models(res)[:4] == common.MODEL_NAMES and "vae_seed6" not in training.discover_models(res)

    analyze_advanced.analyze(data6, res, seed=3, models=["vae"])
    mdir = common.metrics_dir(res)
    adv = pd.read_csv(mdir / "advanced_metrics.csv")
    assert list(adv.columns) == common.METRIC_COLUMNS  # the contract file: first seed only
    seeds = pd.read_csv(mdir / common.MODEL_SEEDS_FILE)
    assert sorted(seeds["model_seed"].unique()) == [5, 6, 7]
    assert len(seeds) == 3 * metrics.N_KMEANS_SEEDS and set(seeds["method"]) == {"vae"}
    for n in ("vae_seed6", "vae_seed7"):
        assert set(pd.read_csv(common.clusters_path(res, n))["seed"]) == set(metrics.kmeans_seeds(3))
    s = metrics.summarize(tables.read_metrics(res)).set_index("method").loc["vae"]
    assert s["n_seeds"] == 15 and s["n_model_seeds"] == 3
    assert np.isclose(s["acc_mean"], seeds["acc"].mean())
    assert np.isclose(s["acc_model_std"], seeds.groupby("model_seed")["acc"].mean().std(ddof=1))
    text = (res / "REPORT.md").read_text()
    assert "### Spread over model seeds" in text
    assert f"| {tables.method_title('vae')} | 3 | {s['acc_mean']:.4f} ± {s['acc_std']:.4f} |" in text


# ----------------------------------------------------------------------------
# interrupted training: the finished set is one run's, an unfinished run resumes bitwise
def interrupt_after(monkeypatch, module, n_epochs):
    """Ctrl-C in epoch n_epochs + 1: the first n_epochs finish, the next raises KeyboardInterrupt.
    Returns the function that lets training run normally again."""
    real, calls = module.shuffled_epoch, []

    def epoch(*a, **kw):
        calls.append(1)
        if len(calls) > n_epochs:
            raise KeyboardInterrupt
        return real(*a, **kw)
    monkeypatch.setattr(module, "shuffled_epoch", epoch)
    return lambda: monkeypatch.setattr(module, "shuffled_epoch", real)


def finished_files(res, name):
    return [common.model_path(res, name), common.losses_path(res, name), common.latents_path(res, name)]


def assert_same_run(res_a, res_b, name):
    """Bitwise: every tensor of the final state_dict, the latents file and the losses file."""
    a = torch.load(common.model_path(res_a, name), weights_only=True)
    b = torch.load(common.model_path(res_b, name), weights_only=True)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    assert a["loss_history"] == b["loss_history"] and a["epoch"] == b["epoch"]
    assert common.latents_path(res_a, name).read_bytes() == common.latents_path(res_b, name).read_bytes()
    assert common.losses_path(res_a, name).read_bytes() == common.losses_path(res_b, name).read_bytes()


def train_one(name, data, res, *extra, epochs=2):
    argv = args(data, res, "--batch-size", "4", *extra, epochs=epochs)
    return train_vae.main(argv) if name == "vae" else train_cvae.main(argv + ["--model", name])


@pytest.mark.parametrize("name", ["vae", "cvae", "autoencoder", "pooled_vae"])
def test_interrupted_run_resumes_bitwise(name, data6, tmp_path, monkeypatch, capsys):
    train_one(name, data6, tmp_path / "whole")
    res = tmp_path / "interrupted"
    restore = interrupt_after(monkeypatch, training, 1)
    with pytest.raises(KeyboardInterrupt):
        train_one(name, data6, res)
    # only the unfinished checkpoint, under a name no analysis reads
    assert not any(p.exists() for p in finished_files(res, name))
    partial = torch.load(training.partial_path(res, name), weights_only=True)
    assert partial["epoch"] == 1 and {"optimizer", "rng"} <= set(partial)
    assert {"python", "numpy", "torch", "shuffle"} <= set(partial["rng"])
    restore()
    capsys.readouterr()
    train_one(name, data6, res)
    assert "resuming after epoch 1 of 2" in capsys.readouterr().out
    assert_same_run(tmp_path / "whole", res, name)
    assert not training.partial_path(res, name).exists()


def test_interrupt_keeps_the_finished_set(data6, tmp_path, monkeypatch, capsys):
    """The issue's case: a finished run, then a longer one interrupted. The finished set stays
    whole and the analysis reads it; the longer run resumes; a partial of other settings is not used."""
    import metrics
    res = tmp_path / "results"
    train_one("vae", data6, res, epochs=1)
    before = [p.read_bytes() for p in finished_files(res, "vae")]
    restore = interrupt_after(monkeypatch, training, 1)
    with pytest.raises(KeyboardInterrupt):
        train_one("vae", data6, res, epochs=3)
    assert [p.read_bytes() for p in finished_files(res, "vae")] == before
    assert torch.load(training.partial_path(res, "vae"), weights_only=True)["config"]["epochs"] == 3
    assert training.load_latents(data6, res, "vae", 6).shape == (6, 64)
    # the same command again: continues (bitwise as an uninterrupted run: the test above)
    restore()
    capsys.readouterr()
    train_one("vae", data6, res, epochs=3)
    assert "resuming after epoch 1 of 3" in capsys.readouterr().out
    assert torch.load(common.model_path(res, "vae"), weights_only=True)["epoch"] == 3
    assert len(pd.read_csv(common.losses_path(res, "vae"))) == 3
    # an unfinished run of other settings: started over, with the reason
    restore = interrupt_after(monkeypatch, training, 1)
    with pytest.raises(KeyboardInterrupt):
        train_one("vae", data6, res, "--lr", "1e-3")
    restore()
    capsys.readouterr()
    train_one("vae", data6, res)
    out = capsys.readouterr().out
    assert "starting over" in out and "learning_rate 0.001 -> 0.0001" in out and "resuming" not in out
    ckpt = torch.load(common.model_path(res, "vae"), weights_only=True)
    assert ckpt["epoch"] == 2 and ckpt["config"]["learning_rate"] == 1e-4


def test_stale_temp_files_removed_at_start(data6, tmp_path, capsys):
    res = tmp_path / "results"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = res / "models" / f".vae.pth.tmp{dead.pid}"  # what a SIGKILL during torch_save leaves
    alive = res / "models" / f".vae_seed9.pth.tmp{os.getpid()}"  # a live process's save
    other = res / "models" / "notes.tmp1"
    for p in (stale, alive, other):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x" * 1000)
    train_one("vae", data6, res, epochs=1)
    assert not stale.exists() and alive.exists() and other.exists()
    assert f"removed {stale}" in capsys.readouterr().out


def test_unwritable_results_dir_fails_before_training(data6, tmp_path, monkeypatch, capsys):
    res = tmp_path / "results"
    res.mkdir()
    (res / "models").write_text("a file where the models folder goes")  # root ignores chmod
    monkeypatch.setattr(training, "shuffled_epoch", lambda *a, **k: pytest.fail("trained first"))
    with pytest.raises(common.PipelineError, match="models"):
        train_one("vae", data6, res, epochs=1)
    code, err = run_main_in_process(train_cvae.main, args(data6, res, "--model", "autoencoder"), capsys)
    assert code == 1 and "models" in err and "Traceback" not in err


def copy_data(src, dst, language=None):
    """A copy of a features folder; language: a function (row index -> language) to relabel."""
    import shutil
    shutil.copytree(src, dst)
    if language is not None:
        seg = pd.read_csv(common.segments_path(dst), dtype={"segment_id": str, "song_id": str})
        seg["language"] = [language(i) for i in range(len(seg))]
        common.write_csv(common.segments_path(dst), seg)
    return dst


def test_analysis_checks_latents_against_the_checkpoint(data6, tmp_path, capsys):
    import metrics
    res = tmp_path / "results"
    train_cvae.main(args(data6, res, "--model", "cvae"))
    train_vae.main(args(data6, res))
    assert training.load_latents(data6, res, "vae", 6).shape == (6, 64)
    # latents that are not the ones written with the checkpoint
    good = common.latents_path(res, "vae").read_bytes()
    common.save_npy(common.latents_path(res, "vae"), np.zeros((6, 64), np.float32))
    with pytest.raises(common.PipelineError, match="not one run's files.*python train_vae.py"):
        training.load_latents(data6, res, "vae", 6)
    common.latents_path(res, "vae").write_bytes(good)
    # other features of the same shape; other segment ids
    other = make_features(tmp_path / "other", 6)
    common.save_npy(common.mfcc_path(other), np.zeros((6, 40, 430), np.float32))
    with pytest.raises(common.PipelineError, match=r"mfcc.npy.*python train_vae.py --data-dir"):
        training.load_latents(other, res, "vae", 6)
    ids = copy_data(data6, tmp_path / "ids")
    seg = pd.read_csv(common.segments_path(ids))
    seg["segment_id"] = seg["segment_id"][::-1].to_numpy()
    common.write_csv(common.segments_path(ids), seg)
    with pytest.raises(common.PipelineError, match="segment ids"):
        training.load_latents(ids, res, "vae", 6)
    # relabelled: the label-free VAE stays valid; the CVAE is refused, or skipped once labels are missing
    swapped = copy_data(data6, tmp_path / "swapped", lambda i: "english" if i % 2 else "bangla")
    assert training.load_latents(swapped, res, "vae", 6) is not None
    with pytest.raises(common.PipelineError, match="languages in segments.csv.*train_cvae.py --model cvae"):
        training.load_latents(swapped, res, "cvae", 6)
    part = copy_data(data6, tmp_path / "part", lambda i: "english" if i else "")
    capsys.readouterr()
    assert training.load_latents(part, res, "cvae", 6) is None
    assert "skipped cvae" in capsys.readouterr().out
    assert training.load_latents(part, res, "vae", 6) is not None


def test_labels_optional(data6, tmp_path, capsys):
    """No labels: the label-free models train on every segment exactly as with labels (they never
    read the column); the models given the label are skipped with one line."""
    blank = copy_data(data6, tmp_path / "blank", lambda i: "")
    res = tmp_path / "results"
    train_cvae.main(args(blank, res))
    out = capsys.readouterr().out
    for name in ("cvae", "beta_vae"):
        assert out.count(f"skipped {name}:") == 1 and not common.latents_path(res, name).exists()
    assert "6 of 6 segments" in out
    train_cvae.main(args(blank, res, "--model", "cvae", n_seeds=3))
    assert capsys.readouterr().out.count("skipped cvae") == 1  # one line, not one per seed
    for name in ("autoencoder", "beta_vae_uncond", "pooled_vae", "pooled_ae"):
        assert np.load(common.latents_path(res, name)).shape == (6, 64)
    train_vae.main(args(blank, res))
    train_vae.main(args(data6, tmp_path / "labelled"))
    assert (common.latents_path(res, "vae").read_bytes()
            == common.latents_path(tmp_path / "labelled", "vae").read_bytes())
    # one language only: skipped too, saying so
    one = copy_data(data6, tmp_path / "one", lambda i: "english")
    train_cvae.main(args(one, tmp_path / "r1", "--model", "cvae"))
    assert "only one language" in capsys.readouterr().out


# ----------------------------------------------------------------------------
# reading a run back (training.load_latents, model_uses_labels)
def test_missing_latents_skipped_with_a_line(tmp_path, capsys):
    assert training.load_latents(tmp_path / "data", tmp_path, "cvae", 10) is None
    out = capsys.readouterr().out
    assert "skipped cvae" in out and "cvae.npy" in out


def test_latents_length_mismatch_names_both_files(tmp_path):
    common.save_npy(common.latents_path(tmp_path, "vae"), np.zeros((9, 64), np.float32))
    with pytest.raises(common.PipelineError) as e:
        training.load_latents(tmp_path / "data", tmp_path, "vae", 10)
    msg = str(e.value)
    assert "vae.npy" in msg and "segments.csv" in msg and "9" in msg and "10" in msg


def test_uses_labels_by_name_and_config(tmp_path):
    assert training.model_uses_labels(tmp_path, "cvae") and training.model_uses_labels(tmp_path, "beta_vae")
    assert not training.model_uses_labels(tmp_path, "vae")
    common.torch_save(common.model_path(tmp_path, "beta_vae"), {"config": {"conditional": False},
                                                               "state_dict": {"w": torch.zeros(1)}})
    assert not training.model_uses_labels(tmp_path, "beta_vae")
