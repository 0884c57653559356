"""Finding the language (issue 5): the probe, codebook histograms, unit bigrams, VTLN warps,
the song-level vote, confound NMI, and build_features.py / analyze_language.py on tiny data."""
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import analyze_language  # noqa: E402
import build_features as bf  # noqa: E402
import common  # noqa: E402
import diagnostics  # noqa: E402
import languages  # noqa: E402
import metrics  # noqa: E402
from common import PipelineError  # noqa: E402
from conftest import write_song  # noqa: E402


def toy_segments(n_songs=12, per_song=3, artists_per_language=3):
    rows = []
    for s in range(n_songs):
        lang = ["english", "bangla"][s % 2]
        artist = f"{lang}_{(s // 2) % artists_per_language}"
        for j in range(per_song):
            rows.append({"segment_id": f"s{s:02d}_{j}", "song_id": f"s{s:02d}", "language": lang,
                         "title": f"t{s}", "artist": artist, "start_s": 30.0 * j})
    return pd.DataFrame(rows, columns=common.SEGMENT_COLUMNS)


# ----------------------------------------------------------------------------
# the probe
@pytest.mark.parametrize("column", ["song_id", "artist"])
def test_probe_folds_never_split_a_group(column):
    seg = toy_segments()
    groups = seg[column].to_numpy()
    splits = diagnostics.probe_splits(groups)
    assert len(splits) == min(diagnostics.PROBE_FOLDS, seg[column].nunique())
    tested = np.concatenate([test for _, test in splits])
    assert sorted(tested) == list(range(len(seg)))  # every segment predicted exactly once
    for train, test in splits:
        assert not set(groups[train]) & set(groups[test])


def test_probe_finds_a_planted_language_and_not_a_missing_one():
    seg = toy_segments(n_songs=20)
    rng = np.random.default_rng(0)
    y = (seg["language"] == "bangla").to_numpy()
    planted = rng.standard_normal((len(seg), 6)) + 4.0 * y[:, None]
    scores = diagnostics.probe_scores(planted, seg)
    assert scores["probe_acc"] == 1.0 and scores["probe_acc_artist"] == 1.0
    # languages shuffled between singers: the same probe falls to chance or below
    assert scores["probe_acc_artist_permuted"] < 0.7
    # a shuffle between groups keeps every group on one language
    shuffled = diagnostics.permute_between_groups(seg["language"], seg["artist"], np.random.default_rng(1))
    assert pd.DataFrame({"a": seg["artist"], "l": shuffled}).groupby("a")["l"].nunique().max() == 1
    # one group only: nothing to hold out
    assert np.isnan(diagnostics.probe_accuracy(planted, seg["language"], np.zeros(len(seg))))


# ----------------------------------------------------------------------------
# codebook histogram and unit bigrams on hand-made sequences
def test_codebook_histogram_of_a_hand_made_sequence():
    centers = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], dtype=np.float32)
    codebook = (np.zeros(2, np.float32), np.ones(2, np.float32), centers)
    frames = np.array([[0.1, -0.2], [0.3, 0.1], [9.5, 0.4], [0.2, 9.7], [-0.1, 10.3], [0.4, 11.0]])
    codes = bf.assign_codes(frames, codebook)
    assert codes.tolist() == [0, 0, 1, 2, 2, 2]
    assert bf.code_histogram(codes, 3).tolist() == [2, 1, 3]
    assert bf.code_histogram([], 3).tolist() == [0, 0, 0]


def test_bigram_counts_collapse_runs():
    assert bf.collapse_runs([3, 3, 1, 1, 1, 3, 0]).tolist() == [3, 1, 3, 0]
    counts = bf.bigram_counts([3, 3, 1, 1, 1, 3, 0], 4)
    expected = np.zeros(16)
    expected[[3 * 4 + 1, 1 * 4 + 3, 3 * 4 + 0]] = 1  # (3,1), (1,3), (3,0)
    assert counts.tolist() == expected.tolist()
    assert bf.bigram_counts([2, 2, 2], 4).sum() == 0  # one unit held: no pair


def test_tfidf_rows_are_unit_length_and_downweight_shared_codewords():
    counts = np.array([[5, 1, 0], [5, 0, 1], [5, 1, 1]], dtype=float)
    x = bf.tfidf(counts)
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0)
    assert x[0, 0] / x[0, 1] < 5  # codeword 0 is in every segment: its weight drops


# ----------------------------------------------------------------------------
# VTLN on the cepstra
def test_warp_of_one_is_identity_and_alpha_above_one_moves_formants_down():
    from scipy.fft import dct
    assert np.allclose(bf.warp_matrix(1.0), np.eye(bf.N_CEPS), atol=1e-5)
    D = dct(np.eye(bf.N_MELS), type=2, norm="ortho", axis=0)
    band = np.arange(bf.N_MELS)
    envelope = np.exp(-0.5 * ((band - 30) / 3.0) ** 2)  # one formant at band 30
    ceps = D[:bf.N_CEPS] @ envelope
    peak = lambda c: int(np.argmax(D.T[:, :bf.N_CEPS] @ c))  # noqa: E731
    assert abs(peak(ceps) - 30) <= 1
    assert peak(bf.warp_matrix(1.2) @ ceps) < 28
    assert peak(bf.warp_matrix(0.85) @ ceps) > 32


def test_estimate_warps_undoes_a_planted_scaling():
    from scipy.fft import dct
    D = dct(np.eye(bf.N_MELS), type=2, norm="ortho", axis=0)
    band = np.arange(bf.N_MELS)
    base = sum(np.exp(-0.5 * ((band - b) / 2.5) ** 2) for b in (12, 25, 40))
    base_ceps = D[:bf.N_CEPS] @ base
    # four songs with the base voice, four whose formants sit higher (read at 1/1.2 f)
    env = {f"low{i}": base_ceps for i in range(4)}
    env.update({f"high{i}": bf.warp_matrix(1 / 1.2) @ base_ceps for i in range(4)})
    alpha = bf.estimate_warps(env, alphas=tuple(np.round(np.arange(0.7, 1.4001, 0.02), 2)))
    lo = np.mean([alpha[f"low{i}"] for i in range(4)])
    hi = np.mean([alpha[f"high{i}"] for i in range(4)])
    assert 1.12 <= hi / lo <= 1.28  # the high voices are warped down by about 1.2


# ----------------------------------------------------------------------------
# song-level vote and confounds
def test_song_vote_and_song_scores_on_a_hand_case():
    songs = ["a", "a", "a", "b", "b", "b", "c", "c", "d", "d"]
    langs = ["en", "en", "en", "bn", "bn", "bn", "en", "en", "bn", "bn"]
    clusters = [0, 0, 1, 1, 1, 0, 0, 1, 1, 1]
    vote = diagnostics.song_vote(clusters, songs)
    assert vote == {"a": 0, "b": 1, "c": 0, "d": 1}  # c is a tie: the smaller cluster id
    s = diagnostics.song_scores(clusters, songs, langs)
    assert s["song_acc"] == 1.0 and s["song_nmi"] == pytest.approx(1.0)
    s = diagnostics.song_scores([0, 0, 0, 1, 1, 1, 0, 0, 0, 0], songs, langs)
    assert s["song_acc"] == 0.75  # a, c, d -> 0 and b -> 1: d is the one song on the wrong side


def test_confound_nmi_is_one_where_clusters_follow_a_column():
    seg = toy_segments()
    songs = pd.DataFrame({"song_id": seg["song_id"].unique()})
    songs["style"] = ["rock", "pop", "folk"] * (len(songs) // 3)
    songs["tempo_bpm"] = np.linspace(70, 150, len(songs))
    songs["espeak_voice"] = "en+m1"  # not a confound: left out
    cols = diagnostics.confound_columns(seg, songs)
    assert {"language", "artist", "position", "style", "tempo_bpm"} <= set(cols.columns)
    assert "espeak_voice" not in cols.columns and "title" not in cols.columns
    assert cols["position"].tolist()[:3] == ["0", "1", "2"]
    by_style = diagnostics.confound_nmi(pd.factorize(cols["style"])[0], cols)
    assert by_style["style"] == pytest.approx(1.0)
    assert by_style["language"] < 0.5
    by_language = diagnostics.confound_nmi(cols["language"].to_numpy(), cols)
    assert by_language["language"] == pytest.approx(1.0)
    assert by_language["artist_within_language"] == pytest.approx(0.0)
    by_artist = diagnostics.confound_nmi(cols["artist"].to_numpy(), cols)
    assert by_artist["artist_within_language"] == pytest.approx(1.0)


# ----------------------------------------------------------------------------
# the two stages on tiny data
def tiny_data_dir(root, seconds=(40.0, 35.0, 62.0)):
    data = Path(root) / "data"
    segs = []
    for i, sec in enumerate(seconds):
        sid = f"song{i}"
        write_song(data / "audio" / f"{sid}.wav", sec, seed=i + 1)
        lang = ["english", "bangla"][i % 2]
        for j in range(int(sec // 30)):
            segs.append({"segment_id": f"{sid}_{j:03d}", "song_id": sid, "language": lang, "title": f"t{i}",
                         "artist": f"a{i}", "start_s": 30.0 * j})
    common.write_csv(common.segments_path(data), pd.DataFrame(segs, columns=common.SEGMENT_COLUMNS))
    return data


def test_build_features_on_a_tiny_corpus(tmp_path, capsys):
    data = tiny_data_dir(tmp_path)
    names = ["stats", "fg_stats_cmn", "fg_vtln_bow", "fg_bigram", "bg_stats"]
    written = bf.build(data, names, seed=0, workers=1, codebook_size=8, bigram_size=4)
    assert set(written) == set(names)
    n = len(pd.read_csv(common.segments_path(data)))
    assert n == 4
    dims = {"stats": 4 * bf.N_CEPS, "fg_stats_cmn": 4 * bf.N_CEPS, "fg_vtln_bow": 8, "fg_bigram": 16,
            "bg_stats": 4 * bf.N_CEPS}
    for name, dim in dims.items():
        x = np.load(common.features_dir(data) / f"{name}.npy")
        assert x.shape == (n, dim) and x.dtype == np.float32
        assert np.isfinite(x).all() and np.abs(x).sum() > 0
        assert json.loads((common.features_dir(data) / f"{name}.json").read_text())["shape"] == [n, dim]
    warps = pd.read_csv(common.features_dir(data) / "vtln_fg.csv")
    assert len(warps) == 3 and warps["alpha"].between(min(bf.VTLN_ALPHAS), max(bf.VTLN_ALPHAS)).all()
    # a re-run does nothing; a changed constant rebuilds only what it shapes
    assert bf.build(data, names, seed=0, workers=1, codebook_size=8, bigram_size=4) == {}
    again = bf.build(data, names, seed=0, workers=1, codebook_size=6, bigram_size=4)
    assert set(again) == {"fg_vtln_bow"}


def test_build_features_stops_on_a_missing_song_and_logs_it(tmp_path):
    data = tiny_data_dir(tmp_path, seconds=(31.0, 31.0))
    (data / "audio" / "song1.wav").unlink()
    with pytest.raises(PipelineError, match="could not be read"):
        bf.build(data, ["stats"], workers=1)
    failures = pd.read_csv(common.failures_path(data))
    assert failures["song_id"].tolist() == ["song1"] and failures["stage"].tolist() == ["build_features"]
    assert not (common.features_dir(data) / "stats.npy").exists()  # rows must match: nothing half-done


def stamp_features(data, seg, names):
    """The .json build_features.py writes beside a set: here only the fingerprint a reader checks."""
    fingerprint, _ = common.corpus_fingerprint(data, seg)
    for name in names:
        (common.features_dir(data) / f"{name}.json").write_text(json.dumps({"config": fingerprint}))


@pytest.mark.renders_figures
def test_analyze_language_writes_every_file(tmp_path):
    rng = np.random.default_rng(0)
    seg = toy_segments(n_songs=16, per_song=2, artists_per_language=2)
    data, results = tmp_path / "data", tmp_path / "results"
    common.write_csv(common.segments_path(data), seg)
    n = len(seg)
    common.save_npy(common.mfcc_path(data), rng.standard_normal((n, common.N_MFCC, common.N_FRAMES)).astype(np.float32))
    lang = (seg["language"] == "bangla").to_numpy()
    codewords = np.where(lang[:, None], [5, 5, 5, 0, 0, 0, 1, 1], [0, 0, 0, 5, 5, 5, 1, 1])
    bow = codewords + np.abs(rng.standard_normal((n, 8)))  # 3 codewords per language, 2 shared
    common.save_npy(common.features_dir(data) / "fg_vtln_bow.npy", bow.astype(np.float32))
    singer = rng.standard_normal((4, 5))[seg["artist"].factorize()[0]]  # first stage: singers
    common.save_npy(common.features_dir(data) / "fg_bow.npy", (singer + 0.1 * rng.standard_normal((n, 5))).astype(np.float32))
    stamp_features(data, seg, ["fg_vtln_bow", "fg_bow"])
    songs = pd.DataFrame({"song_id": seg["song_id"].unique(), "language": "x", "style": ["rock", "pop"] * 8})
    common.write_csv(common.songs_path(data), songs)
    mdir = common.metrics_dir(results)
    # a report method's rows from an earlier stage, for the report's comparison
    common.write_csv(mdir / "advanced_metrics.csv", pd.DataFrame(
        [{"method": "pca_kmeans", "features": "pca", "uses_labels": False, "silhouette": 0.1, "nmi": 0.0,
          "ari": 0.0, "purity": 0.5, "acc": a, "n_segments": len(seg), "seed": s} for s, a in [(1, 0.5), (2, 0.6)]]))
    rows = analyze_language.analyze(data, results, seed=1)
    m = pd.read_csv(mdir / common.LANGUAGE_METRICS_FILE)
    assert set(common.METRIC_COLUMNS + analyze_language.EXTRA_COLUMNS) <= set(m.columns)
    assert set(m["method"]) == {"report_mfcc_kmeans", "fg_bow_kmeans", "fg_vtln_bow_kmeans", "fg_vtln_bow_merge",
                                "report_mfcc_songs", "fg_bow_songs", "fg_vtln_bow_songs"}
    assert (m["pretrained"] == "none").all() and (m["n_scored"] == n).all()
    songs_rows = m[m["method"] == "fg_vtln_bow_songs"]
    assert songs_rows["song_acc"].min() == 1.0 and songs_rows["acc"].min() == 1.0
    assert (~m["uses_labels"] & ~m["uses_metadata"]).all() and len(rows) == len(m)
    best = m[m["method"] == "fg_vtln_bow_kmeans"]
    assert best["acc"].min() == 1.0 and best["song_acc"].min() == 1.0 and best["probe_acc_artist"].iloc[0] == 1.0
    clusters = pd.read_csv(common.clusters_path(results, "fg_vtln_bow_kmeans"))
    assert list(clusters.columns) == ["segment_id", "seed", "cluster"] and len(clusters) == 5 * n
    conf = pd.read_csv(mdir / common.CONFOUNDS_FILE)
    assert {"method", "language", "artist", "artist_within_language", "position", "style"} <= set(conf.columns)
    assert conf.set_index("method").loc["fg_vtln_bow_kmeans", "language"] == pytest.approx(1.0)
    figs = common.figures_dir(results)
    for name in [analyze_language.HEATMAP_FILE, analyze_language.PROBES_FIGURE, "methods_comparison.png",
                 "fg_vtln_bow_kmeans_tsne_language.png", "report_mfcc_kmeans_confusion.png"]:
        assert (figs / name).stat().st_size > 0, name
    probes = pd.read_csv(mdir / common.PROBES_FILE)
    assert probes["features"].tolist() == ["report_mfcc", "fg_bow", "fg_vtln_bow"]
    merged = m[m["method"] == "fg_vtln_bow_merge"]
    assert merged["acc"].min() == 1.0 and merged["features"].str.contains("clusters of fg_bow").all()

    # REPORT.md's section is computed from these files: the best method, its ceiling, the comparison
    text = (results / "REPORT.md").read_text()
    section = text[text.index("## Finding the language"):text.index("## What was fixed")]
    assert "Best label-free, audio-only method by `Acc` (chosen with the labels): fg_vtln_bow + K-Means** " \
           "(`fg_vtln_bow_kmeans`): Acc 1.0000" in section
    assert "The supervised probe on `fg_vtln_bow` (the representation it decides in; it reads the labels): " \
           "1.0000 with folds grouped by song, **1.0000 with held-out singers** (permutation baseline" in section
    assert "PCA + K-Means (Acc 0.5500 ± 0.0707): the best label-free method is ahead by 0.4500, more than " \
           "its own seed spread (0.0000)" in section
    assert "Acc >= 0.70 (`TARGET_ACC` in `report.py`): reached *on this corpus*." in section
    assert "language 1.00" in section
    assert "| `none` | fg_vtln_bow + K-Means (`fg_vtln_bow_kmeans`) | 1.0000 ± 0.0000 | 1.0000 ± 0.0000 |" in section
    for name in probes["features"]:  # one probe row per representation
        assert section.count(f"| `{name}`: ") == 1


# ----------------------------------------------------------------------------
# song level, declared methods, the answer per song (issues 8 and 9)
def test_song_means_on_a_hand_case():
    x = np.array([[1.0, 0.0], [3.0, 2.0], [10.0, 10.0], [0.0, 4.0]])
    means = diagnostics.song_means(x, np.array([0, 0, 1, 0]), 3)
    np.testing.assert_allclose(means, [[4 / 3, 2.0], [10.0, 10.0], [0.0, 0.0]])


def test_song_rows_cluster_songs_and_segments_inherit():
    seg = toy_segments(n_songs=8, per_song=3)
    rng = np.random.default_rng(0)
    lang = (seg["language"] == "bangla").to_numpy()
    # segment rows are noisy (every third one lies), their song means are not
    x = rng.standard_normal((len(seg), 4)) + 3.0 * np.where(lang, 1, -1)[:, None]
    x[::3] = -x[::3]
    rows, assignments, per_song = analyze_language.song_rows(x, seg, "toy_songs", "toy", 0, 2)
    assert rows["acc"].min() == 1.0 and len(rows) == len(assignments)
    for s, clusters in assignments.items():
        by_song = pd.Series(clusters).groupby(seg["song_id"].to_numpy()).nunique()
        assert (by_song == 1).all()  # every segment carries its song's cluster
        ids, song_clusters, conf = per_song[s]
        assert len(ids) == 8 and ((conf >= 0) & (conf <= 1)).all()


def test_cluster_names_follow_the_labelled_majority():
    def names(t):
        return languages.name_clusters(t["cluster_id"], song_labels=t["language"])["cluster"].to_dict()
    t = pd.DataFrame({"cluster_id": [0, 0, 0, 1, 1, 1], "language": ["bangla", "bangla", "english", "", "", "english"]})
    assert names(t) == {0: "bangla", 1: "english"}
    t["language"] = ["english", "english", "", "english", "", ""]  # both majorities english: told apart
    assert names(t) == {0: "english_0", 1: "english_1"}
    t["language"] = ""
    assert names(t) == {0: "cluster_0", 1: "cluster_1"}


def test_majority_songs_hand_case():
    seg = pd.DataFrame({"song_id": ["b", "a", "a", "b", "a"]})
    (ids, clusters, conf), = analyze_language.majority_songs({7: np.array([1, 0, 0, 1, 1])}, seg).values()
    assert list(ids) == ["a", "b"] and list(clusters) == [0, 1]
    assert np.allclose(conf, [2 / 3, 1.0])


def test_declared_constants_name_methods_analyze_language_writes():
    import build_features
    families = set(analyze_language.PRETRAINED_BY_PREFIX.values()) | {"none"}
    for method in (analyze_language.LANGUAGE_METHOD, analyze_language.LABEL_FREE_METHOD):
        sets = analyze_language.method_sets(method)
        assert sets, f"{method} is not a method analyze_language.py writes"
        for base in sets:
            assert base in build_features.FEATURE_SETS  # made by build_features.py's defaults
            assert analyze_language.pretrained(base) in families
            # a set with a codebook (a seeded step) is built with the spread's other seeds too
            if build_features.parse_name(base)[2] in ("bow", "bigram"):
                assert base in build_features.SPREAD_SETS
    assert analyze_language.pretrained(analyze_language.LABEL_FREE_METHOD) == "none"
    assert analyze_language.pretrained("whisper_lang_songs") == "language-labels"
    # build_features.py --sets language builds exactly what the declared language method reads
    assert analyze_language.method_sets(analyze_language.LANGUAGE_METHOD) == list(languages.LANGUAGE_SETS)
    assert build_features.expand_sets(["language"]) == list(languages.LANGUAGE_SETS)
    assert build_features.expand_sets(["all"]) == build_features.FEATURE_SETS


def write_toy_corpus(tmp_path, seg):
    """data/ with mfcc.npy, segments.csv and two stamped feature sets; fg_stats carries the language."""
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    common.write_csv(common.segments_path(data), seg)
    n = len(seg)
    common.save_npy(common.mfcc_path(data), rng.standard_normal((n, common.N_MFCC, common.N_FRAMES)).astype(np.float32))
    truth = np.array([i % 2 for i in range(seg["song_id"].nunique())])[seg["song_id"].factorize()[0]]
    common.save_npy(common.features_dir(data) / "fg_stats.npy",
                    (rng.standard_normal((n, 6)) + 4.0 * truth[:, None]).astype(np.float32))
    stamp_features(data, seg, ["fg_stats"])
    return data, truth


def test_analyze_language_without_labels_clusters_every_song(tmp_path, monkeypatch):
    monkeypatch.setattr(analyze_language, "LANGUAGE_METHOD", "fg_stats_songs")
    seg = toy_segments(n_songs=8, per_song=2)
    seg["language"] = ""
    data, _ = write_toy_corpus(tmp_path, seg)
    results = tmp_path / "results"
    # k is checked before any work: at least 2 clusters, and no more than the songs to put in them
    for k, text in [(1, "at least 2 clusters"), (9, "holds 8 songs, fewer than the 9 clusters")]:
        with pytest.raises(PipelineError, match=text):
            analyze_language.analyze(data, results, seed=1, sets=["fg_stats"], n_clusters=k)
    analyze_language.analyze(data, results, seed=1, sets=["report_mfcc", "fg_stats"])
    m = pd.read_csv(common.metrics_dir(results) / common.LANGUAGE_METRICS_FILE)
    assert (m["n_scored"] == 0).all()
    assert m[["nmi", "ari", "purity", "acc", "song_acc"]].isna().all().all()  # empty cells, no placeholder
    assert m["silhouette"].notna().any()
    answer = pd.read_csv(results / common.SONG_LANGUAGES_FILE, keep_default_na=False)
    assert list(answer.columns) == common.SONG_LANGUAGE_COLUMNS and len(answer) == 8
    assert set(answer["cluster"]) == {"cluster_0", "cluster_1"} and (answer["language"] == "").all()


def test_analyze_language_with_some_labels_names_and_scores_on_them(tmp_path, monkeypatch):
    seg = toy_segments(n_songs=10, per_song=2)
    keep = seg["song_id"].isin(["s00", "s01", "s02", "s03"])  # 4 of 10 songs labelled
    seg.loc[~keep, "language"] = ""
    data, truth = write_toy_corpus(tmp_path, seg)
    results = tmp_path / "results"
    monkeypatch.setattr(analyze_language, "LANGUAGE_METHOD", "fg_stats_songs")
    monkeypatch.setattr(analyze_language, "LABEL_FREE_METHOD", "fg_stats_kmeans")
    # another build of the set (build_features.py's SPREAD_SEEDS): the declared spread takes it in
    other = common.features_dir(data) / "seeds" / "seed1"
    other.mkdir(parents=True)
    x = np.load(common.features_dir(data) / "fg_stats.npy")
    common.save_npy(other / "fg_stats.npy", x + np.random.default_rng(5).normal(0, 0.1, x.shape).astype(np.float32))
    (other / "fg_stats.json").write_text((common.features_dir(data) / "fg_stats.json").read_text())
    analyze_language.analyze(data, results, seed=1, sets=["fg_stats"])
    m = pd.read_csv(common.metrics_dir(results) / common.LANGUAGE_METRICS_FILE)
    assert (m["n_scored"] == keep.sum()).all()
    assert m.loc[m["method"] == "fg_stats_songs", "acc"].min() == 1.0
    answer = pd.read_csv(results / common.SONG_LANGUAGES_FILE, keep_default_na=False)
    assert len(answer) == 10 and set(answer["cluster"]) == {"english", "bangla"}
    # every song, labelled or not, lands with the songs of its language
    song_truth = dict(zip(seg["song_id"], truth))
    named = answer.assign(t=answer["song_id"].map(song_truth)).groupby("cluster")["t"].nunique()
    assert (named == 1).all()
    declared = pd.read_csv(common.metrics_dir(results) / common.DECLARED_FILE)
    assert declared["method"].tolist() == ["fg_stats_songs", "fg_stats_kmeans"]
    assert (declared["n_seeds"] == 2 * metrics.N_KMEANS_SEEDS).all()
    assert declared["spread_over"].str.contains("2 codebook seeds").all()
    assert declared["song_acc_boot_lo"].notna().all()  # a segment-level method's songs are bootstrapped too


@pytest.mark.renders_figures
def test_the_language_count_chart_renders_both_panels(tmp_path):
    """The chart behind language_count.csv, as a real PNG (the language path's test runs the scripts
    with figures unrendered)."""
    import plots
    table = pd.DataFrame({"code": ["en", "es", "hu"], "name": ["English", "Spanish", "Hungarian"],
                          "songs": [5, 3, 1], "needed": 2, "present": [True, True, False], "cluster": [0, 1, -1]})
    path = plots.language_count_chart(table, tmp_path / common.LANGUAGE_COUNT_FIGURE, 3, {2: 0.1, 3: 0.4}, 0.3)
    assert path.stat().st_size > 5000
