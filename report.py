"""Write results/REPORT.md from whatever metrics CSVs and figures exist so far.

    python report.py [--data-dir data] [--results-dir results]

Every analyze_*.py script calls write_report() at its end, so the report is always current.
"""
import argparse
import shlex
from pathlib import Path

import pandas as pd

import common
import diagnostics
import metrics
from models import vade_features

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
ANALYSIS_SCRIPTS = ["analyze_vae.py", "analyze_advanced.py", "analyze_hybrid.py", "analyze_language.py"]
# written by analyze_language.py (results/metrics/): the probe ceilings and what clusters follow
PROBES_FILE, CONFOUNDS_FILE = "language_probes.csv", "confounds.csv"
REPORT_INPUT = "report_mfcc"  # analyze_language.py's name for the report's representation
TARGET_ACC = 0.70  # issue 5's aim for the best label-free, audio-only clustering
REPORT_SEGMENTS = 4954  # the size of the report's dataset
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


def record_command(results_dir, script, data_dir, seed, extra=()):
    """Keep the command line equivalent to this analysis run (whether it came from the shell or
    a test); the report quotes it."""
    cmd = shlex.join(["python", Path(script).name, "--data-dir", str(data_dir), "--results-dir",
                      str(results_dir), "--seed", str(seed), *map(str, extra)])
    path = commands_dir(results_dir) / f"{Path(script).stem}.txt"
    with common.atomic_path(path) as tmp:
        tmp.write_text(cmd + "\n")


# ----------------------------------------------------------------------------
def _fmt(mean, std):
    if pd.isna(mean):
        return "n/a"
    return f"{mean:.4f}" if pd.isna(std) else f"{mean:.4f} ± {std:.4f}"


def _dataset_section(data_dir):
    sp = common.segments_path(data_dir)
    if not sp.exists():
        return [f"No dataset found ({sp} is missing).", ""], None
    seg = pd.read_csv(sp, dtype={"segment_id": str, "song_id": str})
    seg["language"] = seg["language"].astype(str)
    songs_file = common.songs_path(data_dir)
    songs = pd.read_csv(songs_file, dtype={"song_id": str}) if songs_file.exists() else None
    langs = sorted(seg["language"].unique())
    lines = ["| Language | Songs acquired | Songs with segments | Segments | Share of segments |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for lang in langs:
        s = seg[seg["language"] == lang]
        acquired = int((songs["language"].astype(str) == lang).sum()) if songs is not None else "n/a"
        lines.append(f"| {lang} | {acquired} | {s['song_id'].nunique()} | {len(s)} | {len(s) / len(seg):.4f} |")
    total_songs = len(songs) if songs is not None else "n/a"
    lines.append(f"| **all** | {total_songs} | {seg['song_id'].nunique()} | {len(seg)} | 1.0000 |")
    demo = songs is not None and "source" in songs and songs["source"].astype(str).str.contains("demo_source").any()
    lines += ["", f"The report's table came from {REPORT_SEGMENTS:,} segments of 636 songs; this one from "
                  f"{len(seg):,}" + (" (the offline demo corpus's default size is smaller, so that `make demo` "
                                     "runs in minutes: `build_dataset.py --source demo --songs N` makes it larger)"
                                     if demo and len(seg) < REPORT_SEGMENTS else "") + "."]
    rate = metrics.majority_rate(seg["language"]) if len(seg) else float("nan")
    majority = seg["language"].value_counts().idxmax() if len(seg) else "n/a"
    lines += ["",
              f"**Majority-class rate: {rate:.4f}** ({majority}). Any clustering in which every "
              f"cluster's majority is {majority} has purity exactly {rate:.4f}, however it splits "
              f"the segments; that is why the report found purity 0.5743 for every method "
              f"(2,845 of its 4,954 segments were Bangla). `Acc` (accuracy after the best "
              f"one-to-one matching of clusters to languages) does not have this blind spot."]
    fp = common.failures_path(data_dir)
    if fp.exists():
        n_fail = max(sum(1 for _ in open(fp)) - 1, 0)
        lines.append(f"\n{n_fail} songs or segments were skipped while building the dataset; "
                     f"each is a row in `{fp}`.")
    return lines + [""], rate


def _table_section(rows, results_dir):
    summary = metrics.summarize(rows) if rows is not None else pd.DataFrame(columns=["method"])
    by = {r["method"]: r for _, r in summary.iterrows()}
    header = ["| Method | Silhouette ↑ | NMI ↑ | ARI ↑ | Purity ↑ | Acc ↑ | uses_labels | uses_metadata | n |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | ---: |"]
    lines = list(header)
    extra = [m for m in by if m not in metrics.REPORT_METHODS]
    for m in metrics.REPORT_METHODS + extra:
        name = metrics.method_title(m) + ("" if m in metrics.REPORT_METHODS else " *(added)*")
        if m in PUBLISHED_NAMES:
            name += f" (the report's \"{PUBLISHED_NAMES[m]}\")"
        if m not in by:
            lines.append(f"| {name} | not run{_why_missing(m, results_dir)} | | | | | | | |")
            continue
        r = by[m]
        cells = [_fmt(r[f"{k}_mean"], r[f"{k}_std"]) for k in metrics.METRIC_NAMES]
        lines.append(f"| {name} | " + " | ".join(cells) +
                     f" | {'yes' if r['uses_labels'] else 'no'} | {'yes' if r.get('uses_metadata') else 'no'}"
                     f" | {int(r['n_segments'])} |")
    notes = []
    if rows is not None:
        km = rows[~rows["method"].str.startswith(metrics.OWN_CLUSTERS_PREFIX)]
        seeds = sorted(km["seed"].unique()) if len(km) else []
        n = int(rows["n_segments"].max())
        per_model = (km.groupby(["method", "model_seed"]).size().max() if "model_seed" in km and
                     km["model_seed"].notna().any() else km.groupby("method").size().max() if len(km) else 0)
        notes.append(f"Each cell: mean ± sample standard deviation over {per_model} "
                     f"K-Means runs (k = number of languages, n_init {metrics.KMEANS_N_INIT}, "
                     f"seeds {', '.join(map(str, seeds))}); for a model trained with several seeds, over "
                     f"every model seed x K-Means seed (the spread over model seeds alone is in the next "
                     f"table). VaDE rows: over its runs, clusters from q(c|x), no K-Means.")
        note = metrics.silhouette_note(n)
        notes.append(note[0].upper() + note[1:] + "; always on the very features that were clustered.")
        feats = ["", "| Method | Features clustered |", "| --- | --- |"]
        feats += [f"| {metrics.method_title(m)} | {by[m]['features']} |" for m in by]
        notes += feats
    return lines + [""] + notes + [""] + _model_seeds_section(summary)


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
        std = "n/a" if pd.isna(r["acc_model_std"]) else f"{r['acc_model_std']:.4f}"
        lines.append(f"| {metrics.method_title(r['method'])} | {int(r['n_model_seeds'])} | "
                     f"{_fmt(r['acc_mean'], r['acc_std'])} | {std} | {col} |")
    lines += ["", "Model seeds are SEED, SEED + 1, ... (`N_MODEL_SEEDS` in `train_vae.py`, `VADE_RUNS` in "
              "`train_vade.py`); the first seed's files are `<model>.pth`/`.npy`, the others "
              "`<model>_seed<S>.*`. A VaDE run is *collapsed* when one mixture component takes more than "
              "`COLLAPSE_SHARE` of the segments (a label-free test); every run is kept in the mean, "
              "none is picked.", ""]
    return lines


def _input_set(method, probes):
    """The feature set whose probe is the ceiling of a method's input: <set>_kmeans and
    <set>_merge (the set it decides in) and vade_<set> name it; the models, the baselines and
    VaDE on MFCC all start from the report's MFCC."""
    for suffix in ("_kmeans", "_merge"):
        if method.endswith(suffix) and method[: -len(suffix)] in probes:
            return method[: -len(suffix)]
    if vade_features(method) in probes:
        return vade_features(method)
    return REPORT_INPUT if REPORT_INPUT in probes else None


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
    probe_df = _read_optional(mdir / PROBES_FILE)
    conf = _read_optional(mdir / CONFOUNDS_FILE)
    probes = {} if probe_df is None else {r["features"]: r for _, r in probe_df.iterrows()}
    free = rows[~rows["uses_labels"] & ~rows["uses_metadata"]]
    if not len(free):
        return []
    summary = metrics.summarize(free).sort_values("acc_mean", ascending=False, kind="stable")
    best = summary.iloc[0]
    lines = ["## Finding the language", "",
             "Computed from this run's metrics files (`metrics/language_probes.csv`, `metrics/confounds.csv` "
             "and the tables above), not written by hand. *Label-free, audio-only*: neither the language "
             "label nor title or artist went into the method.", ""]
    spread = ("one run" if pd.isna(best["acc_std"])
              else f"± {best['acc_std']:.4f} over {int(best['n_seeds'])} runs")
    if "acc_model_std" in best and not pd.isna(best.get("acc_model_std")):
        spread += f"; std over its {int(best['n_model_seeds'])} model seeds {best['acc_model_std']:.4f}"
    lines.append(f"- **Best label-free, audio-only method by `Acc`: {metrics.method_title(best['method'])}** "
                 f"(`{best['method']}`): Acc {best['acc_mean']:.4f} ({spread}), NMI {best['nmi_mean']:.4f}.")
    if len(summary) > 1:
        second = summary.iloc[1]
        lines.append(f"- It was picked by `Acc`, which reads the labels, among {len(summary)} label-free methods, "
                     f"so its score is the best of many and flatters it a little; the runner-up is "
                     f"{metrics.method_title(second['method'])} (Acc {_fmt(second['acc_mean'], second['acc_std'])}).")
    src = _input_set(best["method"], probes)
    if src is not None:
        p = probes[src]
        lines.append(f"- Its probe ceiling (a supervised logistic regression on `{src}`, the representation "
                     f"it decides in): {p['probe_acc']:.4f} with folds grouped by song, "
                     f"**{p['probe_acc_artist']:.4f} grouped by artist** (no singer on both sides).")
    # the report's seven methods, those that saw the label or the metadata included
    theirs = rows[rows["method"].isin(metrics.REPORT_METHODS)]
    report_all = (metrics.summarize(theirs).sort_values("acc_mean", ascending=False, kind="stable")
                  if len(theirs) else theirs)
    if len(report_all):
        r = report_all.iloc[0]
        margin = best["acc_mean"] - r["acc_mean"]
        own = 0.0 if pd.isna(best["acc_std"]) else best["acc_std"]
        verdict = "more" if margin > own else "**not** more"
        saw = " (it saw the label or the metadata)" if r["uses_labels"] or r["uses_metadata"] else ""
        lines.append(f"- The best of the report's methods is {metrics.method_title(r['method'])}{saw} "
                     f"(Acc {_fmt(r['acc_mean'], r['acc_std'])}): the best label-free method is ahead by "
                     f"{margin:.4f}, {verdict} than its own seed spread ({own:.4f}).")
    report_free = summary[summary["method"].isin(metrics.REPORT_METHODS)]
    aim = "reached" if best["acc_mean"] >= TARGET_ACC else "**not** reached"
    lines.append(f"- The project's bar for a useful label-free clustering, Acc >= {TARGET_ACC:.2f} "
                 f"(`TARGET_ACC` in `report.py`): {aim}.")
    conf = conf.set_index("method") if conf is not None else None

    def follows(method):
        """The attributes a method's clusters follow most, besides the language (confound NMI)."""
        c = conf.loc[method].drop(labels=["n_seeds", "language"], errors="ignore").astype(float)
        return ", ".join(f"{k} {v:.2f}" for k, v in c.sort_values(ascending=False).head(4).items())

    if conf is not None and best["method"] in conf.index:
        lines.append(f"- What its clusters follow (NMI of its clusters with each attribute; language "
                     f"{float(conf.loc[best['method'], 'language']):.2f}): {follows(best['method'])}. "
                     f"`artist_within_language` near 0 means it does not split singers inside a language.")
        if len(report_free) and report_free.iloc[0]["method"] in conf.index:
            r = report_free.iloc[0]["method"]
            lines.append(f"- For comparison, {metrics.method_title(r)}'s clusters follow: {follows(r)}.")
    lines.append("")
    if probe_df is not None and len(probe_df):
        lines += ["How much language each representation carries (the supervised probe: standardize, "
                  f"logistic regression, {diagnostics.PROBE_FOLDS} folds grouped by song or by artist). "
                  "It reads the labels: it is the ceiling a label-free method aims at, not a method.", "",
                  "| Representation | dims | probe_acc (by song) | probe_acc_artist |", "| --- | ---: | ---: | ---: |"]
        for _, p in probe_df.sort_values("probe_acc_artist", ascending=False).iterrows():
            lines.append(f"| `{p['features']}`: {p['description']} | {int(p['dim'])} | "
                         f"{p['probe_acc']:.4f} | {p['probe_acc_artist']:.4f} |")
        lines += ["", "The same as a chart: `figures/language_probes.png`; the confound heat-map "
                  "(`figures/confounds_heatmap.png`) gives every method's NMI against each attribute. Both "
                  "are under Figures.", ""]
    return lines


def _why_missing(method, results_dir):
    model = method[len("hybrid_"):] if method.startswith("hybrid_") else method
    if model in common.MODEL_NAMES and not common.latents_path(results_dir, model).exists():
        return f" ({common.latents_path(results_dir, model).name} missing)"
    return ""


def _published_section():
    lines = ["| Method (report's name) | Silhouette | NMI | ARI | Purity |", "| --- | --- | --- | --- | --- |"]
    for m, vals in PUBLISHED.items():
        name = PUBLISHED_NAMES.get(m, metrics.method_title(m))
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
    pngs = sorted(p.name for p in fig_dir.glob("*.png")) if fig_dir.exists() else []
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
            lines += [f"### {metrics.method_title(m)}", ""]
            for n in names:
                embed(n, f"{metrics.method_title(m)}: {FIGURE_KINDS[n[len(m):-4]]}")
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


def _commands_section(data_dir, results_dir):
    d = f" --data-dir {shlex.quote(str(data_dir))} --results-dir {shlex.quote(str(results_dir))}"
    lines = ["The pipeline, stage by stage (`make demo` runs it on the offline demo corpus):", "", "```",
             f"python build_dataset.py --source demo --data-dir {shlex.quote(str(data_dir))}",
             f"python build_features.py --data-dir {shlex.quote(str(data_dir))}",
             f"python train_vae.py{d}", f"python train_cvae.py --model all{d}"]
    vade = _read_optional(common.metrics_dir(results_dir) / "vade_metrics.csv")
    vade_methods = list(dict.fromkeys(vade["method"])) if vade is not None else ["vade"]
    for m in vade_methods:  # the VaDE runs behind the table, each feature set once
        feats = vade_features(m)
        lines.append(f"python train_vade.py{d}" + (f" --features {shlex.quote(feats)}" if feats != "mfcc" else ""))
    recorded = []
    for script in ANALYSIS_SCRIPTS:
        p = commands_dir(results_dir) / f"{Path(script).stem}.txt"
        lines.append(p.read_text().strip() if p.exists() else f"python {script}{d}")  # not run yet
        recorded.append(p.exists())
    lines += [f"python report.py{d}", "```", ""]
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
    rows = metrics.read_metrics(results_dir)
    dataset, rate = _dataset_section(data_dir)
    methods = list(rows["method"].unique()) if rows is not None else []
    out = ["# Clustering songs by sung language: results", "",
           "Generated by `report.py` from the files in this folder; the method follows the technical "
           "report *Language-Based Music Clustering Using Variational Autoencoders*, with its errors fixed "
           "(see below).", "", "## The dataset in numbers", ""]
    out += dataset
    out += ["## Results (the report's Table 5.1, reproduced)", ""]
    out += _table_section(rows, results_dir)
    if rate is not None and rows is not None:
        out += [f"Purity beside the majority-class rate ({rate:.4f}): a purity equal to it means every "
                f"cluster's majority is the same language.", ""]
    out += ["### As published in the report (one run, one seed)", ""]
    out += _published_section()
    out += _language_section(rows, results_dir)
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
