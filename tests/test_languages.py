"""languages.py: the number of languages from Whisper's posteriors, cluster names, labels over names."""
import numpy as np
import pandas as pd

import languages

CODES = ["bn", "en", "hi", "jw", "ta", "te", "ur"]


def posteriors(spec, seed=0):
    """Songs' posteriors over CODES: spec = [(n songs, {code: weight}), ...], with Dirichlet noise."""
    rng = np.random.default_rng(seed)
    rows, truth = [], []
    for n, weights in spec:
        alpha = np.array([weights.get(c, 0.02) for c in CODES]) * 30
        rows.append(rng.dirichlet(alpha, size=n))
        truth += [max(weights, key=weights.get)] * n
    return np.concatenate(rows), np.array(truth)


def test_names_come_from_langcodes():
    assert languages.english_name("bn") == "Bangla"
    assert languages.iso_code("jw") == "jv"  # Whisper's Javanese
    assert languages.english_name("jw") == "Javanese"
    assert languages.label_code("bangla") == languages.label_code("Bengali") == "bn"
    assert languages.label_code("Telugu") == "te"
    assert languages.label_code("cluster_a") == ""
    assert languages.label_code("") == ""


def test_whisper_name_sure_and_unsure():
    p = np.array([0.7, 0.1, 0.1, 0.0, 0.05, 0.05, 0.0])
    assert languages.whisper_name(p, CODES)[:2] == ("bn", "Bangla")
    code, name, top, margin = languages.whisper_name(np.array([0.31, 0.05, 0.27, 0.0, 0.2, 0.17, 0.0]), CODES)
    assert code == "" and name == "uncertain (bn 0.31 / hi 0.27)"
    assert np.isclose(top, 0.31) and np.isclose(margin, 0.04)


def test_k_three_well_separated_groups():
    P, truth = posteriors([(30, {"en": 1.0}), (20, {"bn": 1.0}), (12, {"ta": 1.0})])
    out = languages.named_clusters(np.log(P), CODES)
    assert out["k"] == 3
    names = languages.name_clusters(out["clusters"], P, CODES)
    got = names.loc[out["clusters"], "cluster_language"].to_numpy()
    assert (got == truth).mean() == 1.0
    assert list(names["named_by"]) == ["whisper"] * 3


def test_k_two_unequal_groups_and_a_stray_name():
    # 60 English songs, 8 Bangla ones, and 1 song that Whisper calls Tamil: two languages, not three
    P, truth = posteriors([(60, {"en": 1.0}), (8, {"bn": 1.0}), (1, {"ta": 1.0})], seed=1)
    out = languages.named_clusters(np.log(P), CODES)
    assert out["k"] == 2
    table = out["table"].set_index("code")
    assert table.loc["en", "present"] and table.loc["bn", "present"] and not table.loc["ta", "present"]
    assert (out["clusters"][:60] == out["clusters"][0]).all() and (out["clusters"][60:68] != out["clusters"][0]).all()


def test_unsure_songs_are_placed_by_the_encoder_states():
    # Bangla songs Whisper is unsure of (a flat posterior) but whose states sit with the sure Bangla ones
    P, _ = posteriors([(20, {"en": 1.0}), (20, {"bn": 1.0})], seed=2)
    flat = np.full((6, len(CODES)), 1 / len(CODES))
    flat[:, CODES.index("en")] += 0.05  # leaning (wrongly) to English
    P = np.concatenate([P, flat / flat.sum(axis=1, keepdims=True)])
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (20, 4)), rng.normal(6, 1, (20, 4)), rng.normal(6, 1, (6, 4))])
    alone = languages.named_clusters(np.log(P), CODES, X=None)["clusters"]
    helped = languages.named_clusters(np.log(P), CODES, X=X)["clusters"]
    bangla = helped[20]
    assert (alone[40:] != alone[20]).all()  # Whisper alone follows its lean
    assert (helped[40:] == bangla).all() and (helped[:20] != bangla).all()


def test_hindi_urdu_confused_by_whisper_are_one_cluster():
    # the same songs split by Whisper's argmax between hi and ur, each giving the other a third
    P, _ = posteriors([(20, {"en": 1.0}), (10, {"hi": 0.55, "ur": 0.4}), (10, {"hi": 0.4, "ur": 0.55})], seed=3)
    out = languages.named_clusters(np.log(P), CODES)
    assert out["k"] == 2
    assert sorted(CODES[a] for a in out["groups"][1]) == ["hi", "ur"]
    # ... and Hindi and Urdu that Whisper keeps apart stay two
    P, _ = posteriors([(20, {"en": 1.0}), (10, {"hi": 1.0}), (10, {"ur": 1.0})], seed=3)
    assert languages.named_clusters(np.log(P), CODES)["k"] == 3


def test_forced_k():
    P, _ = posteriors([(30, {"en": 1.0}), (20, {"bn": 1.0}), (12, {"ta": 1.0})], seed=4)
    assert languages.named_clusters(np.log(P), CODES, k=2)["k"] == 2
    assert languages.named_clusters(np.log(P), CODES, k=4)["k"] == 4


def test_labels_override_whisper_and_unsure_cluster_is_named_so():
    P, _ = posteriors([(10, {"en": 1.0}), (10, {"bn": 0.3, "hi": 0.28, "te": 0.2})], seed=5)
    clusters = np.array([0] * 10 + [1] * 10)
    names = languages.name_clusters(clusters, P, CODES)
    assert names.loc[0, "cluster"] == "English" and names.loc[0, "cluster_language"] == "en"
    assert names.loc[1, "cluster"].startswith("uncertain (bn ") and names.loc[1, "cluster_language"] == ""
    labels = [""] * 10 + ["bangla", ""] + [""] * 8
    named = languages.name_clusters(clusters, P, CODES, labels)
    assert named.loc[1, "cluster"] == "bangla" and named.loc[1, "cluster_language"] == "bn"
    assert named.loc[1, "named_by"] == "labels" and named.loc[1, "cluster_language_name"] == "Bangla"
    assert named.loc[0, "cluster"] == "English"  # no label there: Whisper's name stays
    unnamed = languages.name_clusters(clusters)
    assert list(unnamed["cluster"]) == ["cluster_0", "cluster_1"]


def test_duplicate_names_get_the_cluster_id():
    P, _ = posteriors([(10, {"en": 1.0}), (10, {"en": 1.0})], seed=6)
    names = languages.name_clusters(np.array([0] * 10 + [1] * 10), P, CODES)
    assert list(names["cluster"]) == ["English_0", "English_1"]
    assert list(names["cluster_language"]) == ["en", "en"]


def test_languages_whisper_cannot_name_are_clustered_apart():
    # English named; two groups of songs (a synthesizer's Bangla and Hindi) whose posteriors are
    # flat over 30 languages but shaped differently: Whisper names neither, their profiles split them
    codes = ["en"] + [f"q{i:02d}" for i in range(29)]
    rng = np.random.default_rng(7)
    logits = rng.normal(0, 0.3, (60, 30))
    logits[:30, 0] += 6.0  # English, named
    logits[30:45, 1:15] += 1.0  # group A leans to one half of the languages
    logits[45:, 15:] += 1.0  # group B to the other
    logp = np.log(languages.softmax_rows(logits))
    out = languages.named_clusters(logp, codes)
    assert out["k"] == 3 and set(out["unnamed"]) == {2, 3, 4}
    c = out["clusters"]
    assert len(set(c[:30])) == 1 and len(set(c[30:45])) == 1 and len(set(c[45:])) == 1
    assert len({c[0], c[30], c[45]}) == 3
    names = languages.name_clusters(c, np.exp(logp), codes)
    assert names.loc[c[0], "cluster_language"] == "en"
    assert names.loc[c[30], "named_by"] == "uncertain" and names.loc[c[30], "cluster_language"] == ""


def test_weak_scattered_names_of_an_unnamed_voice_are_not_languages():
    # English named firmly; a synthesizer's Bangla (30 songs) that Whisper cannot name: most songs get
    # no name, 4 are weakly called q05 and 4 weakly q06 (top posterior ~0.45): one language, not three
    codes = ["en"] + [f"q{i:02d}" for i in range(29)]
    rng = np.random.default_rng(8)
    logits = rng.normal(0, 0.6, (60, 30))
    logits[:30, 0] += 8.0
    logits[30:, 1:15] += 1.0
    logits[30:34, 6] += 3.0
    logits[34:38, 7] += 3.0
    logp = np.log(languages.softmax_rows(logits))
    out = languages.named_clusters(logp, codes)
    table = out["table"].set_index("code")
    assert table.loc["q05", "present"] and table.loc["q06", "present"]  # each named on enough songs ...
    assert out["k"] == 2  # ... but only weakly, beside many unnamed songs: they join them
    c = out["clusters"]
    assert len(set(c[:30])) == 1 and len(set(c[30:])) == 1 and c[0] != c[30]
