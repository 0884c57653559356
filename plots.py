"""Figures shared by the three analyze_*.py scripts; every figure is a PNG in results/figures/.

Names: <method>_tsne_language.png, <method>_tsne_cluster.png, <method>_composition.png,
<method>_confusion.png, <model>_loss.png, <model>_reconstructions.png, all_losses.png,
methods_comparison.png, song_languages_confusion.png. report.py captions them by these suffixes.
Heat-maps and stacked composition bars are seaborn's. Unlabelled segments (an empty language) are
drawn grey as "unlabelled"; the confusion matrix shows the labelled segments only.
"""
import os

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402

import common  # noqa: E402
import metrics  # noqa: E402
import tables  # noqa: E402
from common import N_FRAMES, N_MFCC, SEGMENT_SECONDS  # noqa: E402

# ----------------------------------------------------------------------------
# t-SNE
TSNE_MAX_POINTS = 2000  # larger corpora: t-SNE of a seeded subsample of this many segments
TSNE_PERPLEXITY = 30.0  # lowered automatically for tiny corpora (must stay below N/3)
TSNE_PCA_ABOVE = 100  # features wider than this (raw MFCC) are first reduced by PCA ...
TSNE_PCA_DIMS = 50  # ... to this many dimensions, the usual t-SNE practice
# ----------------------------------------------------------------------------
# figures
N_RECONSTRUCTIONS = 4  # segments shown original-versus-reconstructed
DPI = 110  # resolution of every PNG
PNG_COMPRESS_LEVEL = 1  # zlib level of the PNGs: 1 saves ~20 % of the time of the default 6, for ~15 % larger files
# set to "1", every figure is built but not laid out or rendered: an empty file stands where its PNG would
# be. The test suite sets it for the scripts it runs (rendering was most of their time); tests that read a PNG do not
UNRENDERED_FIGURES_ENV = "LANGCLUST_UNRENDERED_FIGURES"
# the report's colours (Blue=English, Red=Bangla); other languages take the next ones
KNOWN_LANGUAGE_COLORS = {"english": "tab:blue", "bangla": "tab:red", "bengali": "tab:red"}
OTHER_COLORS = ["tab:green", "tab:purple", "tab:orange", "tab:brown", "tab:pink", "tab:olive"]
CLUSTER_COLORS = ["tab:orange", "tab:cyan", "tab:olive", "tab:purple", "tab:brown", "tab:pink"]
UNLABELLED = "unlabelled"  # how a segment without a language is named in legends
UNLABELLED_COLOR = "lightgrey"
HEATMAP_CMAP = "Blues"  # every count heat-map (confusion matrices)
METHOD_KINDS = ("tsne", "composition", "confusion")  # the per-method figures


def language_name(lang):
    """'english' -> 'English' for legends; names that already have capitals stay as they are."""
    lang = str(lang)
    return lang if lang != lang.lower() else lang.title()


def language_colors(languages):
    langs = sorted(set(map(str, languages)))
    others = iter(OTHER_COLORS * 4)
    return {l: UNLABELLED_COLOR if l == UNLABELLED else KNOWN_LANGUAGE_COLORS.get(l.lower()) or next(others)
            for l in langs}


def display_languages(languages):
    """The languages as text, an empty one as UNLABELLED (for legends and composition bars)."""
    values = np.asarray(languages, dtype=object)
    return np.where(metrics.labelled_mask(values), values.astype(str), UNLABELLED).astype(str)


def _labelled_scores(languages, clusters):
    """(purity, majority rate, acc) on the labelled segments, NaN where fewer than two languages."""
    mask = metrics.labelled_mask(languages)
    known, clusters = np.asarray(languages, dtype=object)[mask].astype(str), np.asarray(clusters)[mask]
    if len(set(known)) < 2:
        return float("nan"), float("nan"), float("nan")
    return metrics.purity(known, clusters), metrics.majority_rate(known), metrics.acc(known, clusters)


def _unrendered():
    return os.environ.get(UNRENDERED_FIGURES_ENV) == "1"


def tight_layout(fig, **kwargs):
    """fig.tight_layout(**kwargs), except when figures are not rendered: it measures every label by
    drawing it (a quarter of an analysis script's time under the tests), and only a PNG shows it."""
    if not _unrendered():
        fig.tight_layout(**kwargs)


def save(fig, path):
    """Write the figure atomically and close it; returns the path. An empty file when
    UNRENDERED_FIGURES_ENV is "1"."""
    with common.atomic_path(path) as tmp:
        if _unrendered():
            open(tmp, "wb").close()
        else:
            fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight",
                        pil_kwargs={"compress_level": PNG_COMPRESS_LEVEL})
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------
# t-SNE: one embedding per feature set, both colourings drawn from it
def tsne_embedding(features, seed):
    """Returns (embedding (n, 2), indices of the segments embedded, a note for the title)."""
    n = len(features)
    notes = []
    if n > TSNE_MAX_POINTS:
        idx = np.sort(np.random.default_rng(seed).choice(n, TSNE_MAX_POINTS, replace=False))
        notes.append(f"seeded sample of {TSNE_MAX_POINTS} of {n} segments")
    else:
        idx = np.arange(n)
    x = np.asarray(features[idx], dtype=np.float32).reshape(len(idx), -1)
    if x.shape[1] > TSNE_PCA_ABOVE and len(idx) > TSNE_PCA_DIMS:
        x = PCA(n_components=TSNE_PCA_DIMS, svd_solver="randomized", random_state=seed).fit_transform(x)
        notes.append(f"PCA to {TSNE_PCA_DIMS} dims first")
    if len(np.unique(x, axis=0)) < 2:  # one point: t-SNE's PCA start divides by zero, and its BH tree crashes
        return np.zeros((len(idx), 2)), idx, "; ".join(notes + ["every segment has the same features: one point"])
    perplexity = max(1.0, min(TSNE_PERPLEXITY, (len(idx) - 1) / 3))
    emb = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
               random_state=seed).fit_transform(x)
    return emb, idx, "; ".join(notes)


def _scatter(emb, values, names, colors, title, legend_title, path):
    fig, ax = plt.subplots(figsize=(7.5, 6))
    for v in sorted(set(values), key=str):
        mask = values == v
        ax.scatter(emb[mask, 0], emb[mask, 1], s=10, alpha=0.7, color=colors[v],
                   label=f"{names[v]} (n={mask.sum()})", edgecolors="none")
    ax.set_xlabel("t-SNE dimension 1")
    ax.set_ylabel("t-SNE dimension 2")
    ax.set_title(title, fontsize=11)
    ax.legend(title=legend_title, loc="best", fontsize=9, markerscale=2)
    return save(fig, path)


def tsne_figures(method, features_desc, emb, idx, languages, clusters, kmeans_seed, note, fig_dir,
                 by_language=True):
    """Two scatter plots of the same embedding: by true language (unless by_language is False),
    by K-Means cluster."""
    languages = display_languages(languages)[idx]
    clusters = np.asarray(clusters)[idx]
    sub = f"\n{features_desc}" + (f" ({note})" if note else "")
    colors = language_colors(languages)
    p1 = _scatter(emb, languages, {l: language_name(l) for l in colors}, colors,
                  f"{tables.method_title(method)}: t-SNE coloured by true language{sub}",
                  "language", fig_dir / f"{method}_tsne_language.png") if by_language else None
    cl = sorted(set(clusters.tolist()))
    ccolors = {c: CLUSTER_COLORS[i % len(CLUSTER_COLORS)] for i, c in enumerate(cl)}
    p2 = _scatter(emb, clusters, {c: f"cluster {c}" for c in cl}, ccolors,
                  f"{tables.method_title(method)}: t-SNE coloured by K-Means cluster "
                  f"(seed {kmeans_seed}){sub}", "K-Means cluster", fig_dir / f"{method}_tsne_cluster.png")
    return [p for p in (p1, p2) if p is not None]


# ----------------------------------------------------------------------------
# cluster-by-language tables
def composition(method, languages, clusters, kmeans_seed, fig_dir):
    """Stacked bars (seaborn): for each cluster, how many segments of each language it holds;
    unlabelled segments are a grey layer of their own."""
    shown = display_languages(languages)
    table, cv, lv = metrics.contingency(shown, clusters)
    order = [j for j, l in enumerate(lv) if l != UNLABELLED] + [j for j, l in enumerate(lv) if l == UNLABELLED]
    table, lv = table[:, order], [lv[j] for j in order]  # the grey layer on top
    colors = language_colors(lv)
    cluster_pos = {c: i for i, c in enumerate(cv)}
    data = pd.DataFrame({"x": [cluster_pos[c] for c in np.asarray(clusters).astype(str)],
                         "language": [language_name(l) if l != UNLABELLED else l for l in shown]})
    names = [language_name(l) if l != UNLABELLED else l for l in lv]
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    # seaborn stacks the last hue level at the bottom: reversed, lv[0] is the bottom layer, the
    # grey unlabelled one the top, and the legend reads top to bottom like the bars
    sns.histplot(data, x="x", hue="language", hue_order=names[::-1], multiple="stack", discrete=True, shrink=0.8,
                 palette={n: colors[l] for n, l in zip(names, lv)}, alpha=1.0, linewidth=0, ax=ax)
    bottom = np.zeros(len(cv))
    for j in range(len(lv)):
        for i in range(len(cv)):
            if table[i, j] > 0 and table[i, j] / max(table[i].sum(), 1) > 0.06:
                ax.text(i, bottom[i] + table[i, j] / 2, f"{table[i, j]}\n({table[i, j] / table[i].sum():.0%})",
                        ha="center", va="center", fontsize=8, color="black" if lv[j] == UNLABELLED else "white")
        bottom += table[:, j]
    ax.set_xticks(range(len(cv)), [f"cluster {c}\n(n={table[i].sum()})" for i, c in enumerate(cv)])
    ax.set_xlabel("K-Means cluster")
    ax.set_ylabel("segments")
    pur, maj, _ = _labelled_scores(languages, clusters)
    scored = (f"purity {pur:.3f}, majority rate {maj:.3f}" if not np.isnan(pur)
              else "not scored: fewer than two languages labelled")
    ax.set_title(f"{tables.method_title(method)}: language composition of each cluster\n"
                 f"(K-Means seed {kmeans_seed}; {scored})", fontsize=10)
    return save(fig, fig_dir / f"{method}_composition.png")


def count_heatmap(table, row_names, col_names, title, xlabel, ylabel, path):
    """A seaborn heat-map of counts, each cell annotated; returns the path."""
    table = np.asarray(table)
    fig, ax = plt.subplots(figsize=(1.8 * len(col_names) + 3, 0.9 * len(row_names) + 2.2))
    sns.heatmap(pd.DataFrame(table, index=row_names, columns=col_names), annot=True, fmt="d",
                cmap=HEATMAP_CMAP, cbar_kws={"label": "count"}, linewidths=0.5, linecolor="white", ax=ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.tick_params(axis="y", rotation=0)
    ax.set_title(title, fontsize=10)
    return save(fig, path)


def confusion(method, languages, clusters, kmeans_seed, fig_dir):
    """Cluster x language counts of the labelled segments, clusters ordered by the Hungarian
    matching; None when no segment is labelled."""
    mask = metrics.labelled_mask(languages)
    if not mask.any():
        return None
    known, clusters_known = np.asarray(languages, dtype=object)[mask].astype(str), np.asarray(clusters)[mask]
    table, cv, lv = metrics.contingency(known, clusters_known)
    match = metrics.matching(known, clusters_known)
    lang_pos = {l: j for j, l in enumerate(lv)}
    order = sorted(range(len(cv)), key=lambda i: lang_pos.get(match.get(cv[i]), len(lv) + i))
    rows = [f"cluster {cv[i]} → {language_name(match[cv[i]])}" if cv[i] in match
            else f"cluster {cv[i]} (unmatched)" for i in order]
    _, _, acc = _labelled_scores(languages, clusters)
    scored = f"acc {acc:.3f}" if not np.isnan(acc) else "acc not scored: one language labelled"
    of = "" if mask.all() else f"; the {mask.sum()} labelled of {len(mask)} segments"
    return count_heatmap(table[order], rows, [language_name(l) for l in lv],
                         f"{tables.method_title(method)}: confusion matrix after Hungarian matching\n"
                         f"(K-Means seed {kmeans_seed}; {scored}{of})", "true language",
                         "K-Means cluster → matched language", fig_dir / f"{method}_confusion.png")


def song_confusion(songs, path):
    """Songs per (cluster, known language) from song_languages.csv's rows (labelled songs only),
    as a seaborn heat-map; None when no song is labelled."""
    known = songs[metrics.labelled_mask(songs["language"])]
    if not len(known):
        return None
    table = pd.crosstab(known["cluster"].astype(str), known["language"].astype(str))
    return count_heatmap(table.to_numpy(), list(table.index), [language_name(l) for l in table.columns],
                         f"Clusters against the known languages ({len(known)} labelled of {len(songs)} songs)",
                         "known language", "cluster", path)


def method_figures(method, features, features_desc, segments, assignments, seed, results_dir,
                   kinds=METHOD_KINDS):
    """The per-method figures; the clusters shown are those of the first K-Means seed."""
    fig_dir = common.figures_dir(results_dir)
    kseed = min(assignments)
    clusters, languages = assignments[kseed], segments["language"].to_numpy(dtype=object)
    labelled = metrics.labelled_mask(languages).any()
    paths = []
    if "tsne" in kinds:
        emb, idx, note = tsne_embedding(features, seed)
        # without any label one grey cloud says nothing: only the cluster colouring is drawn
        paths += tsne_figures(method, features_desc, emb, idx, languages, clusters, kseed, note, fig_dir,
                              by_language=labelled)
    if "composition" in kinds and labelled:
        paths.append(composition(method, languages, clusters, kseed, fig_dir))
    if "confusion" in kinds:
        paths.append(confusion(method, languages, clusters, kseed, fig_dir))
    paths = [p for p in paths if p is not None]
    if not labelled:  # an earlier, labelled run's figures would describe other data
        for kind in ("_tsne_language", "_composition", "_confusion"):
            (fig_dir / f"{method}{kind}.png").unlink(missing_ok=True)
    return paths


# ----------------------------------------------------------------------------
# training curves
def read_losses(results_dir, model):
    path = common.losses_path(results_dir, model)
    if not path.exists():
        print(f"skipped {model} loss curves: {path} not found")
        return None
    df = pd.read_csv(path)
    missing = [c for c in common.LOSS_COLUMNS if c not in df.columns]
    if missing or df.empty:
        print(f"skipped {model} loss curves: {path} is empty or lacks columns {missing}")
        return None
    return df


def loss_curves(model, results_dir):
    """Total loss, reconstruction and KL per epoch for one model."""
    df = read_losses(results_dir, model)
    if df is None:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, col, label in zip(axes, ["loss", "recon", "kl"],
                              ["total loss", "reconstruction (MSE)", "KL divergence"]):
        y = pd.to_numeric(df[col], errors="coerce")
        if y.notna().any():
            ax.plot(df["epoch"], y, marker="o", color="tab:blue")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        else:
            ax.text(0.5, 0.5, "no KL term\n(plain autoencoder)", ha="center", va="center",
                    transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_title(label)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{model}: training losses per epoch ({len(df)} epochs)")
    tight_layout(fig)
    return save(fig, common.figures_dir(results_dir) / f"{model}_loss.png")


def all_losses(models, results_dir):
    """Every model's curves on shared axes (reconstruction is comparable across models)."""
    frames = {m: df for m in models if (df := read_losses(results_dir, m)) is not None}
    if not frames:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ax, col, label in zip(axes, ["loss", "recon", "kl"],
                              ["total loss", "reconstruction (MSE)", "KL divergence"]):
        for m, df in frames.items():
            y = pd.to_numeric(df[col], errors="coerce")
            if y.notna().any():
                ax.plot(df["epoch"], y, marker="o", label=m)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_title(label)
        ax.grid(alpha=0.3)
        ax.legend(title="model", fontsize=8)
    fig.suptitle("Training losses of every model (total loss includes each model's KL weight)")
    tight_layout(fig)
    return save(fig, common.figures_dir(results_dir) / "all_losses.png")


# ----------------------------------------------------------------------------
# reconstructions: needs models.py and the checkpoint
def pick_segments(segments, n, seed):
    """n segments, seeded, taking the languages in turn so each one is shown."""
    rng = np.random.default_rng(seed)
    langs = display_languages(segments["language"])
    pools = {l: list(rng.permutation(np.flatnonzero(langs == l))) for l in sorted(set(langs))}
    picked = []
    while len(picked) < min(n, len(langs)):
        for l in pools:
            if pools[l] and len(picked) < n:
                picked.append(int(pools[l].pop()))
    return picked


def reconstructions(model, mfcc, segments, results_dir, seed):
    """Original versus reconstructed MFCC images for N_RECONSTRUCTIONS segments."""
    path = common.model_path(results_dir, model)
    if not path.exists():
        print(f"skipped {model} reconstructions: {path} not found")
        return None
    try:
        import torch
        import models
        net, ckpt = models.load_checkpoint(path, device="cpu")
        idx = pick_segments(segments, N_RECONSTRUCTIONS, seed)
        x = torch.from_numpy(np.asarray(mfcc[idx], dtype=np.float32))
        langs = display_languages(segments["language"])[idx]
        y = None
        if getattr(net, "uses_labels", False):
            known = list(ckpt["config"]["languages"])
            y = torch.tensor([known.index(l) for l in langs], dtype=torch.long)
        with torch.no_grad():
            recon = net(x, y)[0]
        recon = recon.reshape(len(idx), N_MFCC, N_FRAMES).cpu().numpy()
    except Exception as e:  # no models.py yet, an old checkpoint, a language it never saw
        print(f"skipped {model} reconstructions: could not run {path} ({type(e).__name__}: {e})")
        return None
    x = x.numpy()
    # a fixed layout: constrained_layout's solver took most of this figure's 3 s (7 models in make demo)
    fig, axes = plt.subplots(len(idx), 2, figsize=(12, 2.6 * len(idx) + 0.6), squeeze=False)
    fig.subplots_adjust(left=0.06, right=0.93, bottom=0.45 / (2.6 * len(idx) + 0.6) + 0.04, top=0.92, hspace=0.55,
                        wspace=0.12)
    extent = [0, SEGMENT_SECONDS, 0, N_MFCC]
    for r, i in enumerate(idx):
        vmin, vmax = np.percentile(x[r], [1, 99])
        mse = float(np.mean((x[r] - recon[r]) ** 2))
        for c, (img, what) in enumerate([(x[r], "original"), (recon[r], f"reconstructed (MSE {mse:.3f})")]):
            ax = axes[r, c]
            im = ax.imshow(img, aspect="auto", origin="lower", extent=extent, vmin=vmin, vmax=vmax,
                           cmap="magma")
            ax.set_title(f"segment {segments['segment_id'].iloc[i]} ({language_name(langs[r])}): {what}",
                         fontsize=9)
            if r == len(idx) - 1:
                ax.set_xlabel("time (s)")
            ax.set_ylabel("MFCC index")
        fig.colorbar(im, ax=axes[r, :].tolist(), label="z-scored value", fraction=0.03, pad=0.01)
    fig.suptitle(f"{model}: original vs reconstructed MFCCs ({len(idx)} segments, same colour scale per row)")
    return save(fig, common.figures_dir(results_dir) / f"{model}_reconstructions.png")


# ----------------------------------------------------------------------------
# all methods on all metrics
def comparison(summary, path, majority=None, title="Every method on every metric"):
    """One horizontal-bar panel per metric, mean over K-Means seeds, std as error bars."""
    summary = summary.reset_index(drop=True)
    names = [tables.method_title(m) for m in summary["method"]]
    meta = summary["uses_metadata"].fillna(False).astype(bool) if "uses_metadata" in summary else \
        pd.Series(False, index=summary.index)
    lab = summary["uses_labels"].astype(bool)
    kind_colors = np.where(meta, "tab:purple", np.where(lab, "tab:orange", "tab:blue"))
    fig, axes = plt.subplots(1, len(metrics.METRIC_NAMES), figsize=(4 * len(metrics.METRIC_NAMES) + 2.5,
                                                                    0.45 * len(names) + 2.2), sharey=True)
    y = np.arange(len(names))
    for ax, m in zip(axes, metrics.METRIC_NAMES):
        bars = ax.barh(y, summary[f"{m}_mean"], xerr=summary[f"{m}_std"].fillna(0), color=kind_colors,
                       capsize=3, alpha=0.85)
        for bar, saw_label in zip(bars, lab):
            if saw_label:
                bar.set_hatch("//")
        ax.axvline(0, color="black", lw=0.8)
        if summary[f"{m}_mean"].isna().all():
            ax.text(0.5, 0.5, "not scored:\nno labelled segments", ha="center", va="center",
                    transform=ax.transAxes, color="gray")
            ax.set_xticks([])
        if m == "purity" and majority is not None and not pd.isna(majority):
            ax.axvline(majority, color="red", ls="--", lw=1)
            ax.text(majority, len(names) - 0.4, " majority rate", color="red", fontsize=8)
        ax.set_title(m)
        ax.set_xlabel(f"{m} (mean ± std over seeds)")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, names)
    axes[0].invert_yaxis()
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in ["tab:blue", "tab:orange", "tab:purple"]]
    handles.append(plt.Rectangle((0, 0), 1, 1, facecolor="white", edgecolor="black", hatch="//"))
    fig.legend(handles, ["audio only, no labels", "model saw the language label",
                         "uses title/artist metadata", "hatched: saw the language label"],
               loc="lower center", ncol=4, fontsize=9,
               bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(title)
    tight_layout(fig, rect=(0, 0.05, 1, 1))
    return save(fig, path)


def comparison_from_results(results_dir, majority=None):
    """The comparison chart over every metrics CSV written so far."""
    rows = tables.read_metrics(results_dir)
    if rows is None:
        return None
    return comparison(metrics.summarize(rows), common.figures_dir(results_dir) / "methods_comparison.png",
                      majority, title=f"Every method on every metric (K-Means, {rows['seed'].nunique()} seeds; "
                                      f"label metrics on the labelled segments only)")


# ----------------------------------------------------------------------------
# how much language each representation carries (analyze_language.py)
def probes_chart(probes, path, majority=None):
    """Grouped horizontal bars: the probe's accuracy with folds grouped by song and by artist."""
    probes = probes.sort_values("probe_acc_artist").reset_index(drop=True)
    y = np.arange(len(probes))
    fig, ax = plt.subplots(figsize=(9, 0.42 * len(probes) + 1.8))
    ax.barh(y + 0.2, probes["probe_acc"], height=0.4, color="tab:gray", label="folds grouped by song")
    ax.barh(y - 0.2, probes["probe_acc_artist"], height=0.4, color="tab:blue",
            label="folds grouped by artist (no singer on both sides)")
    if majority is not None:
        ax.axvline(majority, color="red", ls="--", lw=1, label=f"majority-class rate {majority:.2f}")
    ax.set_yticks(y, probes["features"])
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy of a supervised probe (standardize + logistic regression)")
    ax.set_ylabel("representation")
    ax.set_title("How much language each representation carries: the ceiling for label-free clustering")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    tight_layout(fig)
    return save(fig, path)


def confounds_heatmap(table, path, title="What the clusters follow: NMI of each method's clusters"):
    """table: DataFrame indexed by method, one column per confound (NMI); saved as a PNG (analyze_language.py)."""
    vals = table.to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(1.1 * vals.shape[1] + 3.5, 0.38 * vals.shape[0] + 1.8))
    im = ax.imshow(vals, cmap="viridis", vmin=0.0, vmax=max(1e-6, float(np.nanmax(vals))), aspect="auto")
    ax.set_xticks(range(vals.shape[1]), table.columns, rotation=40, ha="right")
    ax.set_yticks(range(vals.shape[0]), table.index)
    for i in range(vals.shape[0]):
        for j in range(vals.shape[1]):
            ax.text(j, i, f"{vals[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if vals[i, j] < 0.6 * np.nanmax(vals) else "black")
    ax.set_xlabel("segment attribute (numbers in quantile bins)")
    ax.set_ylabel("method")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, label="NMI")
    tight_layout(fig)
    return save(fig, path)


# ----------------------------------------------------------------------------
# how many languages (analyze_language.py, languages.py)
def language_count_chart(count_table, path, k, unnamed_scores=None, min_silhouette=None):
    """The number of languages, as decided: per language Whisper names (its top language, sure
    enough) on some song, how many songs name it, against the count a language needs (the dashed
    line); the languages that are clusters in blue, those named only weakly beside many unnamed songs
    (which they joined) in orange. With many songs Whisper names no language,
    a second panel: the silhouette among them per number of clusters, against the bar it must reach."""
    t = count_table.head(15)
    panels = 2 if unnamed_scores else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 3.6), squeeze=False)
    ax = axes[0, 0]
    # blue: a cluster of its own; orange: named on enough songs, but only weakly, beside many unnamed songs
    # (it joined them); grey: too few songs
    colors = ["tab:blue" if c >= 0 else "tab:orange" if p else "lightgrey" for c, p in zip(t["cluster"], t["present"])]
    ax.bar([f"{c}\n{n}" for c, n in zip(t["code"], t["name"])], t["songs"], color=colors)
    if len(t):
        ax.axhline(float(t["needed"].iloc[0]), color="black", ls="--", lw=1, label="songs a language needs")
        ax.legend(fontsize=8)
    ax.set_ylabel("songs naming it")
    ax.set_title(f"Languages Whisper names: {k} cluster{'s' if k != 1 else ''} chosen", fontsize=10)
    ax.tick_params(axis="x", labelsize=7)
    if unnamed_scores:
        ax = axes[0, 1]
        js = sorted(unnamed_scores)
        ax.plot(js, [unnamed_scores[j] for j in js], marker="o")
        if min_silhouette is not None:
            ax.axhline(min_silhouette, color="black", ls="--", lw=1, label="bar for more than one")
            ax.legend(fontsize=8)
        ax.set_xlabel("clusters among the songs Whisper names no language")
        ax.set_ylabel("silhouette among them")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    tight_layout(fig)
    return save(fig, path)
