"""The whole chain as a user runs it, on a tiny demo corpus: every file of the contract appears."""
import functools

import numpy as np
import pandas as pd
import pytest

import common
import plots
from conftest import run_script_ok


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    root = tmp_path_factory.mktemp("chain")
    dirs = ["--data-dir", str(root / "data"), "--results-dir", str(root / "results")]
    # figures built, not rendered (conftest.figures_unrendered): test_analyze's full_run renders these kinds
    run = functools.partial(run_script_ok, env={plots.UNRENDERED_FIGURES_ENV: "1"})
    # 4 songs of 60 to 120 s: about 10 segments, two songs per language (making the demo audio was
    # half of this fixture's time with 6)
    run("build_dataset.py", "--source", "demo", "--songs", "4", "--workers", "2", *dirs)
    # the order of `make demo`, with small settings: two VAE seeds carry the model-seed path through.
    # Only the two sets the declared label-free method (fg_vtln_bow_merge) and the VaDE run below read,
    # with one extra codebook seed for its spread: every set kind is tested in test_language.py and
    # Whisper's in test_whisper.py, and the analysis of 14 sets was most of this fixture's time
    run("build_features.py", "--workers", "2", "--sets", "fg_bow,fg_vtln_bow", "--spread-seeds", "1",
        "--codebook-size", "16", "--bigram-codebook-size", "8", *dirs)
    run("train_vae.py", "--epochs", "1", "--n-seeds", "2", *dirs)
    run("train_cvae.py", "--model", "all", "--epochs", "1", "--n-seeds", "1", *dirs)
    vade = ["--pretrain-epochs", "1", "--epochs", "1", "--runs", "2"]
    run("train_vade.py", *vade, *dirs)
    run("train_vade.py", "--features", "fg_vtln_bow", *vade, *dirs)
    for script in ("analyze_vae.py", "analyze_advanced.py", "analyze_hybrid.py", "analyze_language.py"):
        run(script, *dirs)
    return root / "data", root / "results"


def test_every_contract_file_exists(chain):
    data, results = chain
    for p in [common.songs_path(data), common.mfcc_path(data), common.segments_path(data)]:
        assert p.exists(), p
    songs = pd.read_csv(common.songs_path(data))
    assert set(common.SONG_COLUMNS) <= set(songs.columns)
    assert {"english", "bangla"} == set(songs.language)
    for sid in songs.song_id:
        assert (data / "audio" / f"{sid}.wav").exists()
    mfcc, segments = common.load_features(data)
    assert mfcc.dtype == np.float32 and np.isfinite(mfcc).all()
    for model in common.MODEL_NAMES:
        for p in [common.model_path(results, model), common.losses_path(results, model),
                  common.latents_path(results, model)]:
            assert p.exists(), p
        latents = np.load(common.latents_path(results, model))
        assert latents.shape == (len(segments), 64)
        losses = pd.read_csv(common.losses_path(results, model))
        assert list(losses.columns) == common.LOSS_COLUMNS and len(losses) == 1
    for name in ["vae_metrics.csv", "advanced_metrics.csv", "hybrid_metrics.csv"]:
        df = pd.read_csv(common.metrics_dir(results) / name)
        assert set(common.METRIC_COLUMNS) <= set(df.columns)
        assert (df.n_segments == len(segments)).all()
        for method in df.method.unique():
            assert common.clusters_path(results, method).exists(), method
    assert len(list(common.figures_dir(results).glob("*.png"))) >= 25
    # issue 5's files: feature sets, the other model seed, VaDE's runs, the language analysis
    assert np.load(common.features_dir(data) / "fg_vtln_bow.npy").shape[0] == len(segments)
    assert common.latents_path(results, "vae_seed43").exists()
    vade = pd.read_csv(common.metrics_dir(results) / "vade_metrics.csv")
    assert sorted(vade.method.unique()) == ["vade", "vade_fg_vtln_bow"] and len(vade) == 4
    for name in ["model_seeds_metrics.csv", "language_metrics.csv", "language_probes.csv", "confounds.csv"]:
        assert (common.metrics_dir(results) / name).exists(), name


def test_report_has_the_seven_rows_of_the_report(chain):
    _, results = chain
    report = (results / "REPORT.md").read_text()
    for row in ["PCA + K-Means", "K-Means on raw MFCC", "VAE + K-Means", "Autoencoder + K-Means",
                "CVAE + K-Means", "Beta-VAE + K-Means", "Multi-Modal (CVAE+Text+Artist)"]:
        assert f"| {row}" in report, row
    assert "Majority-class rate" in report
    for row in ["Beta-VAE (no label) + K-Means", "VaDE, clusters from q(c|x)", "VaDE on fg_vtln_bow",
                "fg_vtln_bow: singer clusters merged per language", "report_mfcc + K-Means"]:
        assert f"| {row}" in report, row
    assert "## Finding the language" in report and "### Spread over model seeds" in report
    # every embedded figure exists
    for line in report.splitlines():
        if line.startswith("!["):
            rel = line.split("](", 1)[1].rstrip(")")
            assert (results / rel).exists(), rel
