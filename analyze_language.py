"""Find the language: how much of it each representation carries, whether clustering finds it,
and what the clusters follow instead (issue 5, sections 1 and 2).

    python analyze_language.py [--data-dir data] [--results-dir results] [--seed 42] [--sets fg_vtln_bow]
    python analyze_language.py --sets language       # only what the declared language method reads (fast)

Run after build_dataset.py and build_features.py. Feature sets: the report's representation
(data/features/mfcc.npy flattened, called report_mfcc here) and every data/features/<name>.npy
that build_features.py wrote. For each:
  probe_acc, probe_acc_artist  the supervised ceiling (diagnostics.py): standardize + logistic
                   regression, folds grouped by song, then by artist (the honest one)
  <set>_kmeans     standardize, PCA to CLUSTER_PCA_DIMS, K-Means (k = number of languages) over
                   metrics.N_KMEANS_SEEDS seeds: silhouette, nmi, ari, purity, acc, and per song
                   (majority vote of its segments) song_acc, song_nmi
  whisper_named    the declared LANGUAGE_METHOD (languages.py): how many languages and which from
                   Whisper's posteriors pooled per song, every song placed among them by Whisper's
                   language ID restricted to them and a model of this corpus's encoder states
  <profile>_merge  for each (first stage, profile) pair in MERGES: many K-Means clusters of the
                   first-stage set (segments / OVER_SEGMENTS_PER_CLUSTER of them: a singer's few
                   songs each; fg_bow, which tells singers apart), then merged into one cluster
                   per language by K-Means on their mean profile in a language-sensitive set
                   (fg_vtln_bow: codeword distributions with the singer's voice normalized away),
                   each first-stage cluster weighted by its size
Writes results/metrics/language_metrics.csv (common.METRIC_COLUMNS + probe_acc,
probe_acc_artist, song_acc, song_nmi, uses_metadata), results/metrics/language_probes.csv,
results/clusters/<method>.csv (segment_id, seed, cluster), results/metrics/confounds.csv (NMI of
every method's clusters, this script's and any other results/clusters/*.csv, against the
artist, the segment's position in its song, the VTLN warp and every extra songs.csv column) and
results/figures/confounds_heatmap.png; figures: language_probes.png (every set's probe), the
per-method t-SNE, composition and confusion figures of the best method and of report_mfcc_kmeans,
and methods_comparison.png redrawn with these rows. Nothing but the scores and the probe reads the labels.
"""
import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

import common
import diagnostics
import languages
import metrics
import whisper_features
from common import PipelineError

# ----------------------------------------------------------------------------
# the methods this project declares (issue 8, section 4): chosen on the demo, a demo made another
# way and a corpus of real voices (README, "Finding the language"), then frozen
LANGUAGE_METHOD = "whisper_named"  # recommended for a library, any family: Whisper says which languages, songs placed among them (languages.py)
LABEL_FREE_METHOD = "fg_vtln_bow_merge"  # the best of the `none` family (nothing trained elsewhere): singer clusters merged by VTLN codeword profiles
# how many clusters every method here finds: "auto" = the number of languages languages.py finds in
# Whisper's posteriors (label-free; without whisper_lang, metrics.n_clusters: 2, or the labels' count
# when every song has one); an integer forces it, as --n-clusters does
N_LANGUAGES = "auto"
NAMED_METHOD = "whisper_named"  # the method name of languages.named_clusters in the tables
PROBES = True  # the supervised probe of every set (reads the labels; research: most of the time on labelled
# corpora); --sets language (the language path) and --no-probes leave it out
SEED = 42  # first K-Means seed (the next metrics.N_KMEANS_SEEDS - 1 follow) and PCA seed
N_BOOTSTRAP = 1000  # bootstrap resamples of the artists for the declared methods' interval
# log posteriors share one unit: standardizing them would give a language nobody sings (noise at
# ~1e-8) the weight of the two that are sung; below the floor a posterior says only "not this one"
LOG_POSTERIOR_SETS = ("whisper_lang",)
# one floor for the windows build_features pools (a segment Whisper did not run on holds its song's
# pooled row) and for this analysis: two values would make those rows disagree with the ones that ran
POSTERIOR_FLOOR = whisper_features.POOL_FLOOR  # 1e-4, set in whisper_features.py
CLUSTER_PCA_DIMS = 32  # every set is standardized, then reduced to this many dims for clustering
# ----------------------------------------------------------------------------
# many clusters, then merged into one per language
MERGES = (("fg_bow", "fg_vtln_bow"), ("fg_bow", "fg_vtln_bigram"))  # (first-stage set, profile set)
OVER_SEGMENTS_PER_CLUSTER = 8  # first stage k = segments / this
# ----------------------------------------------------------------------------
# the files report.py reads are named once, in common.py: LANGUAGE_METRICS_FILE, PROBES_FILE, CONFOUNDS_FILE,
# DECLARED_FILE, SONG_LANGUAGES_FILE and its SONG_LANGUAGE_COLUMNS, REPORT_MFCC (the report's MFCC as a set)
HEATMAP_FILE = "confounds_heatmap.png"  # in results/figures/
PROBES_FIGURE = "language_probes.png"  # in results/figures/
EXTRA_COLUMNS = ["probe_acc", "probe_acc_artist", "song_acc", "song_nmi", "uses_metadata", "pretrained", "n_scored"]
DECLARED_COLUMNS = ["role", "method", "pretrained", "song_acc", "song_acc_std", "acc", "acc_std", "n_seeds",
                    "spread_over", "song_acc_boot_lo", "song_acc_boot_hi", "n_scored"]
# where a feature set was trained (issue 8, section 2): none / self-supervised / language-labels
PRETRAINED_BY_PREFIX = {"whisper_": "language-labels"}  # every other set is made from this corpus alone
REFERENCE_METHOD = "whisper_lid_reference"  # Whisper's own answer among the corpus's languages: not a clustering

def read_sidecar(path):
    """The .json build_features.py wrote beside a feature set (config, hash, source, vtln, kind, order,
    description), or {} when there is none or it is unreadable."""
    try:
        meta = json.loads(Path(path).with_suffix(".json").read_text())
    except Exception:
        return {}
    return meta if isinstance(meta, dict) else {}


def describe(name, dim, sidecar=None):
    """Human description of a feature set: the one build_features.py wrote into its .json."""
    if name == common.REPORT_MFCC:
        return f"the report's MFCC (40 x 430, z-scored per segment), flattened ({dim:,}-d)"
    words = (sidecar or {}).get("description")
    return f"{words} ({dim:,}-d)" if words else f"data/features/{name}.npy ({dim:,}-d)"


def discover_sets(data_dir, n, wanted=None):
    """[(name, path)]: the report's MFCC first, then build_features.py's sets in its order (the
    `order` in each .json), then any other set by name."""
    feat_dir = common.features_dir(data_dir)
    found = sorted(p.stem for p in feat_dir.glob("*.npy") if p.stem != "mfcc")
    order = {f: read_sidecar(feat_dir / f"{f}.npy").get("order") for f in found}
    ranked = sorted((f for f in found if isinstance(order[f], int)), key=lambda f: (order[f], f))
    names = [common.REPORT_MFCC] + ranked + [f for f in found if f not in ranked]
    if wanted:
        missing = [w for w in wanted if w not in names]
        if missing:
            raise PipelineError(f"feature sets {missing} not in {feat_dir}: run `python build_features.py "
                                f"--data-dir {data_dir} --sets {','.join(missing)}`")
        names = [x for x in names if x in wanted]
    out = []
    for name in names:
        path = common.mfcc_path(data_dir) if name == common.REPORT_MFCC else feat_dir / f"{name}.npy"
        try:
            shape = np.load(path, mmap_mode="r").shape
        except Exception as e:
            print(f"skipped {name}: {path} is unreadable ({e}); re-run build_features.py")
            continue
        if shape[0] != n:
            print(f"skipped {name}: {path} has {shape[0]} rows but segments.csv has {n}; "
                  f"re-run `python build_features.py --data-dir {data_dir}`")
            continue
        out.append((name, path))
    return out


def pretrained(name):
    """The family of a feature set or method: which outside training it rests on."""
    for prefix, family in PRETRAINED_BY_PREFIX.items():
        if name.startswith(prefix):
            return family
    return "none"


def is_labelled(languages):
    lang = pd.Series(languages)
    return (lang.notna() & (lang.astype(str).str.strip() != "") & (lang.astype(str) != "nan")).to_numpy()


def scored(z, labels, mask, clusters, distances=None, seed=0, silhouette=None):
    """Every metric of one clustering; the label metrics on the labelled segments only (empty when none)."""
    m = {"silhouette": metrics.silhouette(z, clusters, distances, seed) if silhouette is None else silhouette}
    if mask.sum() == 0 or len(np.unique(labels[mask])) < 1:
        m.update({k: np.nan for k in ("nmi", "ari", "purity", "acc")})
    else:
        full = metrics.score(z[mask], labels[mask], clusters[mask], None, seed)
        m.update({k: full[k] for k in ("nmi", "ari", "purity", "acc")})
    return m


def cluster_view(x, seed, dims=CLUSTER_PCA_DIMS, standardize=True):
    """Standardize every column (unless the columns share a unit), then PCA: the space K-Means
    and the silhouette work in."""
    z = np.asarray(x, dtype=np.float32)
    z = StandardScaler().fit_transform(z) if standardize else z - z.mean(axis=0)
    k = min(dims, z.shape[0] - 1, z.shape[1])
    return PCA(n_components=k, svd_solver="randomized", random_state=seed).fit_transform(z).astype(np.float32)


def prepare(name, x, desc):
    """(x, desc, standardize) as a set is clustered: log posteriors floored and only centred."""
    if name in LOG_POSTERIOR_SETS:  # one unit (nats) in every column: no standardizing
        return np.maximum(x, np.log(POSTERIOR_FLOOR)), f"{desc}, floored at log {POSTERIOR_FLOOR:g}", False
    return x, desc, True


def majority_songs(assignments, segments):
    """{seed: (song ids, song clusters, confidence)} of a segment-level method: a song takes its
    segments' majority cluster; confidence = the share of its segments in that cluster."""
    song_ids = segments["song_id"].astype(str).to_numpy()
    songs, inverse = np.unique(song_ids, return_inverse=True)
    out = {}
    for s, clusters in assignments.items():
        counts = np.zeros((len(songs), int(np.max(clusters)) + 1))
        np.add.at(counts, (inverse, np.asarray(clusters, dtype=int)), 1)
        out[s] = (songs, counts.argmax(axis=1), counts.max(axis=1) / counts.sum(axis=1))
    return out


def method_sets(method):
    """The feature sets a language method is computed from."""
    if method == NAMED_METHOD:
        return list(languages.LANGUAGE_SETS)
    if method.endswith("_merge"):
        profile = method[:-len("_merge")]
        over = next((o for o, p in MERGES if p == profile), None)
        return [over, profile] if over else []
    for suffix in ("_kmeans", "_songs"):
        if method.endswith(suffix):
            return [method[:-len(suffix)]]
    return []


def method_rows(method, xs, segments, seed, k):
    """(rows, {seed: clusters}) of a _kmeans, _songs or _merge method on the arrays xs ({set:
    array}), computed as analyze() computes it: for the spread over other feature builds."""
    prepared = {n: prepare(n, x, n) for n, x in xs.items()}
    if method.endswith("_songs"):
        (x, desc, standardize), = prepared.values()
        return song_rows(x, segments, method, desc, seed, k, standardize)[:2]
    views = {n: cluster_view(x, seed, standardize=st) for n, (x, _, st) in prepared.items()}
    if method.endswith("_merge"):
        over, profile = method_sets(method)
        return merge_rows(views[over], views[profile], segments, method, "{k_over} first-stage clusters", seed, k)
    (z,) = views.values()
    return kmeans_rows(z, segments, method, method, seed, k)


def over_and_merge(z_over, z_profile, k_final, seed, per_cluster=OVER_SEGMENTS_PER_CLUSTER):
    """Many K-Means clusters of z_over, merged into k_final by (size-weighted) K-Means on their
    mean rows of z_profile. Returns (cluster per row, first-stage k)."""
    k = min(max(k_final + 1, len(z_over) // per_cluster), len(z_over))
    over = KMeans(n_clusters=k, n_init=metrics.KMEANS_N_INIT, random_state=seed).fit_predict(z_over)
    used = np.unique(over)
    profiles = np.stack([z_profile[over == c].mean(axis=0) for c in used])
    sizes = np.array([np.sum(over == c) for c in used])
    merged = KMeans(n_clusters=k_final, n_init=metrics.KMEANS_N_INIT,
                    random_state=seed).fit(profiles, sample_weight=sizes).labels_
    return merged[np.searchsorted(used, over)], k


def with_song_scores(rows, assignments, segments, probe, family):
    """Add song_acc / song_nmi per seed (labelled songs only), the probe of the clustered set,
    uses_metadata, pretrained and n_scored."""
    mask = is_labelled(segments["language"])
    song = [diagnostics.song_scores(assignments[s][mask], segments["song_id"][mask], segments["language"][mask])
            if mask.any() else {"song_acc": np.nan, "song_nmi": np.nan} for s in rows["seed"]]
    rows["probe_acc"] = probe.get("probe_acc", np.nan)
    rows["probe_acc_artist"] = probe.get("probe_acc_artist", np.nan)
    rows["song_acc"] = [r["song_acc"] for r in song]
    rows["song_nmi"] = [r["song_nmi"] for r in song]
    rows["uses_metadata"] = False
    rows["pretrained"] = family
    rows["n_scored"] = int(mask.sum())
    return rows[[c for c in common.METRIC_COLUMNS if c in rows.columns] +
                [c for c in rows.columns if c not in common.METRIC_COLUMNS]]


def whisper_reference(data_dir, segments):
    """Whisper's own language ID among the corpus's labelled languages (song level: summed log
    posteriors): (clusters, description), or None when it cannot be asked. A reference, not a
    clustering method: it must be told which languages to choose between."""
    feat = common.features_dir(data_dir)
    mask = is_labelled(segments["language"])
    langs = sorted(segments["language"][mask].astype(str).unique())
    try:
        codes = json.loads((feat / "whisper_lang.json").read_text())["languages"]
        logp = np.load(feat / "whisper_lang.npy")
    except Exception:
        return None
    iso = {languages.iso_code(c): c for c in codes}  # Whisper's own codes by their ISO tag (jw: jv)
    want = [iso.get(languages.label_code(lang), lang) for lang in langs]
    if len(langs) < 2 or len(logp) != len(segments) or any(c not in codes for c in want):
        return None
    cols = logp[:, [codes.index(c) for c in want]]
    song = segments["song_id"].astype(str).to_numpy()
    summed = pd.DataFrame(cols).groupby(song).transform("sum").to_numpy()
    return summed.argmax(axis=1), f"Whisper's language ID, argmax over {', '.join(want)} of the song's summed log posteriors"


def artist_bootstrap(song_table, n_boot=N_BOOTSTRAP, seed=SEED):
    """(2.5 %, 97.5 %) of song-level acc when the labelled artists are resampled with replacement."""
    t = song_table[is_labelled(song_table["language"])]
    artists = t["artist"].astype(str).unique()
    if len(artists) < 2 or t["language"].nunique() < 2:
        return np.nan, np.nan
    artist, labels = t["artist"].astype(str).to_numpy(), t["language"].astype(str).to_numpy()
    clusters = t["cluster_id"].to_numpy()
    rows_of = {a: np.flatnonzero(artist == a) for a in artists}  # arrays, not frames: 1,000 draws in numpy
    rng = np.random.default_rng(seed)
    accs = []
    for _ in range(n_boot):
        pick = np.concatenate([rows_of[a] for a in rng.choice(artists, len(artists))])
        accs.append(metrics.acc(labels[pick], clusters[pick]))
    return float(np.percentile(accs, 2.5)), float(np.percentile(accs, 97.5))


def song_languages(per_song, segments, songs, whisper=None):
    """The answer per song from one seed of a song-level method: common.SONG_LANGUAGE_COLUMNS + cluster_id,
    and the clusters' table (languages.name_clusters: a cluster is named by its labelled songs' majority,
    else by Whisper's posterior pooled over its songs, or called uncertain). whisper: (song ids, song
    posteriors, codes) from song_whisper, or None (no Whisper: cluster_<id>)."""
    ids, clusters, conf = per_song
    first = segments.drop_duplicates("song_id").set_index(segments.drop_duplicates("song_id")["song_id"].astype(str))
    t = pd.DataFrame({"song_id": ids, "cluster_id": clusters, "confidence": np.round(conf, 4)})
    for col in ("title", "artist", "language"):
        t[col] = t["song_id"].map(first[col]).fillna("").astype(str).replace("nan", "")
    posteriors = codes = None
    if whisper is not None:
        w_ids, w_post, codes = whisper
        posteriors = w_post[pd.Index(w_ids).get_indexer(t["song_id"])]
    names = languages.name_clusters(t["cluster_id"].to_numpy(), posteriors, codes, t["language"].to_numpy())
    for col in ("cluster", "cluster_language", "cluster_language_name"):
        t[col] = t["cluster_id"].map(names[col])
    return t, names


def merge_rows(z_over, z_profile, segments, method, desc, seed, k):
    """Metrics rows (one per seed) of over_and_merge; the silhouette is taken on z_profile,
    the space of the final decision."""
    labels, mask = segments["language"].astype(str).to_numpy(), is_labelled(segments["language"])
    distances = metrics.distance_matrix(z_profile)
    rows, assignments = [], {}
    for s in metrics.kmeans_seeds(seed):
        clusters, k_over = over_and_merge(z_over, z_profile, k, s)
        assignments[s] = clusters
        rows.append({"method": method, "features": desc.format(k_over=k_over), "uses_labels": False,
                     **scored(z_profile, labels, mask, clusters, distances, seed),
                     "n_segments": len(labels), "seed": s})
    return pd.DataFrame(rows), assignments


def kmeans_rows(z, segments, method, desc, seed, k):
    """Segment-level K-Means over the seeds: (rows, {seed: clusters})."""
    labels, mask = segments["language"].astype(str).to_numpy(), is_labelled(segments["language"])
    distances = metrics.distance_matrix(z)
    rows, assignments = [], {}
    for s in metrics.kmeans_seeds(seed):
        clusters = metrics.kmeans(z, k, s)
        assignments[s] = clusters
        rows.append({"method": method, "features": desc, "uses_labels": False,
                     **scored(z, labels, mask, clusters, distances, seed), "n_segments": len(labels), "seed": s})
    return pd.DataFrame(rows), assignments


def song_rows(x, segments, method, desc, seed, k, standardize=True):
    """Song-level clustering (issue 8, section 3): each song's segment rows averaged, standardized,
    PCA, K-Means on songs; every segment inherits its song's cluster. Each seed re-draws the PCA
    and the K-Means, so the spread covers both. Returns (rows, {seed: segment clusters},
    {seed: (song ids, song clusters, confidence)}): confidence = (d2 - d1) / (d2 + d1) from the
    distances d1, d2 of a song to its own and the nearest other centre, in [0, 1]."""
    song_ids = segments["song_id"].astype(str).to_numpy()
    songs, inverse = np.unique(song_ids, return_inverse=True)
    xs = diagnostics.song_means(x, inverse, len(songs))
    labels, mask = segments["language"].astype(str).to_numpy(), is_labelled(segments["language"])
    rows, assignments, per_song = [], {}, {}
    for s in metrics.kmeans_seeds(seed):
        z = cluster_view(xs, s, standardize=standardize)
        km = KMeans(n_clusters=min(k, len(songs)), n_init=metrics.KMEANS_N_INIT, random_state=s).fit(z)
        d = np.sort(km.transform(z), axis=1)
        conf = (d[:, 1] - d[:, 0]) / np.maximum(d[:, 1] + d[:, 0], 1e-12) if d.shape[1] > 1 else np.ones(len(z))
        clusters = km.labels_[inverse]
        assignments[s], per_song[s] = clusters, (songs, km.labels_, conf)
        sil = metrics.silhouette(z, km.labels_) if len(np.unique(km.labels_)) > 1 else np.nan
        m = scored(z[inverse], labels, mask, clusters, seed=seed, silhouette=sil)
        rows.append({"method": method, "features": f"{desc}, averaged per song ({len(songs)} songs), "
                     f"{'standardized' if standardize else 'centred'}, PCA {z.shape[1]}", "uses_labels": False, **m,
                     "n_segments": len(labels), "seed": s})
    return pd.DataFrame(rows), assignments, per_song


def load_cluster_files(results_dir, segments, skip):
    """{method: {seed: clusters}} from every results/clusters/*.csv matching these segments."""
    out = {}
    d = common.clusters_path(results_dir, "x").parent
    ids = segments["segment_id"].astype(str)
    for p in sorted(d.glob("*.csv")) if d.exists() else []:
        if p.stem in skip:
            continue
        try:
            df = pd.read_csv(p, dtype={"segment_id": str})
            if "seed" not in df.columns:
                df["seed"] = 0
            by = {}
            for s, g in df.groupby("seed"):
                g = g.set_index("segment_id")["cluster"]
                if len(g) != len(ids) or not ids.isin(g.index).all():
                    raise ValueError("its segments differ from segments.csv")
                by[int(s)] = g.loc[ids].to_numpy()
            out[p.stem] = by
        except Exception as e:
            print(f"note: {p} left out of the confounds ({e})")
    return out


def confound_table(assignments_by_method, columns):
    rows = []
    for method, by_seed in assignments_by_method.items():
        per_seed = pd.DataFrame([diagnostics.confound_nmi(c, columns) for c in by_seed.values()])
        rows.append({"method": method, "n_seeds": len(by_seed), **per_seed.mean().to_dict()})
    return pd.DataFrame(rows)


@dataclass
class Findings:
    """What analyze() has computed so far; record() is the one place that adds to it."""
    segments: pd.DataFrame  # segments.csv, language "" where unlabelled
    results_dir: object
    rows: list = field(default_factory=list)  # one DataFrame of metrics rows per method
    probes: dict = field(default_factory=dict)  # set -> its row of language_probes.csv
    assignments: dict = field(default_factory=dict)  # method -> {seed: cluster per segment}
    views: dict = field(default_factory=dict)  # set -> the standardized PCA view it is clustered in
    song_answers: dict = field(default_factory=dict)  # method -> {seed: (song ids, clusters, confidence)}
    decided_in: dict = field(default_factory=dict)  # method -> (view its clusters were decided in, description)


def record(found, method, rows, assignments, probe, t, view, family):
    """Add one method's rows and clusters to `found`, write its clusters file and language_metrics.csv
    (rewritten after every method: an interrupted run keeps what it finished), print its line."""
    segments = found.segments
    rows = with_song_scores(rows, assignments, segments, probe, family)
    found.rows.append(rows)
    found.assignments[method] = assignments
    found.decided_in[method] = (view, rows["features"].iloc[0])
    common.write_csv(common.clusters_path(found.results_dir, method),
                     metrics.clusters_frame(segments["segment_id"], assignments))
    common.write_csv(common.metrics_dir(found.results_dir) / common.LANGUAGE_METRICS_FILE,
                     pd.concat(found.rows, ignore_index=True))
    m = rows[["acc", "nmi", "song_acc"]].mean()
    print(f"{method:<24s} acc {m['acc']:.4f} ± {rows['acc'].std(ddof=1):.4f}  nmi {m['nmi']:.4f}  "
          f"song_acc {m['song_acc']:.4f}  probe {probe.get('probe_acc', np.nan):.4f} / held-out singers "
          f"{probe.get('probe_acc_artist', np.nan):.4f}  [{family}]  ({time.time() - t:.1f} s)")


def read_corpus(data_dir):
    """(segments with "" for a missing language, labelled mask, songs.csv or None), after the checks
    and the opening line."""
    _, segments = common.load_features(data_dir)
    mask = is_labelled(segments["language"])
    segments["language"] = segments["language"].where(mask, "").astype(str)
    n, labels = len(segments), segments["language"].to_numpy()
    songs_file = common.songs_path(data_dir)
    songs = pd.read_csv(songs_file, dtype={"song_id": str}) if songs_file.exists() else None
    print(f"{n} segments, {segments['song_id'].nunique()} songs, {segments['artist'].nunique()} artists; "
          + (f"{mask.sum()} segments labelled ({', '.join(sorted(set(labels[mask])))}), majority-class rate "
             f"{metrics.majority_rate(labels[mask]):.4f}" if mask.any() else "no labels: nothing is scored")
          + f". {metrics.silhouette_note(n)}")
    return segments, mask, songs


def song_whisper(data_dir, segments, expected):
    """Whisper per song, for the named method, the count of languages and the clusters' names:
    (song ids in sorted order, (songs, languages) mean floored log posteriors, their posteriors, the
    language codes, (songs, 512) mean encoder states or None), or None without a usable whisper_lang."""
    feat = common.features_dir(data_dir)
    path = feat / "whisper_lang.npy"
    if not path.exists() or not fingerprint_matches(path, expected, data_dir, quiet=True):
        return None
    codes = read_sidecar(path).get("languages")
    logp = np.load(path)
    if not codes or logp.shape != (len(segments), len(codes)):
        return None
    ids, inverse = np.unique(segments["song_id"].astype(str).to_numpy(), return_inverse=True)
    L = diagnostics.song_means(np.maximum(logp, np.log(POSTERIOR_FLOOR)), inverse, len(ids)).astype(np.float64)
    M = None
    mean_path = feat / "whisper_mean.npy"
    if mean_path.exists() and fingerprint_matches(mean_path, expected, data_dir, quiet=True):
        x = np.load(mean_path)
        M = diagnostics.song_means(x, inverse, len(ids)) if len(x) == len(segments) else None
    return ids, L, languages.softmax_rows(L), [str(c) for c in codes], M


def choose_k(segments, n_clusters, whisper, seed):
    """(k every method here finds, languages.named_clusters' answer when it chose k, or None): --n-clusters
    or an integer N_LANGUAGES forces it; "auto" takes the number of languages languages.py finds in
    Whisper's posteriors (at least 2 for the research methods; the named method keeps its own,
    1 included), else metrics.n_clusters."""
    forced = n_clusters if n_clusters is not None else (None if N_LANGUAGES == "auto" else int(N_LANGUAGES))
    if forced is not None:
        k, why, named = metrics.n_clusters(segments, forced), "forced", None
    elif whisper is not None:
        named = languages.named_clusters(whisper[1], whisper[3], None if whisper[4] is None else cluster_view(
            whisper[4], seed), seed=seed)
        k = max(2, named["k"])
        present = [named["table"].set_index("column").loc[g, "code"].tolist() for g in named["groups"]]
        why = (f"auto: {named['k']} language{'s' if named['k'] != 1 else ''} in Whisper's posteriors ("
               + ", ".join("/".join(p) for p in present)
               + (f", and {named['k'] - len(present)} that Whisper names on no song" if named["k"] > len(present) else "")
               + ")")
    else:
        k, named = metrics.n_clusters(segments), None
        why = ("no whisper_lang to count the languages in (`python build_features.py --sets language`): "
               + ("the labelled languages" if is_labelled(segments["language"]).all() else "metrics.N_LANGUAGES"))
    n_songs = segments["song_id"].nunique()
    if n_songs < k:  # the song-level methods cluster songs
        raise PipelineError(f"segments.csv holds {n_songs} songs, fewer than the {k} clusters asked for: add songs "
                            f"and rebuild, or lower --n-clusters")
    print(f"k = {k} clusters ({why})")
    return k, named


def write_language_count(named, results_dir):
    """language_count.csv (per language Whisper names: songs naming it, needed, present, and the
    clusters' count) and its chart, from the named method's choice of k."""
    import plots
    table = named["table"].copy()
    table["name"] = [languages.english_name(c) for c in table["code"]]
    table["cluster"] = -1
    for i, g in enumerate(named["groups"]):
        table.loc[table["column"].isin(g), "cluster"] = i
    table["k"] = named["k"]
    common.write_csv(common.metrics_dir(results_dir) / common.LANGUAGE_COUNT_FILE,
                     table.drop(columns="column"))
    return plots.language_count_chart(table, common.figures_dir(results_dir) / common.LANGUAGE_COUNT_FIGURE,
                                      named["k"], named["unnamed"], languages.UNNAMED_MIN_SILHOUETTE)


def analyze_named(found, whisper, seed, k_forced):
    """The declared method, whisper_named (languages.named_clusters), over the seeds (each re-draws the
    PCA of the encoder states and the K-Means of songs Whisper names no language): its rows."""
    ids, L, P, codes, M = whisper
    segments = found.segments
    t = time.time()
    inverse = pd.Index(ids).get_indexer(segments["song_id"].astype(str))
    labels, mask = segments["language"].to_numpy(), is_labelled(segments["language"])
    z = cluster_view(L, seed, standardize=False)  # the space the silhouette is taken in: the songs' profiles
    rows, assignments, per_song = [], {}, {}
    for s in metrics.kmeans_seeds(seed):
        out = languages.named_clusters(L, codes, None if M is None else cluster_view(M, s), k=k_forced, seed=s)
        assignments[s] = out["clusters"][inverse]
        per_song[s] = (ids, out["clusters"], out["confidence"])
        sil = metrics.silhouette(z, out["clusters"]) if len(np.unique(out["clusters"])) > 1 else np.nan
        rows.append({"method": NAMED_METHOD, "uses_labels": False,
                     "features": f"Whisper's posteriors pooled per song ({len(ids)} songs): {out['k']} languages "
                                 f"named on enough songs, songs placed by Whisper restricted to them"
                                 + (" and an encoder-state model" if M is not None else ""),
                     **scored(z[inverse], labels, mask, assignments[s], seed=seed, silhouette=sil),
                     "n_segments": len(segments), "seed": s})
    found.song_answers[NAMED_METHOD] = per_song
    probe = found.probes.get("whisper_lang", {})
    record(found, NAMED_METHOD, pd.DataFrame(rows), assignments, probe, t, "whisper_lang", "language-labels")


def analyze_set(found, name, path, mask, can_probe, seed, k):
    """One feature set: its probe (language_probes.csv), then <set>_kmeans and <set>_songs."""
    segments, n = found.segments, len(found.segments)
    t = time.time()
    x = np.asarray(np.load(path, mmap_mode="r"), dtype=np.float32).reshape(n, -1)
    if not np.isfinite(x).all():
        print(f"skipped {name}: {path} holds NaN or infinite values; rebuild it")
        return
    desc = describe(name, x.shape[1], read_sidecar(path))
    family = pretrained(name)
    probe = diagnostics.probe_scores(x[mask], segments[mask]) if can_probe else {}
    found.probes[name] = {"features": name, "description": desc, "dim": x.shape[1], "pretrained": family, **probe}
    common.write_csv(common.metrics_dir(found.results_dir) / common.PROBES_FILE,
                     pd.DataFrame(list(found.probes.values())))
    x, desc, standardize = prepare(name, x, desc)
    z = found.views[name] = cluster_view(x, seed, standardize=standardize)
    rows, assignments = kmeans_rows(z, segments, f"{name}_kmeans", f"{desc}, {'standardized' if standardize else 'centred'}, PCA {z.shape[1]}",
                                    seed, k)
    found.song_answers[f"{name}_kmeans"] = majority_songs(assignments, segments)
    record(found, f"{name}_kmeans", rows, assignments, probe, t, name, family)
    t = time.time()
    rows, assignments, per_song = song_rows(x, segments, f"{name}_songs", desc, seed, k, standardize)
    found.song_answers[f"{name}_songs"] = per_song
    record(found, f"{name}_songs", rows, assignments, probe, t, name, family)


def analyze_merges(found, seed, k):
    """The MERGES whose two sets were analyzed: many clusters first, then one per language."""
    for over, profile in MERGES:
        if over not in found.views or profile not in found.views:
            continue
        t = time.time()
        desc = (f"{{k_over}} K-Means clusters of {over} (standardized, PCA), merged by their mean "
                f"{profile} (standardized, PCA)")
        rows, assignments = merge_rows(found.views[over], found.views[profile], found.segments, f"{profile}_merge",
                                       desc, seed, k)
        found.song_answers[f"{profile}_merge"] = majority_songs(assignments, found.segments)
        record(found, f"{profile}_merge", rows, assignments, found.probes[profile], t, profile, "none")


def add_whisper_reference(found, data_dir, mask, seed):
    """Whisper's own language ID as a reference row: told the languages, so uses_labels."""
    ref = whisper_reference(data_dir, found.segments) if "whisper_lang" in found.views else None
    if ref is None:
        return
    clusters, desc = ref
    labels, n = found.segments["language"].to_numpy(), len(found.segments)
    row = pd.DataFrame([{"method": REFERENCE_METHOD, "features": desc, "uses_labels": True,
                         **scored(found.views["whisper_lang"], labels, mask, clusters, seed=seed),
                         "n_segments": n, "seed": seed}])
    record(found, REFERENCE_METHOD, row, {seed: clusters}, found.probes["whisper_lang"], time.time(), "whisper_lang",
           "language-labels")


def write_confounds(found, data_dir, songs, mask):
    """confounds.csv and its heat-map: what the clusters follow, ours and every other stage's cluster
    files found. Returns (the table indexed by method, the figure's path)."""
    segments, results_dir = found.segments, found.results_dir
    columns = diagnostics.confound_columns(segments, songs)
    for p in sorted(common.features_dir(data_dir).glob("vtln_*.csv")):
        a = pd.read_csv(p, dtype={"song_id": str}).set_index("song_id")["alpha"]
        warp = segments["song_id"].map(a)
        if warp.notna().all():
            columns[p.stem + "_alpha"] = diagnostics.binned(warp).to_numpy()
    if not mask.any():
        columns = columns.drop(columns=[c for c in ("language", "artist_within_language") if c in columns])
    others = load_cluster_files(results_dir, segments, skip=set(found.assignments))
    table = confound_table({**others, **found.assignments}, columns)
    common.write_csv(common.metrics_dir(results_dir) / common.CONFOUNDS_FILE, table.round(4))
    heat = table.set_index("method").drop(columns="n_seeds")
    fig = common.figures_dir(results_dir) / HEATMAP_FILE
    import plots
    plots.confounds_heatmap(heat, fig)
    return heat, fig


def best_and_figures(found, rows, heat, declared, mask, can_probe, seed):
    """Say which method is best by acc and what else its clusters follow; draw the probes chart, the
    figures of the best and declared methods and the report's representation, and the comparison
    chart. Returns the figures drawn (None where one was not)."""
    import plots
    segments, results_dir = found.segments, found.results_dir
    labels = segments["language"].to_numpy()
    summary = rows[~rows["uses_labels"]].groupby("method", sort=False)[["acc", "song_acc"]].mean()
    if not (mask.any() and summary["acc"].notna().any()):
        return []
    figs = []
    best = summary["acc"].idxmax()
    print(f"best clustering by acc (chosen with the labels): {best} (acc {summary.loc[best, 'acc']:.4f}, "
          f"song_acc {summary.loc[best, 'song_acc']:.4f})")
    if "language" in heat.columns:
        top = heat.loc[best].drop("language").sort_values(ascending=False)
        print(f"what {best}'s clusters follow besides language (NMI): "
              + ", ".join(f"{c} {v:.2f}" for c, v in top.head(4).items()))
    majority = metrics.majority_rate(labels[mask])
    if can_probe:
        figs.append(plots.probes_chart(pd.DataFrame(list(found.probes.values())),
                                       common.figures_dir(results_dir) / PROBES_FIGURE, majority))
    # figures: the best and the declared methods beside the report's representation
    for method in dict.fromkeys([best, *declared.values(), f"{common.REPORT_MFCC}_kmeans"]):
        if method in found.decided_in and method in found.assignments:
            view, desc = found.decided_in[method]
            # the figures show the labelled segments (all of them when every song is labelled)
            figs += plots.method_figures(method, found.views[view][mask], desc, segments[mask].reset_index(drop=True),
                                         {s: c[mask] for s, c in found.assignments[method].items()},
                                         seed, results_dir)
    figs.append(plots.comparison_from_results(results_dir, majority))
    return figs


def refresh_report(data_dir, results_dir, seed, sets):
    """Keep results/REPORT.md current, as every analysis stage does."""
    try:
        import report
        report.record_command(results_dir, __file__, data_dir, seed,
                              ["--sets", ",".join(sets)] if sets else ())
        report.write_report(data_dir, results_dir)
    except Exception as e:
        print(f"note: REPORT.md not refreshed ({e})")


@metrics.limited_threads  # as the other analysis stages: on a busy machine more threads only spin-wait
def analyze(data_dir, results_dir, seed=SEED, sets=None, n_clusters=None, probes=PROBES):
    """Every step, in order: the corpus, each feature set, the merges, Whisper's reference, the
    confounds, the declared methods, the figures, the report. Returns every metrics row."""
    t0 = time.time()
    common.seed_everything(seed)
    segments, mask, songs = read_corpus(data_dir)
    can_probe = probes and len(set(segments["language"][mask])) >= 2
    found = Findings(segments, results_dir)
    expected, _ = common.corpus_fingerprint(data_dir, segments)
    whisper = song_whisper(data_dir, segments, expected)
    k, named = choose_k(segments, n_clusters, whisper, seed)
    k_forced = None if named is not None else k
    figs = [write_language_count(named, results_dir)] if named is not None else []
    sets_found = discover_sets(data_dir, len(segments), sets)
    if len(sets_found) == 1 and not sets:
        print(f"note: only the report's MFCC found; the language feature sets (Whisper, REPET-SIM, VTLN, ...) "
              f"are made by `python build_features.py --data-dir {data_dir}`")
    for name, path in sets_found:
        if name == common.REPORT_MFCC or fingerprint_matches(path, expected, data_dir):
            analyze_set(found, name, path, mask, can_probe, seed, k)
    if whisper is not None and "whisper_lang" in found.views:
        analyze_named(found, whisper, seed, k_forced)
    analyze_merges(found, seed, k)
    if not found.rows:
        raise PipelineError(f"no feature set to analyze in {common.features_dir(data_dir)}")
    add_whisper_reference(found, data_dir, mask, seed)
    heat, fig = write_confounds(found, data_dir, songs, mask)
    rows = pd.concat(found.rows, ignore_index=True)
    declared = write_declared(rows, found.song_answers, segments, songs, seed, results_dir, data_dir, k, whisper)
    figs += [fig] + best_and_figures(found, rows, heat, declared, mask, can_probe, seed)
    mdir = common.metrics_dir(results_dir)
    print(f"metrics: {mdir / common.LANGUAGE_METRICS_FILE}, {mdir / common.PROBES_FILE}, {mdir / common.CONFOUNDS_FILE}, "
          f"{mdir / common.DECLARED_FILE}; {sum(f is not None for f in figs)} figures in "
          f"{common.figures_dir(results_dir)} ({time.time() - t0:.0f} s)")
    refresh_report(data_dir, results_dir, seed, sets)
    return rows


def fingerprint_matches(path, expected, data_dir, quiet=False):
    """A feature file made from other audio or other segments is refused (issue 10, section 2)."""
    try:
        cfg = json.loads(path.with_suffix(".json").read_text())["config"]
    except Exception:
        if quiet:
            return False
        print(f"skipped {path.stem}: {path.with_suffix('.json')} is missing or unreadable; "
              f"re-run `python build_features.py --data-dir {data_dir}`")
        return False
    for key in ("segments", "audio"):
        if cfg.get(key) != expected[key]:
            if quiet:
                return False
            what = "segments.csv" if key == "segments" else "the audio in data/audio"
            print(f"skipped {path.stem}: {path} was made from other {key} than {what} now holds; "
                  f"re-run `python build_features.py --data-dir {data_dir}`")
            return False
    return True


def other_builds(method, data_dir, segments, seed, k):
    """Rows of a method on every other build of its sets (build_features.py's SPREAD_SEEDS: the same
    sets with another codebook seed, in data/features/seeds/seed<k>/): [(build name, rows)]."""
    sets, out = method_sets(method), []
    root = common.features_dir(data_dir) / "seeds"
    if not sets or not root.exists():
        return out
    expected, _ = common.corpus_fingerprint(data_dir, segments)
    n = len(segments)
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        paths = {name: d / f"{name}.npy" for name in sets}
        if not all(p.exists() for p in paths.values()):
            continue
        if not all(fingerprint_matches(p, expected, data_dir) for p in paths.values()):
            continue
        try:
            xs = {name: np.asarray(np.load(p), dtype=np.float32).reshape(n, -1) for name, p in paths.items()}
        except Exception as e:
            print(f"note: {d} left out of the spread ({e})")
            continue
        rows, assignments = method_rows(method, xs, segments, seed, k)
        out.append((d.name, with_song_scores(rows, assignments, segments, {}, pretrained(method))))
    return out


def write_declared(rows, song_answers, segments, songs, seed, results_dir, data_dir=None, k=metrics.N_LANGUAGES,
                   whisper=None):
    """results/metrics/declared_methods.csv (role, method, spread over every seeded step: PCA and
    K-Means seeds, and the codebook seeds of build_features.py's SPREAD_SEEDS where the method has a
    codebook; an artist bootstrap) and results/song_languages.csv from LANGUAGE_METHOD. Returns
    {role: method} written."""
    declared = {}
    out = []
    for role, method in (("language_method", LANGUAGE_METHOD), ("label_free_method", LABEL_FREE_METHOD)):
        r = rows[rows["method"] == method]
        if r.empty:
            print(f"note: the declared {role} {method} was not computed (its feature set is missing: "
                  f"`python build_features.py`)")
            continue
        declared[role] = method
        builds = other_builds(method, data_dir, segments, seed, k) if data_dir is not None else []
        spread = pd.concat([r] + [b for _, b in builds], ignore_index=True)
        over = "PCA and K-Means seeds" + (f" x {1 + len(builds)} codebook seeds" if builds else "")
        per_seed = song_answers.get(method)
        lo = hi = np.nan
        if per_seed:
            t, _ = song_languages(per_seed[seed], segments, songs, whisper and whisper[:1] + whisper[2:4])
            lo, hi = artist_bootstrap(t, seed=seed)
        out.append({"role": role, "method": method, "pretrained": r["pretrained"].iloc[0],
                    "song_acc": spread["song_acc"].mean(), "song_acc_std": spread["song_acc"].std(ddof=1),
                    "acc": spread["acc"].mean(), "acc_std": spread["acc"].std(ddof=1), "n_seeds": len(spread),
                    "spread_over": over, "song_acc_boot_lo": lo, "song_acc_boot_hi": hi,
                    "n_scored": int(r["n_scored"].iloc[0])})
        print(f"declared {role}: {method} [{r['pretrained'].iloc[0]}] song_acc {spread['song_acc'].mean():.4f} ± "
              f"{spread['song_acc'].std(ddof=1):.4f} ({over}), artist bootstrap 95 % [{lo:.3f}, {hi:.3f}]")
    common.write_csv(common.metrics_dir(results_dir) / common.DECLARED_FILE, pd.DataFrame(out, columns=DECLARED_COLUMNS))
    answer = declared.get("language_method") or declared.get("label_free_method")
    if answer in song_answers:
        t, names = song_languages(song_answers[answer][seed], segments, songs, whisper and whisper[:1] + whisper[2:4])
        path = common.Path(results_dir) / common.SONG_LANGUAGES_FILE
        common.write_csv(path, t[common.SONG_LANGUAGE_COLUMNS].sort_values(["cluster", "confidence"], ascending=[True, False]))
        common.write_csv(common.metrics_dir(results_dir) / common.LANGUAGE_CLUSTERS_FILE,
                         names.reset_index().assign(method=answer))
        sizes = t["cluster"].value_counts().sort_index()
        print(f"answer per song ({answer}): {path} — " + ", ".join(f"{c}: {v} songs" for c, v in sizes.items()))
    return declared


def main():
    p = common.add_dir_args(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    p.add_argument("--seed", type=common.seed_value, default=SEED, help="first K-Means seed and PCA seed")
    p.add_argument("--sets", default="", help=f"comma-separated feature sets (default: {common.REPORT_MFCC} and "
                                              f"every data/features/<name>.npy); `language`: "
                                              f"{', '.join(languages.LANGUAGE_SETS)}, what LANGUAGE_METHOD reads")
    p.add_argument("--no-probes", action="store_true",
                   help="leave out the supervised probes (research diagnostics that read the labels)")
    p.add_argument("--n-clusters", type=int, default=None,
                   help=f"clusters to find (default N_LANGUAGES = {N_LANGUAGES!r}: the number of languages found in "
                        f"Whisper's posteriors)")
    args = p.parse_args()
    names = [s.strip() for s in args.sets.split(",") if s.strip()]
    sets = [x for s in names for x in (languages.LANGUAGE_SETS if s == "language" else [s])]
    probes = PROBES and not args.no_probes and "language" not in names  # the language path: no research probes
    analyze(args.data_dir, args.results_dir, args.seed, sets or None, args.n_clusters, probes)


if __name__ == "__main__":
    common.run_main(main)
