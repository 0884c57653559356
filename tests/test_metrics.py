"""Every metric against a hand-computed case; K-Means runs and summaries."""
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common  # noqa: E402
import metrics  # noqa: E402
import tables  # noqa: E402
from common import METRIC_COLUMNS, PipelineError  # noqa: E402


# ----------------------------------------------------------------------------
# purity, acc, majority rate
def test_purity_hand_case():
    # cluster 0: 2 english; cluster 1: 1 english, 2 bangla -> (2 + 2) / 5
    labels = ["en", "en", "en", "bn", "bn"]
    assert metrics.purity(labels, [0, 0, 1, 1, 1]) == pytest.approx(4 / 5)


def test_purity_equals_majority_rate_when_clusters_share_a_majority():
    # 6 bangla, 4 english; both clusters hold 3 bangla + 2 english: majority bangla in each
    labels = ["bn"] * 3 + ["en"] * 2 + ["bn"] * 3 + ["en"] * 2
    clusters = [0] * 5 + [1] * 5
    assert metrics.majority_rate(labels) == pytest.approx(0.6)
    assert metrics.purity(labels, clusters) == pytest.approx(metrics.majority_rate(labels))
    assert metrics.acc(labels, clusters) == pytest.approx(0.5)  # acc sees the split is useless


def test_acc_permuted_cluster_ids_is_one():
    labels = np.array(["english", "bangla", "bangla", "english", "bangla", "english"])
    clusters = np.where(labels == "english", 7, 3)  # arbitrary ids, swapped order
    assert metrics.acc(labels, clusters) == 1.0
    assert metrics.purity(labels, clusters) == 1.0
    assert metrics.matching(labels, clusters) == {"7": "english", "3": "bangla"}


def test_acc_hand_2x2_differs_from_purity():
    # cluster 0: 4 en, 1 bn; cluster 1: 3 en, 2 bn
    labels = ["en"] * 4 + ["bn"] + ["en"] * 3 + ["bn"] * 2
    clusters = [0] * 5 + [1] * 5
    # purity takes en in both clusters: (4 + 3) / 10; acc matches one-to-one: max(4 + 2, 1 + 3) / 10
    assert metrics.purity(labels, clusters) == pytest.approx(0.7)
    assert metrics.acc(labels, clusters) == pytest.approx(0.6)


def test_acc_with_k_not_equal_to_number_of_languages():
    # three clusters, two languages: the unmatched cluster counts as wrong
    labels = ["en"] * 3 + ["bn"] * 3 + ["en", "en", "bn", "bn"]
    clusters = [0] * 3 + [1] * 3 + [2] * 4
    assert metrics.acc(labels, clusters) == pytest.approx(6 / 10)
    assert metrics.purity(labels, clusters) == pytest.approx(8 / 10)
    # one cluster: acc is the majority rate
    assert metrics.acc(labels, [0] * 10) == pytest.approx(metrics.majority_rate(labels)) == 0.5


def test_majority_rate():
    assert metrics.majority_rate(["a", "a", "b"]) == pytest.approx(2 / 3)
    assert metrics.majority_rate(["bangla"] * 2845 + ["english"] * 2109) == pytest.approx(0.5743, abs=1e-4)


# ----------------------------------------------------------------------------
# NMI and ARI
def test_nmi_hand_case():
    # H(Y) = ln 2, H(C) = 1.5 ln 2, I(Y;C) = ln 2 (C determines Y) -> 2 ln2 / 2.5 ln2 = 0.8
    assert metrics.nmi([0, 0, 1, 1], [0, 0, 1, 2]) == pytest.approx(0.8)
    assert metrics.nmi(["a", "a", "b", "b"], [5, 5, 9, 9]) == pytest.approx(1.0)
    assert metrics.nmi([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(0.0, abs=1e-12)


def test_ari_hand_case():
    # contingency [[2,0,0],[0,1,1]]: index 1, expected 2*1/6, max (2+1)/2 -> (2/3) / (7/6) = 4/7
    assert metrics.ari([0, 0, 1, 1], [0, 0, 1, 2]) == pytest.approx(4 / 7)
    assert metrics.ari(["x", "x", "y", "y"], [1, 1, 0, 0]) == pytest.approx(1.0)


def _nmi_by_hand(labels, clusters):
    n = len(labels)
    def h(v):
        _, c = np.unique(v, return_counts=True)
        p = c / n
        return -(p * np.log(p)).sum()
    mi = 0.0
    for y in np.unique(labels):
        for c in np.unique(clusters):
            nyc = np.sum((labels == y) & (clusters == c))
            if nyc:
                mi += nyc / n * math.log(n * nyc / (np.sum(labels == y) * np.sum(clusters == c)))
    return 2 * mi / (h(labels) + h(clusters))


def _ari_by_hand(labels, clusters):
    c2 = lambda x: x * (x - 1) / 2  # noqa: E731
    table = pd.crosstab(labels, clusters).to_numpy()
    index = c2(table).sum()
    a, b = c2(table.sum(1)).sum(), c2(table.sum(0)).sum()
    expected = a * b / c2(table.sum())
    return (index - expected) / ((a + b) / 2 - expected)


def test_nmi_ari_equal_sklearn_and_the_formulas_on_random_cases():
    rng = np.random.default_rng(0)
    for _ in range(5):
        labels = rng.integers(0, 2, 200)
        clusters = np.where(rng.random(200) < 0.7, labels, rng.integers(0, 3, 200))
        names = np.array(["english", "bangla"])[labels]  # string labels give the same result
        assert metrics.nmi(names, clusters) == pytest.approx(normalized_mutual_info_score(labels, clusters))
        assert metrics.nmi(names, clusters) == pytest.approx(_nmi_by_hand(labels, clusters))
        assert metrics.ari(names, clusters) == pytest.approx(adjusted_rand_score(labels, clusters))
        assert metrics.ari(names, clusters) == pytest.approx(_ari_by_hand(labels, clusters))
    # the edge cases follow scikit-learn's conventions
    for a, b in [([0, 0, 0], [1, 1, 1]), ([0, 0, 0], [0, 1, 2]), ([0, 1, 2], [5, 5, 5]), ([0, 1], [1, 0]),
                 (rng.integers(0, 4, 50), rng.integers(0, 6, 50))]:
        assert metrics.nmi(a, b) == pytest.approx(normalized_mutual_info_score(a, b), abs=1e-12)


# ----------------------------------------------------------------------------
# silhouette
def test_silhouette_hand_case_exact_and_precomputed():
    x = np.array([[0.0], [1.0], [10.0], [11.0]])
    clusters = [0, 0, 1, 1]
    # points 0 and 3: a = 1, b = 10.5; points 1 and 2: a = 1, b = 9.5
    expected = (9.5 / 10.5 + 8.5 / 9.5) / 2
    assert metrics.silhouette(x, clusters) == pytest.approx(expected)
    assert metrics.silhouette(x, clusters, metrics.distance_matrix(x)) == pytest.approx(expected, rel=1e-6)
    assert math.isnan(metrics.silhouette(x, [0, 0, 0, 0]))


def test_silhouette_samples_above_the_limit(monkeypatch):
    monkeypatch.setattr(metrics, "SILHOUETTE_MAX_POINTS", 30)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(100, 3)).astype(np.float32)
    clusters = (x[:, 0] > 0).astype(int)
    assert metrics.distance_matrix(x) is None
    idx = metrics.silhouette_sample(100, seed=4)
    assert len(idx) == 30 and len(set(idx)) == 30
    got = metrics.silhouette(x, clusters, None, sample_seed=4)
    assert got == pytest.approx(silhouette_score(x[idx], clusters[idx]), rel=1e-5)
    assert got != pytest.approx(silhouette_score(x, clusters), rel=1e-9)
    assert "sample of 30 of 100" in metrics.silhouette_note(100)
    assert "exact" in metrics.silhouette_note(30)


def test_score_has_every_metric():
    x = np.array([[0.0, 0], [0, 1], [5, 5], [5, 6]])
    s = metrics.score(x, ["a", "a", "b", "b"], [1, 1, 0, 0])
    assert list(s) == metrics.METRIC_NAMES
    assert s["nmi"] == s["ari"] == s["purity"] == s["acc"] == pytest.approx(1.0)
    assert s["silhouette"] > 0.8


# ----------------------------------------------------------------------------
# K-Means over seeds, summaries
def _blobs(n=40, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.array(["english"] * (n // 2) + ["bangla"] * (n - n // 2))
    x = rng.normal(size=(n, 8)).astype(np.float32) + (labels == "english")[:, None] * 4
    return x, labels


def test_cluster_and_score_rows_and_determinism():
    x, labels = _blobs()
    rows, assign = metrics.cluster_and_score(x, labels, "m", "blobs", True, seed=3)
    assert list(rows.columns) == METRIC_COLUMNS
    assert len(rows) == metrics.N_KMEANS_SEEDS
    assert rows["seed"].tolist() == [3 + i for i in range(metrics.N_KMEANS_SEEDS)]
    assert sorted(assign) == rows["seed"].tolist()
    assert (rows["acc"] == 1.0).all() and rows["uses_labels"].all() and (rows["n_segments"] == 40).all()
    rows2, assign2 = metrics.cluster_and_score(x, labels, "m", "blobs", True, seed=3)
    pd.testing.assert_frame_equal(rows, rows2)
    assert all((assign[s] == assign2[s]).all() for s in assign)


def test_summarize_mean_and_std():
    rows = pd.DataFrame({"method": ["a", "a", "b"], "features": ["f", "f", "g"], "uses_labels": [False] * 3,
                         "silhouette": [0.1, 0.3, 0.5], "nmi": [0.0, 0.2, 0.1], "ari": [0, 0, 0],
                         "purity": [0.6, 0.6, 0.7], "acc": [0.5, 0.7, 0.9], "n_segments": [10] * 3,
                         "seed": [1, 2, 1]})
    s = metrics.summarize(rows).set_index("method")
    assert s.loc["a", "silhouette_mean"] == pytest.approx(0.2)
    assert s.loc["a", "acc_std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert s.loc["a", "n_seeds"] == 2
    assert math.isnan(s.loc["b", "acc_std"])


def test_evaluate_writes_long_cluster_file(tmp_path):
    x, labels = _blobs(20)
    segments = pd.DataFrame({"segment_id": [f"s{i}" for i in range(20)], "language": labels})
    rows, _ = metrics.evaluate("m", x, segments, "blobs", False, tmp_path, seed=0,
                               extra={"uses_metadata": True})
    df = pd.read_csv(common.clusters_path(tmp_path, "m"), dtype={"segment_id": str})
    assert list(df.columns) == ["segment_id", "seed", "cluster"]
    assert len(df) == 20 * metrics.N_KMEANS_SEEDS
    assert rows["uses_metadata"].all()


# ----------------------------------------------------------------------------
# inputs
def test_n_clusters_from_labels_only_when_all_labelled_and_nothing_set():
    seg = lambda langs: pd.DataFrame({"language": langs, "song_id": [str(i) for i in range(len(langs))]})
    assert metrics.n_clusters(seg(["a", "b", "c", "a"])) == 3  # every segment labelled: the labels' count
    assert metrics.n_clusters(seg(["a", "b", "c", "a"]), override=5) == 5  # the flag wins
    assert metrics.n_clusters(seg(["a", "b", "c", np.nan])) == metrics.N_LANGUAGES == 2  # one unlabelled
    assert metrics.n_clusters(seg(["a", "b", "c", ""])) == 2  # blank text is unlabelled too
    assert metrics.n_clusters(seg([np.nan] * 4)) == 2
    assert metrics.n_clusters(seg(["english"] * 4)) == 2  # one language: not one cluster
    with pytest.raises(PipelineError, match="at least 2"):
        metrics.n_clusters(seg(["a", "b"]), override=1)


def test_check_labels_lets_unlabelled_corpora_through(capsys):
    seg = pd.DataFrame({"language": [np.nan] * 4, "song_id": ["1", "1", "2", "2"]})
    assert metrics.check_labels(seg, 2) == []
    assert "no labels were given" in capsys.readouterr().out
    part = seg.assign(language=["en", "en", np.nan, np.nan])
    metrics.check_labels(part, 2)
    assert "scoring needs two languages" in capsys.readouterr().out
    part = pd.DataFrame({"language": ["en", "bn", np.nan, np.nan], "song_id": ["1", "2", "3", "3"]})
    assert metrics.check_labels(part, 2) == ["bn", "en"]
    assert "2 of 4 segments (2 of 3 songs) labelled" in capsys.readouterr().out
    with pytest.raises(PipelineError, match="fewer than the 5 clusters"):
        metrics.check_labels(part, 5)


def test_partly_labelled_metrics_equal_sklearn_on_the_labelled_subset():
    x, labels = _blobs(20)
    clusters = np.array([0] * 8 + [1] * 12)  # deliberately imperfect
    labels = labels.astype(object)
    unl = np.array([1, 4, 9, 13, 17])
    labels[unl] = np.nan
    labels[2] = "   "  # blank text counts as unlabelled
    keep = np.setdiff1d(np.arange(20), np.r_[unl, 2])
    m = metrics.score_labelled(x, labels, clusters)
    assert m["n_scored"] == len(keep) == 14
    y, c = labels[keep].astype(str), clusters[keep]
    assert m["nmi"] == pytest.approx(normalized_mutual_info_score(y, c))
    assert m["ari"] == pytest.approx(adjusted_rand_score(y, c))
    assert m["purity"] == pytest.approx(metrics.purity(y, c))
    assert m["acc"] == pytest.approx(metrics.acc(y, c))
    # silhouette is label-free: every segment, not only the scored ones
    assert m["silhouette"] == pytest.approx(silhouette_score(x, clusters))
    assert m["silhouette"] != pytest.approx(silhouette_score(x[keep], c))
    assert metrics.majority_rate(labels) == pytest.approx(metrics.majority_rate(y))


def test_no_labels_leave_the_metric_cells_empty(tmp_path):
    x, _ = _blobs(20)
    segments = pd.DataFrame({"segment_id": [f"s{i}" for i in range(20)], "language": [np.nan] * 20})
    rows, assign = metrics.evaluate("m", x, segments, "blobs", False, tmp_path, seed=0, n_seeds=2)
    assert list(rows.columns) == METRIC_COLUMNS
    assert rows[metrics.LABEL_METRICS].isna().all().all() and (rows["n_scored"] == 0).all()
    assert rows["silhouette"].notna().all() and (rows["pretrained"] == "none").all()
    assert all(len(np.unique(a)) == metrics.N_LANGUAGES for a in assign.values())  # k = N_LANGUAGES
    common.write_csv(common.metrics_dir(tmp_path) / "advanced_metrics.csv", rows)
    line = (common.metrics_dir(tmp_path) / "advanced_metrics.csv").read_text().splitlines()[1].split(",")
    cols = dict(zip(METRIC_COLUMNS, line))
    assert all(cols[m] == "" for m in metrics.LABEL_METRICS) and cols["n_scored"] == "0"  # empty CSV cells
    back = tables.read_metrics(tmp_path)
    s = metrics.summarize(back).iloc[0]
    assert math.isnan(s["acc_mean"]) and math.isnan(s["acc_std"]) and s["silhouette_mean"] > 0
    assert metrics.fmt_metric(s["acc_mean"]) == "-" and metrics.fmt_metric(0.5) == "0.5000"
    # one language among the labels: nothing to score against either
    one = metrics.score_labelled(x, ["en"] * 10 + [np.nan] * 10, assign[0])
    assert math.isnan(one["acc"]) and one["n_scored"] == 0
    assert math.isnan(metrics.majority_rate([np.nan, ""]))


def test_n_scored_counts_the_labelled_segments():
    x, labels = _blobs(40)
    labels = labels.astype(object)
    labels[::4] = np.nan  # 10 of 40 unlabelled
    rows, _ = metrics.cluster_and_score(x, labels, "m", "blobs", False, seed=1, n_seeds=2)
    assert (rows["n_scored"] == 30).all() and (rows["n_segments"] == 40).all()
    assert (rows["acc"] == 1.0).all()  # well separated blobs: the labelled ones all right
