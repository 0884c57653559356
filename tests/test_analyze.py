"""The three analyze scripts and REPORT.md on a fabricated corpus (random latents, fake losses).

The fabricated files follow DESIGN.md, so these tests need neither build_dataset.py nor training.
"""
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import analyze_advanced  # noqa: E402
import analyze_hybrid  # noqa: E402
import analyze_vae  # noqa: E402
import common  # noqa: E402
import metrics  # noqa: E402
import plots  # noqa: E402
import tables  # noqa: E402
import report  # noqa: E402
from common import N_FRAMES, N_MFCC, PipelineError  # noqa: E402
from conftest import run_script  # noqa: E402

N_SEGMENTS = 40
ARTISTS = {"english": ["Taylor Swift", "Ed Sheeran", "Adele"], "bangla": ["Ayub Bachchu", "James"]}


def fabricate(root, languages=("english", "bangla"), n=N_SEGMENTS, models=common.MODEL_NAMES, seed=0):
    """A DESIGN.md-shaped corpus: features, songs, and per model latents + losses."""
    rng = np.random.default_rng(seed)
    data, results = Path(root) / "data", Path(root) / "results"
    langs = np.array([languages[(i // 2) % len(languages)] for i in range(n)])  # two segments per song
    segs = []
    for i, lang in enumerate(langs):
        song = i // 2
        artist = ARTISTS.get(lang, ["Someone"])[song % len(ARTISTS.get(lang, ["Someone"]))]
        segs.append({"segment_id": f"{song:04d}_{i % 2}", "song_id": f"{song:04d}", "language": lang,
                     "title": f"{'Bhalobasha' if lang == 'bangla' else 'Love'} song {song}",
                     "artist": artist, "start_s": 30.0 * (i % 2)})
    segments = pd.DataFrame(segs, columns=common.SEGMENT_COLUMNS)
    common.write_csv(common.segments_path(data), segments)
    songs = segments.drop_duplicates("song_id")[["song_id", "language", "title", "artist"]].copy()
    songs["source"], songs["duration_s"] = "demo", 60.0
    common.write_csv(common.songs_path(data), songs[common.SONG_COLUMNS])
    mfcc = rng.normal(size=(n, N_MFCC, N_FRAMES)).astype(np.float32)
    mfcc[langs == languages[0], :5] += 0.5  # a little signal for the baselines to find
    common.save_npy(common.mfcc_path(data), mfcc)
    for m in models:
        z = rng.normal(size=(n, 64)).astype(np.float32) + (langs == languages[0])[:, None] * 1.5
        common.save_npy(common.latents_path(results, m), z)
        kl = "" if m == "autoencoder" else [3.0, 2.0, 1.5]
        common.write_csv(common.losses_path(results, m), pd.DataFrame(
            {"epoch": [1, 2, 3], "loss": [10.0, 8.0, 7.0], "recon": [9.0, 7.0, 6.0], "kl": kl}))
    return data, results


# one figure of each kind the three scripts draw (t-SNE by language and by cluster, with and without
# PCA first, composition, confusion, one model's losses, all losses, the comparison): full_run renders
# these and writes the others' files empty, as plots.UNRENDERED_FIGURES_ENV does. The kinds repeat for
# every method, and rendering all 52 figures was most of this module's time
RENDERED_FIGURES = {"vae_tsne_language.png", "vae_tsne_cluster.png", "vae_loss.png", "vae_composition.png",
                    "cvae_confusion.png", "mfcc_kmeans_tsne_language.png", "hybrid_cvae_tsne_cluster.png",
                    "all_losses.png", "methods_comparison.png", "autoencoder_loss.png"}


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    data, results = fabricate(tmp_path_factory.mktemp("e2e"))
    render = plots.save

    def render_one_of_each_kind(fig, path):
        with pytest.MonkeyPatch.context() as mp:
            if Path(path).name not in RENDERED_FIGURES:
                mp.setenv(plots.UNRENDERED_FIGURES_ENV, "1")
            return render(fig, path)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plots, "save", render_one_of_each_kind)
        analyze_vae.analyze(data, results, seed=7)
        analyze_advanced.analyze(data, results, seed=7)
        analyze_hybrid.analyze(data, results, seed=7)
    return data, results


ALL_METHODS = ["pca_kmeans", "mfcc_kmeans", "vae", "cvae", "beta_vae", "autoencoder",
               "hybrid_cvae", "hybrid_vae", "hybrid_autoencoder", "text_artist"]


def test_end_to_end_outputs(full_run):
    data, results = full_run
    mdir = common.metrics_dir(results)
    vae = pd.read_csv(mdir / "vae_metrics.csv")
    adv = pd.read_csv(mdir / "advanced_metrics.csv")
    hyb = pd.read_csv(mdir / "hybrid_metrics.csv")
    assert list(vae.columns) == list(adv.columns) == common.METRIC_COLUMNS
    assert list(hyb.columns) == common.METRIC_COLUMNS + ["uses_metadata"]
    assert set(adv["method"]) == {"pca_kmeans", "mfcc_kmeans", "vae", "cvae", "beta_vae", "autoencoder"}
    assert set(hyb["method"]) == {"hybrid_cvae", "hybrid_vae", "hybrid_autoencoder", "text_artist"}
    assert hyb["uses_metadata"].all()
    assert (adv.groupby("method").size() == metrics.N_KMEANS_SEEDS).all()
    labels = adv.groupby("method")["uses_labels"].first()
    assert labels["cvae"] and labels["beta_vae"] and not labels["vae"] and not labels["mfcc_kmeans"]
    hl = hyb.groupby("method")["uses_labels"].first()
    assert hl["hybrid_cvae"] and not hl["hybrid_vae"] and not hl["text_artist"]
    assert adv.loc[adv["method"] == "mfcc_kmeans", "features"].iloc[0] == "raw MFCC (17,200-d)"
    # 64 audio + text SVD (fewer than 32 dims: this corpus has few words) + 5 artists
    assert "cvae latents (64)" in hyb.loc[hyb["method"] == "hybrid_cvae", "features"].iloc[0]
    # the vae rows of both scripts agree: same seeds, same latents
    pd.testing.assert_frame_equal(vae, adv[adv["method"] == "vae"].reset_index(drop=True))
    for m in ALL_METHODS:
        assert common.clusters_path(results, m).exists(), m
    pngs = sorted(common.figures_dir(results).glob("*.png"))
    assert len(pngs) >= 25, [p.name for p in pngs]
    for name in RENDERED_FIGURES:
        assert (common.figures_dir(results) / name).stat().st_size > 5000, name


def test_report_has_every_row_and_figure(full_run):
    data, results = full_run
    text = (results / "REPORT.md").read_text()
    for m in ALL_METHODS:
        assert f"| {tables.method_title(m)}" in text, m
    assert "Majority-class rate: 0.5000" in text
    assert "| english | 10 | 10 | 20 | 0.5000 |" in text
    assert " ± " in text and "| yes |" in text
    assert "python analyze_hybrid.py" in text and "python analyze_vae.py" in text
    linked = [line.split("](")[1].rstrip(")") for line in text.splitlines() if line.startswith("![")]
    pngs = {p.name for p in common.figures_dir(results).glob("*.png")}
    assert {Path(l).name for l in linked} == pngs  # every figure embedded, every link resolves
    assert all((results / l).exists() for l in linked)


def test_metrics_recomputed_from_cluster_files(full_run):
    data, results = full_run
    segments = pd.read_csv(common.segments_path(data), dtype={"segment_id": str})
    rows = tables.read_metrics(results)
    assert set(rows["method"]) == set(ALL_METHODS)
    for method, g in rows.groupby("method"):
        cl = pd.read_csv(common.clusters_path(results, method), dtype={"segment_id": str})
        for _, row in g.iterrows():
            c = cl[cl["seed"] == row["seed"]].merge(segments, on="segment_id", how="left", validate="1:1")
            assert len(c) == len(segments)
            for m in ["nmi", "ari", "purity", "acc"]:
                assert getattr(metrics, m)(c["language"], c["cluster"]) == pytest.approx(row[m], abs=1e-12)
            if method in common.MODEL_NAMES:  # silhouette needs the features: the latents are on disk
                assert c["segment_id"].tolist() == segments["segment_id"].tolist()  # row i = segment i
                z = np.load(common.latents_path(results, method))
                assert metrics.silhouette(z, c["cluster"].to_numpy()) == pytest.approx(row["silhouette"], abs=1e-5)


def test_same_seed_same_outputs(full_run, tmp_path):
    data, results = full_run
    again = tmp_path / "results"
    for m in common.MODEL_NAMES:
        common.save_npy(common.latents_path(again, m), np.load(common.latents_path(results, m)))
    analyze_vae.analyze(data, again, seed=7)
    pd.testing.assert_frame_equal(pd.read_csv(common.metrics_dir(again) / "vae_metrics.csv"),
                                  pd.read_csv(common.metrics_dir(results) / "vae_metrics.csv"))
    assert common.clusters_path(again, "vae").read_text() == common.clusters_path(results, "vae").read_text()


def test_missing_latents_are_skipped(tmp_path, capsys):
    data, results = fabricate(tmp_path, models=["vae", "autoencoder"])
    analyze_hybrid.analyze(data, results, seed=1, audio_models=["cvae", "vae"])
    out = capsys.readouterr().out
    assert "skipped cvae" in out
    hyb = pd.read_csv(common.metrics_dir(results) / "hybrid_metrics.csv")
    assert set(hyb["method"]) == {"hybrid_vae", "text_artist"}
    text = (results / "REPORT.md").read_text()
    assert "| CVAE + K-Means | not run (cvae.npy missing)" in text
    assert "| Multi-Modal (CVAE+Text+Artist) | not run" in text


def test_length_mismatch_names_both_files(tmp_path):
    data, results = fabricate(tmp_path, models=["vae"])
    common.save_npy(common.latents_path(results, "vae"), np.zeros((N_SEGMENTS + 3, 64), np.float32))
    with pytest.raises(PipelineError) as e:
        analyze_advanced.analyze(data, results, seed=1, models=["vae"])
    assert str(common.latents_path(results, "vae")) in str(e.value)
    assert str(common.segments_path(data)) in str(e.value)


def test_one_language_is_clustered_but_not_scored(tmp_path):
    """One language for every song (a placeholder, say): K = N_LANGUAGES, nothing scored against it."""
    data, results = fabricate(tmp_path, languages=("english",), models=["vae"])
    p = run_script("analyze_vae.py", "--data-dir", data, "--results-dir", results)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "scoring needs two languages" in p.stdout and "Traceback" not in p.stderr
    rows = pd.read_csv(common.metrics_dir(results) / "vae_metrics.csv")
    assert rows[metrics.LABEL_METRICS].isna().all().all() and (rows["n_scored"] == 0).all()
    cl = pd.read_csv(common.clusters_path(results, "vae"))
    assert cl.groupby("seed")["cluster"].nunique().eq(metrics.N_LANGUAGES).all()


def unlabel(data, keep_songs=()):
    """Blank the language of every song but keep_songs, in segments.csv and songs.csv."""
    for path in (common.segments_path(data), common.songs_path(data)):
        df = pd.read_csv(path, dtype={"segment_id": str, "song_id": str})
        df["language"] = df["language"].where(df["song_id"].isin(list(keep_songs)), "")
        common.write_csv(path, df)


def test_unlabelled_corpus_clusters_every_segment_and_scores_none(tmp_path, capsys):
    data, results = fabricate(tmp_path, models=["vae", "autoencoder"])
    unlabel(data)
    analyze_vae.analyze(data, results, seed=3)
    analyze_advanced.analyze(data, results, seed=3)
    out = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("skipped cvae") for line in out) == 1  # the models that need labels: one line
    assert sum(line.startswith("skipped beta_vae") for line in out) == 1
    analyze_hybrid.analyze(data, results, seed=3, audio_models=["vae"])
    rows = tables.read_metrics(results)
    assert set(rows["method"]) == {"vae", "autoencoder", "pca_kmeans", "mfcc_kmeans", "hybrid_vae", "text_artist"}
    assert rows[metrics.LABEL_METRICS].isna().all().all() and (rows["n_scored"] == 0).all()
    assert rows["silhouette"].notna().all() and (rows["n_segments"] == N_SEGMENTS).all()
    assert (rows["pretrained"] == "none").all()
    raw = (common.metrics_dir(results) / "advanced_metrics.csv").read_text().splitlines()
    assert ",,,," in raw[1]  # nmi, ari, purity, acc: empty CSV cells, not a placeholder's score
    for m in rows["method"].unique():
        cl = pd.read_csv(common.clusters_path(results, m), dtype={"segment_id": str})
        assert len(cl) == N_SEGMENTS * metrics.N_KMEANS_SEEDS  # every segment clustered
        assert cl["cluster"].nunique() == metrics.N_LANGUAGES
    figs = {p.name for p in common.figures_dir(results).glob("*.png")}
    assert "vae_tsne_cluster.png" in figs and "vae_tsne_language.png" not in figs
    assert not any(f.endswith(("_composition.png", "_confusion.png")) for f in figs)
    text = (results / "REPORT.md").read_text()
    assert "**No labels were given**" in text and "Majority-class rate" not in text
    assert "| CVAE + K-Means | not run: cvae is given the language of every segment, and some have none" in text
    assert "| VAE + K-Means | 0." in text and " | - | - | - | - | no | no | 40 | 0 |" in text
    assert "n/a" not in text.split("## Results")[1].split("### As published")[0]
    common.write_csv(common.metrics_dir(results) / "declared_methods.csv",
                     pd.DataFrame([{"role": "language_method", "method": "vae", "pretrained": "none",
                                    "song_acc": np.nan, "song_acc_std": np.nan, "acc": np.nan, "acc_std": np.nan,
                                    "n_seeds": 5, "song_acc_boot_lo": np.nan, "song_acc_boot_hi": np.nan,
                                    "n_scored": 0}]))
    text = report.write_report(data, results).read_text()
    assert "**In one line:** the declared language method, **VAE + K-Means** (`vae`, pretrained `none`), " \
           "clustered every segment; nothing is scored" in text


def test_partly_labelled_corpus_scores_the_labelled_segments_only(tmp_path):
    data, results = fabricate(tmp_path, models=["vae"])
    labelled_songs = ["0000", "0001", "0002", "0003", "0005"]  # 5 of 20 songs, both languages
    unlabel(data, labelled_songs)
    rows = analyze_vae.analyze(data, results, seed=5)
    assert (rows["n_scored"] == 10).all() and rows["acc"].notna().all()
    segments = pd.read_csv(common.segments_path(data), dtype={"segment_id": str, "song_id": str})
    cl = pd.read_csv(common.clusters_path(results, "vae"), dtype={"segment_id": str})
    for _, row in rows.iterrows():
        c = cl[cl["seed"] == row["seed"]].merge(segments, on="segment_id")
        known = c[c["song_id"].isin(labelled_songs)]
        assert len(c) == N_SEGMENTS and len(known) == 10
        assert metrics.acc(known["language"], known["cluster"]) == pytest.approx(row["acc"])
        assert metrics.nmi(known["language"], known["cluster"]) == pytest.approx(row["nmi"])
    text = (results / "REPORT.md").read_text()
    assert "**Partly labelled**: 5 of 20 songs (10 of 40 segments) have a language (bangla, english)" in text
    assert "| *(unlabelled)* | 15 | 15 | 30 | 0.7500 |" in text
    assert "among the 10 labelled segments" in text
    # --n-clusters: honoured, and quoted in the commands section
    common.save_npy(common.latents_path(tmp_path / "k3", "vae"), np.load(common.latents_path(results, "vae")))
    analyze_vae.analyze(data, tmp_path / "k3", seed=5, n_clusters=3)
    cl3 = pd.read_csv(common.clusters_path(tmp_path / "k3", "vae"))
    assert cl3.groupby("seed")["cluster"].nunique().eq(3).all()
    assert "--n-clusters 3" in (tmp_path / "k3" / "REPORT.md").read_text()


def test_report_runs_on_empty_results(tmp_path):
    data, _ = fabricate(tmp_path, models=[])
    path = report.write_report(data, tmp_path / "nothing")
    text = path.read_text()
    assert "| VAE + K-Means | not run" in text and "No figures yet." in text


@pytest.mark.renders_figures
def test_reconstruction_figure_from_a_checkpoint(tmp_path):
    """Only where models.py can build the report's CVAE; an untrained one is enough."""
    models = pytest.importorskip("models")
    import torch
    import plots
    data, results = fabricate(tmp_path, n=8, models=[])
    config = {"model": "cvae", "latent_dim": 64, "n_languages": 2, "embed_dim": 16, "beta": 1.0,
              "conditional": True, "languages": ["bangla", "english"]}
    try:
        net = models.build_model(config)
    except Exception as e:  # models.py's interface changed: the e2e test through training covers it
        pytest.skip(f"models.build_model failed: {e}")
    common.torch_save(common.model_path(results, "cvae"),
                      {"state_dict": net.state_dict(), "config": config, "epoch": 1, "loss_history": []})
    torch.manual_seed(0)
    mfcc, segments = common.load_features(data)
    path = plots.reconstructions("cvae", mfcc, segments, results, seed=0)
    assert path is not None and path.stat().st_size > 10000


def metric_rows(method, acc, pretrained="none", uses_labels=False, n=N_SEGMENTS, seeds=(1, 2), **extra):
    """Hand-made metrics rows (METRIC_COLUMNS), acc and acc - 0.02 over two seeds."""
    return pd.DataFrame([{"method": method, "features": f"{method} features", "uses_labels": uses_labels,
                          "pretrained": pretrained, "silhouette": 0.1, "nmi": acc / 2, "ari": acc / 3,
                          "purity": acc, "acc": acc - 0.02 * i, "n_segments": n, "n_scored": n, "seed": s, **extra}
                         for i, s in enumerate(seeds)])


SONGS_CSV = """song_id,title,artist,cluster,cluster_language,cluster_language_name,confidence,language
s01,Centre One,Ann,english,en,English,0.95,english
s02,Centre Two,Bob,english,en,English,0.90,
s03,Centre Three,Ann,english,en,English,0.85,english
s04,Centre Four,Cy,english,en,English,0.80,bangla
s05,Centre Five,Bob,english,en,English,0.70,
s06,Edge Two,Cy,english,en,English,0.60,
s07,Edge | One,Ann,english,en,English,0.30,english
s08,Gaan,Rahim,bangla,bn,Bangla,0.99,bangla
s09,Nodi,Rahim,bangla,bn,Bangla,0.50,
s10,Akash,Karim,bangla,bn,Bangla,0.40,bangla
"""


@pytest.fixture
def hand_results(tmp_path):
    """A corpus and hand-written metrics, declared methods and song_languages.csv: no analysis run."""
    data, results = fabricate(tmp_path, models=[])
    mdir = common.metrics_dir(results)
    common.write_csv(mdir / "advanced_metrics.csv", pd.concat(
        [metric_rows("pca_kmeans", 0.55), metric_rows("vae", 0.62), metric_rows("beta_vae_uncond", 0.58)]))
    common.write_csv(mdir / "hybrid_metrics.csv", metric_rows("hybrid_vae", 0.7, uses_metadata=True))
    lang = pd.concat([metric_rows("fg_vtln_bow_merge", 0.8), metric_rows("wavlm_kmeans", 0.85, "self-supervised"),
                      metric_rows("whisper_kmeans", 0.9, "language-labels")])
    lang["song_acc"], lang["uses_metadata"] = lang["acc"], False
    common.write_csv(mdir / "language_metrics.csv", lang)
    common.write_csv(mdir / "declared_methods.csv", pd.DataFrame([
        {"role": "language_method", "method": "whisper_kmeans", "pretrained": "language-labels", "song_acc": 0.89,
         "song_acc_std": 0.01, "acc": 0.89, "acc_std": 0.01, "n_seeds": 2, "song_acc_boot_lo": 0.8,
         "song_acc_boot_hi": 0.95, "n_scored": N_SEGMENTS},
        {"role": "label_free_method", "method": "fg_vtln_bow_merge", "pretrained": "none", "song_acc": 0.79,
         "song_acc_std": 0.01, "acc": 0.79, "acc_std": 0.01, "n_seeds": 2, "song_acc_boot_lo": 0.7,
         "song_acc_boot_hi": 0.85, "n_scored": N_SEGMENTS}]))
    (results / common.SONG_LANGUAGES_FILE).write_text(SONGS_CSV)
    return data, results


def test_report_table_leads_with_a_summary_line_then_one_block_per_family(hand_results):
    data, results = hand_results
    text = report.write_report(data, results).read_text()
    table = text.split("## Results (the report's Table 5.1, reproduced)\n")[1].split("### As published")[0]
    first = [line for line in table.splitlines() if line.strip()][0]
    assert first.startswith("**In one line:** the declared language method, **whisper + K-Means** "
                            "(`whisper_kmeans`, pretrained `language-labels`): Acc **0.8900 ± 0.0141**")
    assert "for the report's best row by Acc, VAE + K-Means: ahead by 0.2800" in first
    captions = ["**The report's seven methods**", "**Models the report lacks**", "**Multi-modal and metadata rows**",
                "**Language-finding methods made from this corpus alone**",
                "**Language-finding methods on a model trained elsewhere without labels**",
                "**Language-finding methods on a model trained elsewhere with language labels**"]
    at = [table.index(c) for c in captions]
    assert at == sorted(at)
    end = table.index("Empty cells (`-`)")  # the notes after the last block
    blocks = dict(zip(captions, [table[a:b] for a, b in zip(at, at[1:] + [end])]))
    assert blocks[captions[0]].count("\n| ") == 2 + 7  # header, rule, the report's seven rows
    assert "Beta-VAE (no label)" in blocks[captions[1]] and "Multi-Modal (VAE" in blocks[captions[2]]
    assert "fg_vtln_bow: singer clusters" in blocks[captions[3]] and "wavlm" in blocks[captions[4]]
    assert "whisper + K-Means" in blocks[captions[5]] and "wavlm" not in blocks[captions[5]]
    # without declared_methods.csv: no summary line
    (common.metrics_dir(results) / "declared_methods.csv").unlink()
    assert "**In one line:**" not in report.write_report(data, results).read_text()


@pytest.mark.renders_figures
def test_report_clusters_song_by_song(hand_results):
    data, results = hand_results
    text = report.write_report(data, results).read_text()
    sec = text.split("## The clusters, song by song")[1].split("\n## ")[0]
    eng = sec.split("### Cluster `english`")[1].split("### ")[0]
    assert "7 songs (70% of all)" in eng and "labelled: 3 english, 1 bangla (majority share 0.75)" in eng
    centre, edge = eng.split("Nearest the boundary (lowest confidence):")
    assert centre.index("| 1 | Centre One | Ann | 0.950 |") < centre.index("| 5 | Centre Five | Bob | 0.700 |")
    assert edge.index("| 1 | Edge \\| One | Ann | 0.300 |") < edge.index("| 2 | Edge Two | Cy | 0.600 |")
    assert "Centre" not in edge  # no song in both lists
    ban = sec.split("### Cluster `bangla`")[1].split("### ")[0]
    assert "3 songs (30% of all)" in ban and "none is left for the boundary list" in ban
    assert sec.index("### Cluster `english`") < sec.index("### Cluster `bangla`")  # largest first
    conf = sec.split("### Clusters against the known languages")[1]
    assert "| cluster | bangla | english | unlabelled |" in conf
    assert "| `english` | 1 | 3 | 3 |" in conf and "| `bangla` | 2 | 0 | 1 |" in conf
    fig = common.figures_dir(results) / report.SONGS_FIGURE
    assert fig.stat().st_size > 5000 and text.count(f"](figures/{report.SONGS_FIGURE})") == 1
    # no labels: numbered clusters, no confusion, the heat-map gone; no file: no section
    songs = pd.read_csv(results / common.SONG_LANGUAGES_FILE).assign(language="")
    songs.to_csv(results / common.SONG_LANGUAGES_FILE, index=False)
    text = report.write_report(data, results).read_text()
    assert "No song is labelled" in text and "Clusters against the known languages" not in text
    assert not fig.exists()
    (results / common.SONG_LANGUAGES_FILE).unlink()
    assert "song by song" not in report.write_report(data, results).read_text().split("## Finding")[0]
    assert "## The clusters, song by song" not in report.write_report(data, results).read_text()


def test_commands_section_quotes_the_build_command_that_ran(hand_results):
    data, results = hand_results
    text = report.write_report(data, results).read_text()
    assert "# not recorded: the demo corpus's command" in text
    argv = ["--source", "manifest", "--manifest", "my songs.csv", "--workers", "2", "--data-dir", str(data)]
    report.record_command(data, "build_dataset.py", argv=argv)
    text = report.write_report(data, results).read_text()
    assert f"python build_dataset.py --source manifest --manifest 'my songs.csv' --workers 2 --data-dir {data}" in text
    assert "not recorded" not in text
    report.record_command(data, "build_dataset.py", argv=["--source", "demo", "--data-dir", "elsewhere"])
    assert "not recorded" in report.write_report(data, results).read_text()  # another dataset's command


def test_tsne_of_identical_rows_is_one_point_not_a_crash():
    """Every segment with the same features (one artist, no titles): sklearn's Barnes-Hut t-SNE
    divides by a zero spread and then segfaults; the figure shows one point instead."""
    import plots
    emb, idx, note = plots.tsne_embedding(np.ones((6, 20), dtype=np.float32), seed=0)
    assert emb.shape == (6, 2) and np.isfinite(emb).all() and list(idx) == list(range(6))
    assert "same features" in note
    emb, _, note = plots.tsne_embedding(np.random.default_rng(0).standard_normal((6, 20)), seed=0)
    assert emb.std(axis=0).min() > 0 and "same features" not in note


def test_report_quotes_the_validation_corpora_of_the_declared_methods(hand_results):
    """Issue 16: a demo result is never read as a real one: the shipped validation rows of each declared
    method stand beside this run's numbers."""
    data, results = hand_results
    section = report.write_report(data, results).read_text().split("## Finding the language")[1]
    val = pd.read_csv(report.VALIDATION_FILE, dtype=str, keep_default_na=False)
    quoted = val[val["method"] == "fg_vtln_bow_merge"]
    assert len(quoted) >= 3 and "**The same declared methods on the validation corpora**" in section
    for _, v in quoted.iterrows():
        assert f"| `fg_vtln_bow_merge` | {v['corpus']} | {v['kind']} |" in section
    assert "| `whisper_named` |" not in section  # not a declared method of this (hand-made) run
    assert {"corpus", "kind", "method", "song_acc", "date", "command"} <= set(val.columns)
    assert (val["command"] != "").all() and (val["date"] != "").all()
