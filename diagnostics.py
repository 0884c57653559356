"""Diagnostics for every table: how much language a representation carries, and what its
clusters follow instead (issue 5, section 1). Nothing here is a script.

    from diagnostics import probe_scores, song_scores, confound_columns, confound_nmi

  probe_scores     the supervised probe of a feature set: standardize + logistic regression,
                   PROBE_FOLDS folds grouped by song (`probe_acc`: segments of one song never on
                   both sides) and grouped by artist, repeated (`probe_acc_artist`, "held-out
                   singers": the stricter test, since a representation that recognizes singers
                   scores well grouped by song), beside a permutation baseline. Not a ceiling:
                   with few singers it is noisy and biased low
  song_scores      each song's cluster = majority vote of its segments; `song_acc`, `song_nmi`
  confound_nmi     NMI of a clustering against every column confound_columns() builds: the
                   artist, the segment's position in its song, and every extra column songs.csv
                   carries (numbers in quantile bins)

The probe reads the language labels (it is the ceiling, not a method); nothing else here does
except to score.
"""
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.preprocessing import StandardScaler

import metrics

# ----------------------------------------------------------------------------
# probe
PROBE_FOLDS = 5  # GroupKFold folds (fewer when there are fewer groups)
PROBE_C = 1.0  # inverse L2 strength of the logistic regression (scikit-learn's default)
PROBE_MAX_ITER = 2000  # lbfgs iterations
PROBE_REPEATS = 3  # held-out-singer probe: grouped folds drawn this many times (seeded), accuracies averaged
PROBE_PERMUTATIONS = 2  # permutation baseline: languages shuffled between singers this many times
PROBE_SEED = 0  # seed of the repeated folds and of the permutations
# ----------------------------------------------------------------------------
# confounds
CONFOUND_BINS = 4  # numeric columns with more distinct values than this go into quantile bins
POSITION_MAX = 3  # segment index within its song, positions >= this share one bin ("later")
# songs.csv columns that are not confounds: ids, the label itself, free text that names the song,
# and the demo's espeak_voice (language voice + variant, e.g. "bn+m3": the label in disguise)
NOT_CONFOUNDS = {"song_id", "language", "title", "source", "path", "video_id", "resolved_url",
                 "resolved_title", "url", "query", "segment_id", "start_s", "espeak_voice",
                 "manifest_duration_s", "manifest_song_id"}


# ----------------------------------------------------------------------------
# probe: the supervised ceiling, grouped so that a song (or an artist) is never on both sides
def probe_splits(groups, n_splits=PROBE_FOLDS, seed=None):
    """[(train_idx, test_idx)] of a GroupKFold over `groups` (shuffled with `seed` unless None);
    [] when there are < 2 groups."""
    groups = np.asarray(groups).astype(str)
    n = min(n_splits, len(np.unique(groups)))
    if n < 2:
        return []
    kf = GroupKFold(n_splits=n) if seed is None else GroupKFold(n_splits=n, shuffle=True, random_state=seed)
    return list(kf.split(np.zeros(len(groups)), groups=groups))


def probe_accuracy(features, labels, groups, n_splits=PROBE_FOLDS, c=PROBE_C, seed=None):
    """Out-of-fold accuracy of standardize + logistic regression, folds grouped by `groups`.

    Every segment is predicted once, by a model that saw none of its group; NaN when the
    groups cannot be split in two.
    """
    x = np.asarray(features, dtype=np.float32).reshape(len(features), -1)
    y = np.asarray(labels).astype(str)
    splits = probe_splits(groups, n_splits, seed)
    if not splits:
        return float("nan")
    pred = np.empty(len(y), dtype=object)
    for train, test in splits:
        classes = np.unique(y[train])
        if len(classes) < 2:  # all of one language in training: the only possible answer
            pred[test] = classes[0]
            continue
        scaler = StandardScaler().fit(x[train])
        xtr, xte = scaler.transform(x[train]), scaler.transform(x[test])
        model = LogisticRegression(C=c, max_iter=PROBE_MAX_ITER)
        pred[test] = model.fit(xtr, y[train]).predict(xte)
    return float(np.mean(pred == y))


def permute_between_groups(labels, groups, rng):
    """The labels shuffled between groups: each group keeps one language, drawn from another group,
    so the probe's structure (who is held out with whom) stays and only the language is gone."""
    groups = np.asarray(groups).astype(str)
    first = pd.Series(np.asarray(labels).astype(str)).groupby(groups).first()
    shuffled = pd.Series(rng.permutation(first.to_numpy()), index=first.index)
    return shuffled.loc[groups].to_numpy()


def probe_scores(features, segments, n_splits=PROBE_FOLDS, c=PROBE_C, repeats=PROBE_REPEATS,
                 permutations=PROBE_PERMUTATIONS, seed=PROBE_SEED):
    """{'probe_acc': grouped by song; 'probe_acc_artist': held-out singers, the mean over `repeats`
    shuffled grouped splits; 'probe_acc_artist_permuted': the same with the languages permuted
    between singers (what the probe scores with no language in the features' reach)}."""
    lang, artist = segments["language"], segments["artist"]
    held_out = [probe_accuracy(features, lang, artist, n_splits, c, seed + r) for r in range(repeats)]
    rng = np.random.default_rng(seed)
    permuted = [probe_accuracy(features, permute_between_groups(lang, artist, rng), artist, n_splits, c, seed + r)
                for r in range(permutations)]
    return {"probe_acc": probe_accuracy(features, lang, segments["song_id"], n_splits, c),
            "probe_acc_artist": float(np.nanmean(held_out)) if held_out else float("nan"),
            "probe_acc_artist_permuted": float(np.nanmean(permuted)) if permuted else float("nan")}


# ----------------------------------------------------------------------------
# song level: one vote per segment
def song_vote(clusters, song_ids):
    """{song_id: its segments' most frequent cluster}; a tie goes to the smallest cluster id."""
    df = pd.DataFrame({"song": np.asarray(song_ids).astype(str), "cluster": np.asarray(clusters)})
    counts = df.groupby(["song", "cluster"]).size().reset_index(name="n")
    counts = counts.sort_values(["song", "n", "cluster"], ascending=[True, False, True])
    return dict(counts.drop_duplicates("song")[["song", "cluster"]].itertuples(index=False, name=None))


def song_scores(clusters, song_ids, labels):
    """{'song_acc', 'song_nmi'}: acc (Hungarian) and NMI over songs, each song's cluster voted."""
    vote = song_vote(clusters, song_ids)
    songs = pd.DataFrame({"song": np.asarray(song_ids).astype(str),
                          "language": np.asarray(labels).astype(str)}).drop_duplicates("song")
    votes = songs["song"].map(vote).to_numpy()
    return {"song_acc": metrics.acc(songs["language"], votes),
            "song_nmi": metrics.nmi(songs["language"], votes)}


# ----------------------------------------------------------------------------
# confounds: what the clusters follow, if not the language
def segment_position(segments):
    """0 for a song's first segment, 1 for the next, ... (by start_s), capped at POSITION_MAX."""
    rank = segments.groupby("song_id")["start_s"].rank(method="first").astype(int) - 1
    return rank.clip(upper=POSITION_MAX).to_numpy()


def binned(col):
    """A numeric column with many values -> quantile bins; anything else -> as is (strings)."""
    num = pd.to_numeric(col, errors="coerce")
    if num.notna().all() and num.nunique() > CONFOUND_BINS:
        return pd.qcut(num, CONFOUND_BINS, labels=False, duplicates="drop").astype(str)
    return col.astype(str)


def confound_columns(segments, songs=None):
    """DataFrame, one row per segment: language (the reference), artist, position, and every
    extra column of songs.csv (binned when numeric), each as strings."""
    out = pd.DataFrame({"language": segments["language"].astype(str).to_numpy(),
                        "artist": segments["artist"].astype(str).to_numpy(),
                        "position": segment_position(segments).astype(str)})
    if songs is not None:
        extra = [c for c in songs.columns if c not in NOT_CONFOUNDS and c not in out.columns]
        s = songs.drop_duplicates("song_id").set_index(songs["song_id"].astype(str))
        ids = segments["song_id"].astype(str)
        for c in extra:
            col = ids.map(s[c])
            if col.isna().all() or col.astype(str).nunique() < 2:
                continue  # constant or absent: nothing a clustering could follow
            out[c] = binned(col).to_numpy()
    return out


def confound_nmi(clusters, columns):
    """{column: NMI(clusters, column)} for every column of confound_columns(), plus
    artist_within_language: the NMI with the artist inside each language, averaged (weighted by
    size). Artists nest in languages, so a clustering that follows the language exactly also
    scores high against the artist; within a language it scores 0, one that splits singers does not."""
    clusters = np.asarray(clusters)
    out = {}
    for name in columns.columns:
        out[name] = metrics.nmi(columns[name], clusters)
        if name == "artist" and "language" in columns:
            lang = columns["language"].to_numpy()
            parts = [(np.sum(lang == v), metrics.nmi(columns["artist"].to_numpy()[lang == v], clusters[lang == v]))
                     for v in np.unique(lang)]
            out["artist_within_language"] = float(sum(w * x for w, x in parts) / len(lang))
    return out


# ----------------------------------------------------------------------------
# song level: the language belongs to the song (issue 8, section 3)
def song_means(x, song_index, n_songs):
    """(n_songs, d): the mean of each song's rows of x; song_index[i] is row i's song (0..n_songs-1)."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    sums = np.zeros((n_songs, x.shape[1]))
    np.add.at(sums, song_index, x)
    counts = np.bincount(song_index, minlength=n_songs).astype(np.float64)
    return (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)
