"""Write results/REPORT.md from whatever metrics CSVs and figures exist so far.

    python report.py [--data-dir data] [--results-dir results]

Every analyze_*.py script calls write_report() at its end, so the report is always current.
"""
import argparse
import os
import shlex
from pathlib import Path

import numpy as np
import pandas as pd

import common
import diagnostics
import languages
import metrics
import tables


# ----------------------------------------------------------------------------
REPORT_NAME = "REPORT.md"  # written into --results-dir
# the technical report's Table 5.1 (one run, one seed), shown beside ours for comparison
PUBLISHED = {  # method: (silhouette, nmi, ari, purity)
    "pca_kmeans": (0.0500, 0.0030, 0.0078, 0.5743),
    "mfcc_kmeans": (0.0249, 0.0028, 0.0070, 0.5743),
    "vae": (0.0874, 0.0007, 0.0001, 0.5743),
    "autoencoder": (0.1324, 0.0000, -0.0001, 0.5743),
    "cvae": (0.0179, 0.0001, -0.0001, 0.5743),
    "beta_vae": (0.0190, 0.0000, -0.0002, 0.5743),
    "hybrid_cvae": (0.0957, 0.0333, -0.0099, 0.5743),
}
PUBLISHED_NAMES = {"mfcc_kmeans": "Spectral + K-Means"}  # what the report called our rows
# analyze_language.py's files read here are named once, in common.py (LANGUAGE_METRICS_FILE, PROBES_FILE, ...)
ANALYSIS_SCRIPTS = ["analyze_vae.py", "analyze_advanced.py", "analyze_hybrid.py", "analyze_language.py"]
TARGET_ACC = 0.70  # issue 5's aim for the best label-free, audio-only clustering
REPORT_SEGMENTS = 4954  # the size of the report's dataset
N_EXAMPLE_SONGS = 5  # per cluster: this many songs nearest its centre, and as many nearest the boundary
SONGS_FIGURE = "song_languages_confusion.png"  # clusters x known languages, songs (plots.song_confusion)
CONFIDENCE_BANDS = (0.0, 0.5, 0.8, 0.95, 1.0001)  # bands of song_languages.csv's confidence whose error rate is shown
# the declared methods on corpora they were not chosen on (README, "Validation"), quoted beside every run's numbers
VALIDATION_FILE = Path(__file__).resolve().parent / "validation.csv"
# the main table's blocks after the report's seven rows, in order, each with its caption
TABLE_BLOCKS = [
    ("report", "**The report's seven methods** (its Table 5.1, in its order). The CVAE and the Beta-VAE "
               "were given the language label, the multi-modal row title and artist: not unsupervised results."),
    ("added", "**Models the report lacks**, on the report's MFCC segments: K-Means on their latents, or "
              "VaDE's own clusters."),
    ("metadata", "**Multi-modal and metadata rows** the report lacks: title and artist, which can stand in for "
                 "the label (no artist sings in both languages)."),
    ("language:none", "**Language-finding methods made from this corpus alone** (`analyze_language.py`, "
                      "`pretrained` = `none`)."),
    ("language:self-supervised", "**Language-finding methods on a model trained elsewhere without labels** "
                                 "(`pretrained` = `self-supervised`)."),
    ("language:language-labels", "**Language-finding methods on a model trained elsewhere with language labels** "
                                 "(`pretrained` = `language-labels`: Whisper)."),
]
# figure captions by file-name suffix (see plots.py)
FIGURE_KINDS = {
    "_tsne_language": "t-SNE of the clustered features, coloured by true language",
    "_tsne_cluster": "the same t-SNE embedding, coloured by K-Means cluster",
    "_composition": "language composition of each K-Means cluster",
    "_confusion": "cluster x language confusion matrix after Hungarian matching",
    "_loss": "training losses per epoch",
    "_reconstructions": "original versus reconstructed MFCCs",
}


def commands_dir(results_dir):
    return Path(results_dir) / "commands"


def record_command(results_dir, script, data_dir=None, seed=None, extra=(), argv=None):
    """Keep the command line of this run (whether it came from the shell or a test) in
    <results_dir>/commands/<script>.txt; the report quotes it. argv: the arguments exactly as
    given (build_dataset.py, which passes its --data-dir as results_dir so the command stays with
    the dataset it made); else the equivalent analysis command from data_dir, seed and extra."""
    if argv is not None:
        words = ["python", Path(script).name, *map(str, argv)]
    else:
        words = ["python", Path(script).name, "--data-dir", str(data_dir), "--results-dir", str(results_dir),
                 *(["--seed", str(seed)] if seed is not None else []), *map(str, extra)]
    path = commands_dir(results_dir) / f"{Path(script).stem}.txt"
    with common.atomic_path(path) as tmp:
        tmp.write_text(shlex.join(words) + "\n")


def _recorded_data_dir(command):
    """The --data-dir of a recorded command line (default "data")."""
    words = shlex.split(command)
    for i, w in enumerate(words):
        if w == "--data-dir" and i + 1 < len(words):
            return words[i + 1]
        if w.startswith("--data-dir="):
            return w.split("=", 1)[1]
    return "data"


# ----------------------------------------------------------------------------
def _fmt(mean, std):
    """A table cell: '-' where nothing was scored (NaN), else mean or mean ± std."""
    if pd.isna(mean):
        return "-"
    return f"{mean:.4f}" if pd.isna(std) else f"{mean:.4f} ± {std:.4f}"


def label_summary(segments):
    """What the labels of segments.csv allow: {"kind": "none" | "partial" | "all", "segments",
    "labelled_segments", "songs", "labelled_songs", "languages", "sentence"}; the sentence is what
    REPORT.md says about them."""
    mask = metrics.labelled_mask(segments)
    songs = segments["song_id"].astype(str)
    langs = metrics.labelled_languages(segments)
    out = {"segments": len(segments), "labelled_segments": int(mask.sum()), "songs": songs.nunique(),
           "labelled_songs": songs[mask].nunique(), "languages": langs}
    if not mask.any():
        out["kind"] = "none"
        out["sentence"] = (f"**No labels were given**: no segment in `segments.csv` has a language. Every one of "
                           f"the {len(segments)} segments ({out['songs']} songs) is clustered into "
                           f"{metrics.N_LANGUAGES} clusters (`N_LANGUAGES` in `metrics.py`, `--n-clusters`) and none "
                           f"is scored: NMI, ARI, purity and Acc are empty (`-`); the silhouette needs no label. "
                           f"The clusters are named `cluster_0`, `cluster_1`, ...")
    elif not mask.all():
        out["kind"] = "partial"
        out["sentence"] = (f"**Partly labelled**: {out['labelled_songs']} of {out['songs']} songs "
                           f"({out['labelled_segments']} of {len(segments)} segments) have a language "
                           f"({', '.join(langs)}). Every segment is clustered; NMI, ARI, purity and Acc are "
                           f"computed on the {out['labelled_segments']} labelled segments only (`n_scored` in the "
                           f"metrics files, *scored* in the tables)" +
                           ("" if len(langs) >= 2 else ", and need two languages: with one they stay empty") + ".")
    else:
        out["kind"] = "all"
        out["sentence"] = (f"Every song is labelled ({out['songs']} songs, {len(segments)} segments; "
                           f"{', '.join(langs)}).")
    return out


def _dataset_section(data_dir):
    sp = common.segments_path(data_dir)
    if not sp.exists():
        return [f"No dataset found ({sp} is missing).", ""], None
    seg = pd.read_csv(sp, dtype={"segment_id": str, "song_id": str})
    if "language" not in seg:  # a dataset built without labels may lack the column
        seg["language"] = ""
    mask = metrics.labelled_mask(seg)
    seg["language"] = np.where(mask, seg["language"].astype(str), "")
    songs_file = common.songs_path(data_dir)
    songs = pd.read_csv(songs_file, dtype={"song_id": str}) if songs_file.exists() else None
    song_langs = (np.where(metrics.labelled_mask(songs["language"]), songs["language"].astype(str), "")
                  if songs is not None and "language" in songs else None)
    labels = label_summary(seg)
    lines = [labels["sentence"], "",
             "| Language | Songs acquired | Songs with segments | Segments | Share of segments |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for lang in labels["languages"] + ([""] if not mask.all() else []):
        s = seg[seg["language"] == lang]
        acquired = int((song_langs == lang).sum()) if song_langs is not None else "n/a"
        lines.append(f"| {lang or '*(unlabelled)*'} | {acquired} | {s['song_id'].nunique()} | {len(s)} | "
                     f"{len(s) / len(seg):.4f} |")
    total_songs = len(songs) if songs is not None else "n/a"
    lines.append(f"| **all** | {total_songs} | {seg['song_id'].nunique()} | {len(seg)} | 1.0000 |")
    demo = songs is not None and "source" in songs and songs["source"].astype(str).str.contains("demo_source").any()
    lines += ["", f"The report's table came from {REPORT_SEGMENTS:,} segments of 636 songs; this one from "
                  f"{len(seg):,}" + (" (the offline demo corpus's default size is smaller, so that `make demo` "
                                     "runs in minutes: `build_dataset.py --source demo --songs N` makes it larger)"
                                     if demo and len(seg) < REPORT_SEGMENTS else "") + "."]
    rate = metrics.majority_rate(seg["language"]) if len(labels["languages"]) >= 2 else float("nan")
    if not pd.isna(rate):
        known = seg.loc[mask, "language"]
        majority = known.value_counts().idxmax()
        among = "" if mask.all() else f" among the {int(mask.sum())} labelled segments"
        lines += ["",
                  f"**Majority-class rate: {rate:.4f}** ({majority}{among}). Any clustering in which every "
                  f"cluster's majority is {majority} has purity exactly {rate:.4f}, however it splits "
                  f"the segments; that is why the report found purity 0.5743 for every method "
                  f"(2,845 of its 4,954 segments were Bangla). `Acc` (accuracy after the best "
                  f"one-to-one matching of clusters to languages) does not have this blind spot."]
    fp = common.failures_path(data_dir)
    if fp.exists():
        n_fail = max(sum(1 for _ in open(fp)) - 1, 0)
        lines.append(f"\n{n_fail} songs or segments were skipped while building the dataset; "
                     f"each is a row in `{fp}`.")
    return lines + [""], (None if pd.isna(rate) else rate)


TABLE_HEADER = ["| Method | Silhouette ↑ | NMI ↑ | ARI ↑ | Purity ↑ | Acc ↑ | uses_labels | uses_metadata "
                "| n | scored |",
                "| --- | --- | --- | --- | --- | --- | --- | --- | ---: | ---: |"]


def _block_of(r):
    """Which block of the main table a summarized method belongs to (TABLE_BLOCKS' keys)."""
    if r["method"] in tables.REPORT_METHODS:
        return "report"
    if r.get("metrics_file") == common.LANGUAGE_METRICS_FILE:
        return f"language:{r.get('pretrained') if isinstance(r.get('pretrained'), str) else 'none'}"
    return "metadata" if _flag(r.get("uses_metadata")) else "added"


def _flag(value):
    """A uses_* cell as a bool: empty (None, NaN) is False."""
    return False if value is None or (not isinstance(value, str) and pd.isna(value)) else bool(value)


def _table_row(m, r, results_dir, all_labelled=True):
    name = tables.method_title(m) + ("" if m in tables.REPORT_METHODS else " *(added)*")
    if m in PUBLISHED_NAMES:
        name += f" (the report's \"{PUBLISHED_NAMES[m]}\")"
    if r is None:
        return f"| {name} | not run{_why_missing(m, results_dir, all_labelled)} | | | | | | | | |"
    cells = [_fmt(r[f"{k}_mean"], r[f"{k}_std"]) for k in metrics.METRIC_NAMES]
    scored = r.get("n_scored")
    scored = "-" if scored is None or pd.isna(scored) else str(int(scored))
    return (f"| {name} | " + " | ".join(cells) +
            f" | {'yes' if _flag(r['uses_labels']) else 'no'} | {'yes' if _flag(r.get('uses_metadata')) else 'no'}"
            f" | {int(r['n_segments'])} | {scored} |")


def _summary_line(by, results_dir):
    """One line: the declared language method (metrics/declared_methods.csv, analyze_language.py)
    against the best of the report's rows by Acc; [] without that file."""
    declared = _read_optional(common.metrics_dir(results_dir) / common.DECLARED_FILE)
    if declared is None or not {"role", "method"} <= set(declared.columns) or not len(declared):
        return []
    roles = list(declared["role"].astype(str))
    pick = declared.iloc[roles.index("language_method") if "language_method" in roles else 0]
    m = str(pick["method"])
    what = "declared language method" if pick["role"] == "language_method" else "declared label-free method"
    if m not in by:
        return [f"**In one line:** the {what}, `{m}`, is not in this run's metrics files.", ""]
    d = by[m]
    family = d.get("pretrained") if isinstance(d.get("pretrained"), str) else "none"
    head = f"**In one line:** the {what}, **{tables.method_title(m)}** (`{m}`, pretrained `{family}`)"
    theirs = [by[r] for r in tables.REPORT_METHODS if r in by and not pd.isna(by[r]["acc_mean"])]
    if pd.isna(d["acc_mean"]) or not theirs:
        return [f"{head}, clustered every segment; nothing is scored (no two languages among the labelled "
                f"segments), so it is not set against the report's rows.", ""]
    best = max(theirs, key=lambda r: r["acc_mean"])
    if best["method"] == m:
        return [f"{head}: Acc **{_fmt(d['acc_mean'], d['acc_std'])}**, itself the report's best row by Acc.", ""]
    gap = d["acc_mean"] - best["acc_mean"]
    saw = (" (it saw the label or the metadata)" if _flag(best["uses_labels"]) or _flag(best.get("uses_metadata"))
           else "")
    verdict = "level with it" if abs(gap) < 5e-5 else f"{'ahead' if gap > 0 else 'behind'} by {abs(gap):.4f}"
    return [f"{head}: Acc **{_fmt(d['acc_mean'], d['acc_std'])}** against {_fmt(best['acc_mean'], best['acc_std'])} "
            f"for the report's best row by Acc, {tables.method_title(best['method'])}{saw}: {verdict} "
            f"(each scored on its labelled segments).", ""]


def _table_section(rows, results_dir, all_labelled=True):
    summary = metrics.summarize(rows) if rows is not None else pd.DataFrame(columns=["method"])
    by = {r["method"]: r for _, r in summary.iterrows()}
    lines = _summary_line(by, results_dir)
    blocks = {key: [] for key, _ in TABLE_BLOCKS}
    for m in tables.REPORT_METHODS:
        blocks["report"].append(_table_row(m, by.get(m), results_dir, all_labelled))
    for m, r in by.items():
        key = _block_of(r)
        if key != "report":
            blocks.setdefault(key, []).append(_table_row(m, r, results_dir))
    captions = dict(TABLE_BLOCKS)
    for key, block in blocks.items():
        if not block:
            continue
        caption = captions.get(key, f"**Language-finding methods, `pretrained` = `{key.split(':', 1)[-1]}`**.")
        lines += [caption, ""] + TABLE_HEADER + block + [""]
    lines.append("Empty cells (`-`): nothing was scored (no labelled segments, or one language among them). "
                 "*n*: segments clustered (every segment); *scored*: the labelled segments NMI, ARI, purity "
                 "and Acc were computed on.")
    lines.append("")
    notes = []
    if rows is not None:
        km = rows[~rows["method"].str.startswith(common.OWN_CLUSTERS_PREFIX)]
        seeds = sorted(km["seed"].unique()) if len(km) else []
        n = int(rows["n_segments"].max())
        per_model = (km.groupby(["method", "model_seed"]).size().max() if "model_seed" in km and
                     km["model_seed"].notna().any() else km.groupby("method").size().max() if len(km) else 0)
        notes.append(f"Each cell: mean ± sample standard deviation over {per_model} "
                     f"K-Means runs (k = the number of languages when every segment is labelled, else "
                     f"`N_LANGUAGES` = {metrics.N_LANGUAGES} or `--n-clusters`; n_init {metrics.KMEANS_N_INIT}, "
                     f"seeds {', '.join(map(str, seeds))}); for a model trained with several seeds, over "
                     f"every model seed x K-Means seed (the spread over model seeds alone is in the next "
                     f"table). VaDE rows: over its runs, clusters from q(c|x), no K-Means.")
        note = metrics.silhouette_note(n)
        notes.append(note[0].upper() + note[1:] + "; always on the very features that were clustered.")
        feats = ["", "| Method | Features clustered |", "| --- | --- |"]
        feats += [f"| {tables.method_title(m)} | {by[m]['features']} |" for m in by]
        notes += feats
    return lines + notes + [""] + _model_seeds_section(summary)


def _model_seeds_section(summary):
    """Per model trained with several seeds: the spread of acc over model seeds; VaDE's collapses."""
    if "n_model_seeds" not in summary:
        return []
    s = summary[summary["n_model_seeds"].notna()]
    if not len(s):
        return []
    lines = ["### Spread over model seeds", "",
             "| Method | model seeds | Acc (all runs) | std of Acc over model seeds | collapsed runs |",
             "| --- | ---: | --- | ---: | ---: |"]
    for _, r in s.iterrows():
        col = r.get("collapsed_fraction")
        col = "" if col is None or pd.isna(col) else f"{col:.2f}"
        std = "-" if pd.isna(r["acc_model_std"]) else f"{r['acc_model_std']:.4f}"
        lines.append(f"| {tables.method_title(r['method'])} | {int(r['n_model_seeds'])} | "
                     f"{_fmt(r['acc_mean'], r['acc_std'])} | {std} | {col} |")
    lines += ["", "Model seeds are SEED, SEED + 1, ... (`N_MODEL_SEEDS` in `train_vae.py` and `train_cvae.py`, `VADE_RUNS` in "
              "`train_vade.py`); the first seed's files are `<model>.pth`/`.npy`, the others "
              "`<model>_seed<S>.*`. A VaDE run is *collapsed* when one mixture component takes more than "
              "`COLLAPSE_SHARE` of the segments (a label-free test); every run is kept in the mean, "
              "none is picked.", ""]
    return lines


def _input_set(method, probes):
    """The feature set whose probe is the ceiling of a method's input: <set>_kmeans and
    <set>_merge (the set it decides in) and vade_<set> name it; the models, the baselines and
    VaDE on MFCC all start from the report's MFCC."""
    for suffix in ("_kmeans", "_songs", "_merge"):
        if method.endswith(suffix) and method[: -len(suffix)] in probes:
            return method[: -len(suffix)]
    if common.vade_features(method) in probes:
        return common.vade_features(method)
    return common.REPORT_MFCC if common.REPORT_MFCC in probes else None


def _read_optional(path):
    try:
        return pd.read_csv(path) if path.exists() else None
    except Exception as e:
        print(f"note: {path} left out of the report ({e})")
        return None


def _language_section(rows, results_dir):
    """Where the language is: every number here is read from the metrics CSVs of this run."""
    if rows is None:
        return []
    mdir = common.metrics_dir(results_dir)
    probe_df = _read_optional(mdir / common.PROBES_FILE)
    conf = _read_optional(mdir / common.CONFOUNDS_FILE)
    declared = _read_optional(mdir / common.DECLARED_FILE)
    probes = {} if probe_df is None else {r["features"]: r for _, r in probe_df.iterrows()}
    rows = rows.copy()
    rows["pretrained"] = rows["pretrained"].fillna("none") if "pretrained" in rows else "none"
    for col in ("song_acc", "uses_metadata"):  # absent when only the model stages have run
        if col not in rows:
            rows[col] = False if col == "uses_metadata" else float("nan")
    free = rows[~rows["uses_labels"].astype(bool) & ~rows["uses_metadata"].fillna(False).astype(bool)]
    if not len(free):
        return []
    lines = ["## Finding the language", "",
             "Computed from this run's metrics files (`metrics/declared_methods.csv`, `metrics/language_probes.csv`, "
             "`metrics/confounds.csv` and the tables above), not written by hand. *Label-free, audio-only*: neither "
             "the language label nor title or artist went into the method. Each method's `pretrained` family says "
             "what it rests on: `none` (made from this corpus alone: the report's question, *from unlabeled audio "
             "features*), `self-supervised` (trained elsewhere without labels), `language-labels` (trained "
             "elsewhere with language labels: Whisper).", ""]
    lines += _declared_lines(declared)
    lines += _validation_lines(declared)
    scored_free = free[free["acc"].notna()]
    if not len(scored_free):
        lines += ["No segment has a language label: no method is scored. The answer per song is "
                  "`song_languages.csv` (see *The clusters, song by song*).", ""]
        return lines
    lines += _family_lines(scored_free, rows)
    none_family = scored_free[scored_free["pretrained"] == "none"]
    if not len(none_family):  # the language path alone (build_features.py --sets language): no `none` method ran
        return lines
    summary = metrics.summarize(none_family).sort_values("acc_mean", ascending=False, kind="stable")
    lines += _best_method_lines(summary, rows, probes, conf)
    lines.append("")
    return lines + _probes_lines(probe_df)


def _validation_lines(declared):
    """This run's declared methods beside their scores on the validation corpora (VALIDATION_FILE,
    shipped with the project: corpus, kind, method, score, date, command), so a demo result is
    never read as a real one."""
    try:
        val = pd.read_csv(VALIDATION_FILE, dtype=str, keep_default_na=False)
    except Exception as e:
        print(f"note: {VALIDATION_FILE} left out of the report ({type(e).__name__})")
        return []
    methods = list(declared["method"]) if declared is not None and len(declared) else []
    val = val[val["method"].isin(methods)]
    if not len(val):
        return []
    lines = [f"**The same declared methods on the validation corpora** (`{VALIDATION_FILE.name}`, shipped with "
             "the project, each row with the command that made it). The demo is synthesized by this project: a "
             "method can learn its voices instead of the language, so only the corpora it was not made or "
             "tuned on say how it does on your songs:", "",
             "| method | corpus | kind | languages (songs) | k found / true | song_acc | clusters named right | date |",
             "| --- | --- | --- | --- | ---: | ---: | ---: | --- |"]
    for _, v in val.iterrows():
        lines.append(f"| `{v['method']}` | {v['corpus']} | {v['kind']} | {v['languages']} | {v['k_found']} / "
                     f"{v['k_true']} | {v['song_acc']} | {v['named_right'] or '-'} | {v['date']} |")
    lines.append("")
    return lines


def _languages_section(results_dir):
    """'How many languages, and which': the count the declared method found (language_count.csv, its
    chart), each cluster's name (language_clusters.csv) and, on labelled songs, how often the answer is
    wrong in each confidence band. [] without those files."""
    mdir = common.metrics_dir(results_dir)
    count = _read_optional(mdir / common.LANGUAGE_COUNT_FILE)
    names = _read_optional(mdir / common.LANGUAGE_CLUSTERS_FILE)
    if count is None and names is None:
        return []
    lines = ["## How many languages, and which", ""]
    if count is not None and len(count):
        k = int(count["k"].iloc[0])
        need = int(count["needed"].iloc[0])
        named = count[pd.to_numeric(count["cluster"], errors="coerce") >= 0]  # the languages that are clusters
        n_unnamed = k - (int(named["cluster"].max()) + 1 if len(named) else 0)
        lines += [f"**{k} language{'s' if k != 1 else ''}**, found without labels (`N_LANGUAGES = \"auto\"` in "
                  f"`analyze_language.py`; `languages.py`): a song *names* its top language when Whisper gives that "
                  f"at least {languages.PRESENT_POSTERIOR:.0%} of its pooled posterior; a language is present when at "
                  f"least {need} songs name it ({languages.MIN_LANGUAGE_SONGS} songs and "
                  f"{languages.MIN_LANGUAGE_SHARE:.0%} of them); two present languages whose songs each give the "
                  f"other {languages.MERGE_CONFUSION:.0%} of their posterior are one (Whisper cannot keep them "
                  f"apart here); when {languages.UNNAMED_SHARE:.0%} or more of the songs name none, they are "
                  f"clustered apart on their posterior profiles (with the languages named only weakly). Clusters: "
                  + (", ".join(f"{r['name']} (`{r['code']}`, {int(r['songs'])} songs name it)" for _, r in named.iterrows())
                     or "no language Whisper names")
                  + (f", and {n_unnamed} cluster{'s' if n_unnamed > 1 else ''} of songs Whisper names no language"
                     if n_unnamed > 0 else "") + ".", ""]
        fig = common.figures_dir(results_dir) / common.LANGUAGE_COUNT_FIGURE
        if fig.exists():
            cap = "Songs naming each language, against the count a language needs (the criterion over candidate k)"
            lines += [f"![{cap}](figures/{fig.name})", f"*{cap}* (`figures/{fig.name}`)", ""]
    if names is not None and len(names):
        lines += ["Each cluster's name: a user's labels where its songs have some (they override Whisper), else "
                  "Whisper's language ID pooled over its songs, when the top language holds at least "
                  f"{languages.NAME_MIN_POSTERIOR:.0%} and leads the next by {languages.NAME_MIN_MARGIN:.2f}; "
                  "otherwise the name says it is uncertain.", "",
                  "| cluster | ISO code | language | named by | songs | Whisper's top (posterior, lead) |",
                  "| --- | --- | --- | --- | ---: | --- |"]
        for _, r in names.astype(object).fillna("").iterrows():
            top = (f"`{r['whisper_language']}` ({float(r['top_posterior']):.2f}, {float(r['margin']):.2f})"
                   if r["whisper_language"] != "" else
                   (f"none ({float(r['top_posterior']):.2f}, {float(r['margin']):.2f})" if r["top_posterior"] != "" else "-"))
            lines.append(f"| `{_md(r['cluster'])}` | {r['cluster_language'] or '-'} | "
                         f"{r['cluster_language_name'] or '-'} | {r['named_by']} | {int(r['n_songs'])} | {top} |")
        lines.append("")
    lines += _confidence_lines(results_dir)
    return lines


def _confidence_lines(results_dir):
    """On labelled songs: the error rate of song_languages.csv in each confidence band (a song is wrong
    when its cluster's best one-to-one language is not its label)."""
    try:
        songs = pd.read_csv(Path(results_dir) / common.SONG_LANGUAGES_FILE, dtype={"song_id": str, "cluster": str})
    except Exception:
        return []
    labelled = metrics.labelled_mask(songs["language"])
    if labelled.sum() == 0 or songs.loc[labelled, "language"].nunique() < 2:
        return []
    t = songs[labelled].copy()
    match = metrics.matching(t["language"].astype(str), t["cluster"].astype(str))
    t["wrong"] = [match.get(c) != lang for c, lang in zip(t["cluster"].astype(str), t["language"].astype(str))]
    t["band"] = pd.cut(pd.to_numeric(t["confidence"], errors="coerce"), CONFIDENCE_BANDS, right=False,
                       include_lowest=True)
    lines = ["What `confidence` means, on the labelled songs: the share of songs whose cluster is not their "
             "language (the best one-to-one matching of clusters to languages), per confidence band. Listen to the "
             "low bands first.", "", "| confidence | songs | wrong | error rate |", "| --- | ---: | ---: | ---: |"]
    for band, g in t.groupby("band", observed=False):
        if len(g):
            lines.append(f"| [{band.left:.2f}, {min(band.right, 1.0):.2f}{']' if band.right >= 1 else ')'} | {len(g)} | "
                         f"{int(g['wrong'].sum())} | {g['wrong'].mean():.3f} |")
    lines.append("")
    return lines


def _declared_lines(declared):
    """The declared methods, chosen before this run and frozen (analyze_language.py's constants)."""
    lines = []
    if declared is not None and len(declared):
        lines.append("**The declared methods** (`LANGUAGE_METHOD` and `LABEL_FREE_METHOD` at the top of "
                     "`analyze_language.py`, chosen on the demo and on validation corpora, not on this run):")
        lines.append("")
        for _, d in declared.iterrows():
            role = {"language_method": "recommended for unlabelled songs (any family)",
                    "label_free_method": "best of the `none` family"}.get(d["role"], d["role"])
            if pd.isna(d["song_acc"]):
                lines.append(f"- {role}: {tables.method_title(d['method'])} (`{d['method']}`, `{d['pretrained']}`): "
                             f"no labelled songs, nothing scored.")
                continue
            boot = ("" if pd.isna(d["song_acc_boot_lo"]) else
                    f"; 95 % interval over artists resampled: {d['song_acc_boot_lo']:.3f} to {d['song_acc_boot_hi']:.3f}")
            lines.append(f"- {role}: **{tables.method_title(d['method'])}** (`{d['method']}`, `{d['pretrained']}`): "
                         f"song_acc **{_fmt(d['song_acc'], d['song_acc_std'])}** over {int(d['n_seeds'])} runs "
                         f"({d.get('spread_over') if isinstance(d.get('spread_over'), str) else 'PCA and K-Means seeds'})"
                         f"{boot}; segment Acc "
                         f"{_fmt(d['acc'], d['acc_std'])}; scored on {int(d['n_scored'])} labelled segments.")
        lines.append("")
    return lines


def _family_lines(scored_free, rows):
    """The best of each family, side by side (chosen with the labels), and Whisper's reference row."""
    by = (scored_free.groupby(["pretrained", "method"], sort=False)[["acc", "song_acc"]].agg(["mean", "std"]))
    by.columns = [f"{a}_{b}" for a, b in by.columns]
    by = by.reset_index()
    lines = ["The best method of each family by `Acc` (chosen with the labels, so the best of many and a "
             "little flattered):", "", "| family | method | Acc | song_acc |", "| --- | --- | ---: | ---: |"]
    for fam in ("none", "self-supervised", "language-labels"):
        g = by[by["pretrained"] == fam].sort_values("acc_mean", ascending=False, kind="stable")
        if len(g):
            b = g.iloc[0]
            lines.append(f"| `{fam}` | {tables.method_title(b['method'])} (`{b['method']}`) | "
                         f"{_fmt(b['acc_mean'], b['acc_std'])} | {_fmt(b['song_acc_mean'], b['song_acc_std'])} |")
    ref = rows[rows["method"] == "whisper_lid_reference"]
    if len(ref):
        lines += ["", f"Reference, not a clustering: Whisper's own language ID told the corpus's languages "
                  f"(`whisper_lid_reference`): Acc {ref['acc'].mean():.4f}, song_acc {ref['song_acc'].mean():.4f}. "
                  "On voices unlike its training data it may name a third language; K-Means on its log "
                  "posteriors over all its languages needs no such hint."]
    lines.append("")
    return lines


def _best_method_lines(summary, rows, probes, conf):
    """The best label-free, audio-only method (summary: the `none` family, best first): its runner-up,
    its probe, the report's best row, the bar it is held to, and what its clusters follow."""
    lines = []
    best = summary.iloc[0]
    spread = ("one run" if pd.isna(best["acc_std"])
              else f"± {best['acc_std']:.4f} over {int(best['n_seeds'])} runs")
    if "acc_model_std" in best and not pd.isna(best.get("acc_model_std")):
        spread += f"; std over its {int(best['n_model_seeds'])} model seeds {best['acc_model_std']:.4f}"
    lines.append(f"- **Best label-free, audio-only method by `Acc` (chosen with the labels): "
                 f"{tables.method_title(best['method'])}** "
                 f"(`{best['method']}`): Acc {best['acc_mean']:.4f} ({spread}), NMI {best['nmi_mean']:.4f}.")
    if len(summary) > 1:
        second = summary.iloc[1]
        lines.append(f"- It was picked by `Acc`, which reads the labels, among {len(summary)} label-free methods, "
                     f"so its score is the best of many and flatters it a little; the runner-up is "
                     f"{tables.method_title(second['method'])} (Acc {_fmt(second['acc_mean'], second['acc_std'])}).")
    src = _input_set(best["method"], probes)
    if src is not None and src in probes:
        p = probes[src]
        lines.append(f"- The supervised probe on `{src}` (the representation it decides in; it reads the labels): "
                     f"{p['probe_acc']:.4f} with folds grouped by song, **{p['probe_acc_artist']:.4f} with held-out "
                     f"singers**" + (f" (permutation baseline {p['probe_acc_artist_permuted']:.4f})"
                                     if "probe_acc_artist_permuted" in p and not pd.isna(p["probe_acc_artist_permuted"])
                                     else "") + ". Not a ceiling: a label-free method can beat it.")
    # the report's seven methods, those that saw the label or the metadata included
    theirs = rows[rows["method"].isin(tables.REPORT_METHODS)]
    report_all = (metrics.summarize(theirs).sort_values("acc_mean", ascending=False, kind="stable")
                  if len(theirs) else theirs)
    if len(report_all):
        r = report_all.iloc[0]
        margin = best["acc_mean"] - r["acc_mean"]
        own = 0.0 if pd.isna(best["acc_std"]) else best["acc_std"]
        verdict = "more" if margin > own else "**not** more"
        saw = " (it saw the label or the metadata)" if r["uses_labels"] or r.get("uses_metadata", False) else ""
        lines.append(f"- The best of the report's methods is {tables.method_title(r['method'])}{saw} "
                     f"(Acc {_fmt(r['acc_mean'], r['acc_std'])}): the best label-free method is ahead by "
                     f"{margin:.4f}, {verdict} than its own seed spread ({own:.4f}).")
    report_free = summary[summary["method"].isin(tables.REPORT_METHODS)]
    aim = "reached" if best["acc_mean"] >= TARGET_ACC else "**not** reached"
    lines.append(f"- The project's bar for a useful label-free clustering, Acc >= {TARGET_ACC:.2f} "
                 f"(`TARGET_ACC` in `report.py`): {aim} *on this corpus*. A method chosen on one corpus can "
                 f"learn its voices rather than its language: the validation table above says how the declared "
                 f"methods fare on corpora they were not chosen on.")
    conf = conf.set_index("method") if conf is not None else None

    def follows(method):
        """The attributes a method's clusters follow most, besides the language (confound NMI)."""
        c = conf.loc[method].drop(labels=["n_seeds", "language"], errors="ignore").astype(float)
        return ", ".join(f"{k} {v:.2f}" for k, v in c.sort_values(ascending=False).head(4).items())

    if conf is not None and best["method"] in conf.index and "language" in conf.columns:
        lines.append(f"- What its clusters follow (NMI of its clusters with each attribute; language "
                     f"{float(conf.loc[best['method'], 'language']):.2f}): {follows(best['method'])}. "
                     f"`artist_within_language` near 0 means it does not split singers inside a language.")
        if len(report_free) and report_free.iloc[0]["method"] in conf.index:
            r = report_free.iloc[0]["method"]
            lines.append(f"- For comparison, {tables.method_title(r)}'s clusters follow: {follows(r)}.")
    return lines


def _probes_lines(probe_df):
    """The probe table: how much language each representation carries; [] without probes."""
    lines = []
    if probe_df is not None and len(probe_df) and "probe_acc" in probe_df:
        perm = "probe_acc_artist_permuted" in probe_df
        lines += ["How much language each representation carries: the supervised probe (standardize, logistic "
                  f"regression; folds grouped by song, or by singer with {diagnostics.PROBE_REPEATS} repeated "
                  "grouped splits: *held-out singers*). It reads the labels; with few singers it is noisy and "
                  "biased low, so it is no ceiling" + ("; the permutation baseline is the same probe with the "
                                                        "languages shuffled between singers" if perm else "") + ".", "",
                  "| Representation | family | dims | probe_acc (by song) | held-out singers |"
                  + (" permuted |" if perm else ""),
                  "| --- | --- | ---: | ---: | ---: |" + (" ---: |" if perm else "")]
        for _, p in probe_df.sort_values("probe_acc_artist", ascending=False).iterrows():
            lines.append(f"| `{p['features']}`: {p['description']} | `{p.get('pretrained', 'none')}` | {int(p['dim'])} | "
                         f"{p['probe_acc']:.4f} | {p['probe_acc_artist']:.4f} |"
                         + (f" {p['probe_acc_artist_permuted']:.4f} |" if perm else ""))
        lines += ["", "The same as a chart: `figures/language_probes.png`; the confound heat-map "
                  "(`figures/confounds_heatmap.png`) gives every method's NMI against each attribute. Both "
                  "are under Figures.", ""]
    return lines


def _md(text):
    """A CSV cell as markdown table text: empty for NaN, pipes escaped."""
    return "" if text is None or (not isinstance(text, str) and pd.isna(text)) else str(text).replace("|", "\\|")


def _song_rows(g):
    lines = ["| # | title | artist | confidence |", "| ---: | --- | --- | ---: |"]
    for i, (_, r) in enumerate(g.iterrows(), 1):
        lines.append(f"| {i} | {_md(r['title']) or _md(r['song_id'])} | {_md(r['artist'])} | {r['confidence']:.3f} |")
    return lines


def _songs_section(results_dir):
    """'The clusters, song by song': per cluster of results/song_languages.csv its size, the songs
    nearest its centre and nearest its boundary (by confidence), and, where songs are labelled,
    clusters against known languages (a table and a seaborn heat-map). [] without the file."""
    path = Path(results_dir) / common.SONG_LANGUAGES_FILE
    if not path.exists():
        return []
    lines = ["## The clusters, song by song", ""]
    try:
        songs = pd.read_csv(path, dtype={"song_id": str, "cluster": str, "title": str, "artist": str})
    except Exception as e:
        return lines + [f"`{common.SONG_LANGUAGES_FILE}` is unreadable ({type(e).__name__}); re-run `python analyze_language.py`.", ""]
    missing = [c for c in common.SONG_LANGUAGE_COLUMNS if c not in songs.columns]
    if missing or not len(songs):
        return lines + [f"`{common.SONG_LANGUAGES_FILE}` " + (f"lacks the columns {missing}" if missing else "has no songs")
                        + "; re-run `python analyze_language.py`.", ""]
    songs["confidence"] = pd.to_numeric(songs["confidence"], errors="coerce")
    labelled = metrics.labelled_mask(songs["language"])
    songs["language"] = np.where(labelled, songs["language"].astype(str), "")
    lines += [f"One row per song in `{common.SONG_LANGUAGES_FILE}` (`{', '.join(common.SONG_LANGUAGE_COLUMNS)}`): the "
              f"declared language method's answer for each song. `confidence` (in [0, 1], label-free) says how "
              f"firmly the song sits in its cluster: the songs with the highest are nearest the cluster's centre, "
              f"those with the lowest nearest the boundary. To learn what a cluster is, listen to its first "
              f"{N_EXAMPLE_SONGS} songs; to judge where it ends, its last {N_EXAMPLE_SONGS}. "
              + ("No song is labelled, so the clusters are only numbered." if not labelled.any() else
                 f"{int(labelled.sum())} of {len(songs)} songs are labelled; a cluster is named after the majority "
                 f"of its labelled songs.") + " A cluster without labelled songs is named by Whisper (above).", ""]
    sizes = songs["cluster"].value_counts()
    for cluster in sorted(sizes.index, key=lambda c: (-sizes[c], c)):
        g = songs[songs["cluster"] == cluster].sort_values(["confidence", "song_id"], ascending=[False, True],
                                                          kind="stable", na_position="last")
        known = g.loc[metrics.labelled_mask(g["language"]), "language"]
        comp = ("" if not len(known) else
                "; labelled: " + ", ".join(f"{n} {lang}" for lang, n in known.value_counts().items())
                + f" (majority share {known.value_counts().iloc[0] / len(known):.2f})")
        centre = g.head(N_EXAMPLE_SONGS)
        boundary = g.iloc[len(centre):].tail(N_EXAMPLE_SONGS).iloc[::-1]  # lowest first, none listed twice
        lines += [f"### Cluster `{cluster}`", "",
                  f"{len(g)} songs ({len(g) / len(songs):.0%} of all), mean confidence "
                  f"{g['confidence'].mean():.3f}{comp}.", "",
                  "Nearest the centre (highest confidence):", ""] + _song_rows(centre) + [""]
        if len(boundary):
            lines += ["Nearest the boundary (lowest confidence):", ""] + _song_rows(boundary) + [""]
        else:
            lines += [f"(All {len(g)} songs are listed above; none is left for the boundary list.)", ""]
    fig = common.figures_dir(results_dir) / SONGS_FIGURE
    if labelled.any():
        table = pd.crosstab(songs.loc[labelled, "cluster"], songs.loc[labelled, "language"])
        unknown = songs[~labelled]["cluster"].value_counts()
        lines += ["### Clusters against the known languages", "",
                  f"Songs per cluster and known language ({int(labelled.sum())} labelled songs; the last column "
                  f"counts the unlabelled songs of each cluster):", "",
                  "| cluster | " + " | ".join(table.columns) + " | unlabelled |",
                  "| --- | " + " | ".join("---:" for _ in table.columns) + " | ---: |"]
        for cluster in sorted(sizes.index, key=lambda c: (-sizes[c], c)):
            counts = [int(table.loc[cluster, c]) if cluster in table.index else 0 for c in table.columns]
            lines.append(f"| `{cluster}` | " + " | ".join(map(str, counts)) + f" | {int(unknown.get(cluster, 0))} |")
        lines.append("")
        try:
            import plots
            if plots.song_confusion(songs, fig) is not None:
                cap = "Songs per cluster and known language (labelled songs only)"
                lines += [f"![{cap}](figures/{SONGS_FIGURE})", f"*{cap}* (`figures/{SONGS_FIGURE}`)", ""]
        except Exception as e:  # a figure never stops the report
            print(f"note: {fig} not drawn ({type(e).__name__}: {e})")
    elif fig.exists():  # an earlier, labelled run's heat-map describes other songs
        fig.unlink()
    return lines


def _why_missing(method, results_dir, all_labelled=True):
    model = method[len("hybrid_"):] if method.startswith("hybrid_") else method
    if model in common.CONDITIONAL_MODELS and not all_labelled:
        return f": {model} is given the language of every segment, and some have none"
    if model in common.MODEL_NAMES and not common.latents_path(results_dir, model).exists():
        return f" ({common.latents_path(results_dir, model).name} missing)"
    return ""


def _published_section():
    lines = ["| Method (report's name) | Silhouette | NMI | ARI | Purity |", "| --- | --- | --- | --- | --- |"]
    for m, vals in PUBLISHED.items():
        name = PUBLISHED_NAMES.get(m, tables.method_title(m))
        lines.append(f"| {name} | " + " | ".join(f"{v:.4f}" for v in vals) + " |")
    return lines + [""]


FIXES = [
    "**Purity is reported beside the majority-class rate, and `Acc` is added.** The report read its "
    "constant purity of 0.5743 as a bug; it is the majority-class rate, which purity returns whenever "
    "both clusters have the same majority language. `Acc` (Hungarian matching) shows what purity cannot.",
    "**K-Means on raw MFCC uses all 17,200 values** (40 x 430) of every segment. The report's code used "
    "only the first 1,000 of the 17,200 flattened values and called the "
    "row \"Spectral + K-Means\" although no spectral clustering was involved.",
    "**Every K-Means result is a mean ± std over several seeds** instead of one run, so differences "
    "smaller than the spread are visible as such.",
    "**Silhouette is computed on the very features that were clustered** (for the multi-modal rows: "
    "the fused, standardized blocks).",
    "**The table says which methods saw the answer.** The CVAE and Beta-VAE are conditioned on the "
    "language label (`uses_labels`); the multi-modal rows use title and artist, which can stand in for "
    "the label because no artist sings in both languages (`uses_metadata`). Their scores are not "
    "unsupervised results.",
    "**Every number can be recomputed**: the cluster assignment behind each row is in "
    "`clusters/<method>.csv` (`segment_id, seed, cluster`, one row per segment per K-Means seed).",
]


def _figures_section(results_dir, methods):
    fig_dir = common.figures_dir(results_dir)
    # SONGS_FIGURE is embedded in its own section ("The clusters, song by song")
    pngs = sorted(p.name for p in fig_dir.glob("*.png") if p.name != SONGS_FIGURE) if fig_dir.exists() else []
    if not pngs:
        return ["No figures yet.", ""]
    lines, used = [], set()

    def embed(name, caption):
        used.add(name)
        lines.extend([f"![{caption}](figures/{name})", f"*{caption}* (`figures/{name}`)", ""])

    lines.append("### Comparison and training")
    lines.append("")
    for name, cap in [("methods_comparison.png", "Every method on every metric (mean ± std over seeds)"),
                      ("all_losses.png", "Training losses of every model"),
                      ("language_probes.png", "How much language each representation carries: the "
                                              "supervised probe, folds grouped by song and by artist"),
                      ("confounds_heatmap.png", "What each method's clusters follow: NMI against every "
                                                "segment attribute")]:
        if name in pngs:
            embed(name, cap)
    for m in common.MODEL_NAMES + [m for m in methods if m not in common.MODEL_NAMES]:
        for kind in ["_loss", "_reconstructions"]:
            if f"{m}{kind}.png" in pngs:
                embed(f"{m}{kind}.png", f"{m}: {FIGURE_KINDS[kind]}")
    prefixes = list(methods) + sorted({_prefix(p) for p in pngs} - set(methods) - {None})
    for m in prefixes:
        names = [f"{m}{k}.png" for k in ["_tsne_language", "_tsne_cluster", "_composition", "_confusion"]
                 if f"{m}{k}.png" in pngs and f"{m}{k}.png" not in used]
        if names:
            lines += [f"### {tables.method_title(m)}", ""]
            for n in names:
                embed(n, f"{tables.method_title(m)}: {FIGURE_KINDS[n[len(m):-4]]}")
    rest = [p for p in pngs if p not in used]
    if rest:
        lines += ["### Other figures", ""]
        for n in rest:
            embed(n, n[:-4].replace("_", " "))
    return lines


def _prefix(png):
    for kind in FIGURE_KINDS:
        if png.endswith(kind + ".png"):
            return png[: -len(kind) - 4]
    return None


def _same_dir(a, b):
    return os.path.normpath(os.path.abspath(str(a))) == os.path.normpath(os.path.abspath(str(b)))


def _build_command(data_dir):
    """build_dataset.py's command as it ran (<data_dir>/commands/build_dataset.txt), or None."""
    p = commands_dir(data_dir) / "build_dataset.txt"
    if not p.exists():
        return None
    cmd = p.read_text().strip()
    return cmd if cmd and _same_dir(_recorded_data_dir(cmd), data_dir) else None


def _commands_section(data_dir, results_dir):
    d = f" --data-dir {shlex.quote(str(data_dir))} --results-dir {shlex.quote(str(results_dir))}"
    built = _build_command(data_dir)
    lines = ["The pipeline, stage by stage, on this report's data:", "", "```",
             built or f"python build_dataset.py --source demo --data-dir {shlex.quote(str(data_dir))}"
                      "  # not recorded: the demo corpus's command",
             f"python build_features.py --data-dir {shlex.quote(str(data_dir))}",
             f"python train_vae.py{d}", f"python train_cvae.py --model all{d}"]
    vade = _read_optional(common.metrics_dir(results_dir) / "vade_metrics.csv")
    vade_methods = list(dict.fromkeys(vade["method"])) if vade is not None else ["vade"]
    for m in vade_methods:  # the VaDE runs behind the table, each feature set once
        feats = common.vade_features(m)
        lines.append(f"python train_vade.py{d}" + (f" --features {shlex.quote(feats)}" if feats != "mfcc" else ""))
    recorded = []
    for script in ANALYSIS_SCRIPTS:
        p = commands_dir(results_dir) / f"{Path(script).stem}.txt"
        lines.append(p.read_text().strip() if p.exists() else f"python {script}{d}")  # not run yet
        recorded.append(p.exists())
    lines += [f"python report.py{d}", "```", ""]
    if built:
        lines += ["The first line is the command that built this dataset, as it was typed (recorded in "
                  f"`{commands_dir(data_dir) / 'build_dataset.txt'}`).", ""]
    if any(recorded):
        lines += ["The analysis lines are the commands of the runs behind this report (with their seeds).", ""]
    for model in common.MODEL_NAMES:
        lp = common.losses_path(results_dir, model)
        if lp.exists():
            n = len(pd.read_csv(lp))
            lines.append(f"- `{model}` trained for {n} epoch{'' if n == 1 else 's'} (`{lp}`)")
    return lines + [""]


def write_report(data_dir, results_dir):
    """Build results/REPORT.md from the files present; returns its path."""
    rows = tables.read_metrics(results_dir)
    dataset, rate = _dataset_section(data_dir)
    methods = list(rows["method"].unique()) if rows is not None else []
    out = ["# Clustering songs by sung language: results", "",
           "Generated by `report.py` from the files in this folder; the method follows the technical "
           "report *Language-Based Music Clustering Using Variational Autoencoders*, with its errors fixed "
           "(see below).", "", "## The dataset in numbers", ""]
    out += dataset
    out += ["## Results (the report's Table 5.1, reproduced)", ""]
    sp = common.segments_path(data_dir)
    seg = pd.read_csv(sp, dtype=str) if sp.exists() else None
    all_labelled = seg is None or ("language" in seg and metrics.labelled_mask(seg).all())
    out += _table_section(rows, results_dir, all_labelled)
    if rate is not None and rows is not None:
        out += [f"Purity beside the majority-class rate ({rate:.4f}): a purity equal to it means every "
                f"cluster's majority is the same language.", ""]
    out += ["### As published in the report (one run, one seed)", ""]
    out += _published_section()
    out += _language_section(rows, results_dir)
    out += _languages_section(results_dir)
    out += _songs_section(results_dir)
    out += ["## What was fixed relative to the report", ""]
    out += [f"- {f}" for f in FIXES] + [""]
    out += ["## Figures", ""]
    out += _figures_section(results_dir, methods)
    out += ["## Commands that produced this report", ""]
    out += _commands_section(data_dir, results_dir)
    path = Path(results_dir) / REPORT_NAME
    with common.atomic_path(path) as tmp:
        tmp.write_text("\n".join(out).rstrip() + "\n")
    return path


def main():
    parser = common.add_dir_args(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    args = parser.parse_args()
    path = write_report(args.data_dir, args.results_dir)
    print(f"report: {path}")


if __name__ == "__main__":
    common.run_main(main)
