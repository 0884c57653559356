"""How many languages a library holds and which: the number of clusters chosen from the data, and
each cluster named from Whisper's language ID, without labels (issue 16).

    import languages
    names = languages.name_clusters(cluster_of_song, song_posteriors, codes)   # one row per cluster

Whisper (whisper_features.py) gives every 30 s window a posterior over its 99 languages; a song's
posterior is the normalized geometric mean of its windows' (the softmax of the mean of their log
posteriors, floored as analyze_language floors them). Names are ISO 639 codes with their English
names from CLDR through `langcodes` (a maintained table: Whisper's `jw` is Javanese, `jv`; a
user's label `bangla` is `bn`), never a hand-typed dictionary.

Nothing here reads a file; analyze_language.py calls these functions and writes what they return.
"""
import numpy as np
import pandas as pd

# ----------------------------------------------------------------------------
# what the declared language method (analyze_language.LANGUAGE_METHOD = whisper_named) reads:
# build_features.py --sets language builds exactly these (change them together)
LANGUAGE_SETS = ("whisper_lang", "whisper_mean")  # Whisper's log posteriors (names, k) and encoder states (placing)

# ----------------------------------------------------------------------------
# naming a cluster from Whisper's posteriors pooled over its songs
NAME_MIN_POSTERIOR = 0.5  # the pooled top language must hold at least this share to name a cluster
NAME_MIN_MARGIN = 0.2  # ... and lead the runner-up by at least this much; else the name says "uncertain"
UNCERTAIN = "uncertain"  # the first word of an unnamed cluster's name: "uncertain (bn 0.31 / hi 0.27)"


def iso_code(code):
    """A Whisper or user language code as a standard ISO 639 tag (Whisper's 'jw' -> 'jv')."""
    import langcodes
    return langcodes.standardize_tag(str(code))


def english_name(code):
    """CLDR's English name of a language code ('bn' -> 'Bangla'); the code itself if unknown."""
    import langcodes
    try:
        return langcodes.Language.get(iso_code(code)).display_name()
    except (ValueError, LookupError):
        return str(code)


def label_code(label):
    """The ISO code of a user's label ('bangla', 'Bengali', 'bn' -> 'bn'), or '' when langcodes
    knows no such language (a label such as 'cluster_a' names a cluster but has no code)."""
    import langcodes
    text = str(label).strip()
    if not text:
        return ""
    try:
        if langcodes.tag_is_valid(text.lower()):
            return iso_code(text.lower())
        return iso_code(langcodes.find(text).language)
    except (ValueError, LookupError):
        return ""


def softmax_rows(log_p):
    """Rows of log scores -> rows of probabilities (stable)."""
    z = np.asarray(log_p, dtype=np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def pooled_posterior(song_posteriors):
    """A cluster's posterior: the mean of its songs' posteriors (each song one vote, however long)."""
    return np.asarray(song_posteriors, dtype=np.float64).mean(axis=0)


def whisper_name(posterior, codes, min_posterior=NAME_MIN_POSTERIOR, min_margin=NAME_MIN_MARGIN):
    """(code, English name, top posterior, margin) of a pooled posterior; code '' and the name
    'uncertain (a p / b q)' when the top language holds less than min_posterior or leads the
    runner-up by less than min_margin."""
    p = np.asarray(posterior, dtype=np.float64)
    order = np.argsort(-p, kind="stable")
    top, second = order[0], order[1] if len(order) > 1 else order[0]
    margin = float(p[top] - (p[second] if second != top else 0.0))
    if p[top] >= min_posterior and margin >= min_margin:
        code = iso_code(codes[top])
        return code, english_name(code), float(p[top]), margin
    return "", f"{UNCERTAIN} ({codes[top]} {p[top]:.2f} / {codes[second]} {p[second]:.2f})", float(p[top]), margin


def name_clusters(song_clusters, song_posteriors=None, codes=None, song_labels=None,
                  min_posterior=NAME_MIN_POSTERIOR, min_margin=NAME_MIN_MARGIN):
    """One row per cluster id: `cluster` (the name a person reads), `cluster_language` (ISO code,
    '' where unnamed), `cluster_language_name`, `named_by` ('labels', 'whisper', 'uncertain' or
    'none'), `top_posterior`, `margin`, `whisper_language` (Whisper's own name, even where labels
    override it) and `n_songs`.

    A cluster with labelled songs is named after their majority label, which overrides Whisper's
    name (labels are the user's word); otherwise Whisper's pooled posterior names it, or says it
    is unsure. Without posteriors an unlabelled cluster is `cluster_<id>`. Two clusters that would
    share a name get their id appended, so every name is unique."""
    clusters = np.asarray(song_clusters)
    labels = (pd.Series(song_labels, dtype=object).fillna("").astype(str).str.strip().to_numpy()
              if song_labels is not None else np.full(len(clusters), "", dtype=object))
    rows = []
    for c in sorted(np.unique(clusters)):
        inside = clusters == c
        row = {"cluster_id": c, "n_songs": int(inside.sum()), "whisper_language": "",
               "top_posterior": np.nan, "margin": np.nan}
        if song_posteriors is not None:
            code, name, top, margin = whisper_name(pooled_posterior(np.asarray(song_posteriors)[inside]), codes,
                                                   min_posterior, min_margin)
            row.update(whisper_language=code, top_posterior=round(top, 4), margin=round(margin, 4))
        lab = pd.Series(labels[inside & (labels != "")])
        if len(lab):  # the user's labels win
            label = lab.value_counts().sort_index().idxmax()
            code = label_code(label)
            row.update(cluster=label, cluster_language=code, cluster_language_name=english_name(code) if code else "",
                       named_by="labels")
        elif song_posteriors is not None:
            row.update(cluster=name, cluster_language=code, cluster_language_name=name if code else "",
                       named_by="whisper" if code else UNCERTAIN)
        else:
            row.update(cluster=f"cluster_{c}", cluster_language="", cluster_language_name="", named_by="none")
        rows.append(row)
    table = pd.DataFrame(rows)
    counts = table["cluster"].value_counts()
    table["cluster"] = [f"{n}_{c}" if counts[n] > 1 else n for n, c in zip(table["cluster"], table["cluster_id"])]
    return table.set_index("cluster_id")


# ----------------------------------------------------------------------------
# how many languages, and which song sings which (the declared LANGUAGE_METHOD, whisper_named):
# Whisper says which languages the library holds, each song goes to the one of those it finds
# likeliest, helped by a model of this corpus's own encoder states fitted on the songs it is sure of
PRESENT_POSTERIOR = 0.3  # a song names its top language when that holds at least this share of its posterior
MIN_LANGUAGE_SONGS = 3  # a language is present (a cluster) when at least this many songs name it ...
MIN_LANGUAGE_SHARE = 0.02  # ... and at least this share of the songs: a stray name is not a language
MERGE_CONFUSION = 0.1  # two present languages are one cluster when each one's songs give the other this much posterior
ENCODER_WEIGHT = 1.0  # weight of the encoder-state model's log-probability beside Whisper's (0: Whisper alone)
ENCODER_C = 1.0  # inverse L2 strength of that model (a logistic regression on standardized song states)
# the two sources see the same songs, so their product is overconfident: a song's confidence is its
# cluster's probability with the summed log scores divided by this (2: the geometric mean), which is
# what the error rate of labelled songs follows on the validation corpora (README)
CONFIDENCE_TEMPERATURE = 2.0
# voices Whisper cannot name (a synthesizer's Bangla): the songs that name no present language are
# clustered apart when there are many of them, on the profile of their log posteriors
UNNAMED_SHARE = 0.25  # ... at least this share of the songs
MAX_UNNAMED_CLUSTERS = 4  # ... into 1 to this many clusters: more than one when their silhouette says so ...
UNNAMED_MIN_SILHOUETTE = 0.3  # ... reaching this (among the unnamed songs alone); below it they are one cluster
# ... and then a language named only weakly (its songs' mean top posterior below this) is no language of
# its own: a voice Whisper cannot place gets scattered names (espeak's Bangla: Hungarian, Japanese)
STRONG_NAME_POSTERIOR = 0.6
PROFILE_PCA_DIMS = 16  # the songs' centred log posteriors reduced to this many dims for that clustering


def present_languages(P, codes, present=PRESENT_POSTERIOR, min_songs=MIN_LANGUAGE_SONGS,
                      min_share=MIN_LANGUAGE_SHARE):
    """(table, named): per language some song names, how many songs name it (top language, holding
    at least `present` of the song's posterior) and whether that makes it present; and per song the
    index (column of P) of the present language it names, or -1. The criterion, over candidate k:
    k is the number of languages whose count reaches `needed`."""
    P = np.asarray(P, dtype=np.float64)
    top, best = P.max(axis=1), P.argmax(axis=1)
    names = top >= present
    counts = np.bincount(best[names], minlength=P.shape[1])
    need = max(min_songs, int(np.ceil(min_share * len(P))))
    kept = np.flatnonzero(counts >= need)
    named = np.where(names & np.isin(best, kept), best, -1)
    order = np.argsort(-counts, kind="stable")
    order = order[counts[order] > 0]
    table = pd.DataFrame({"code": [str(codes[i]) for i in order], "column": order, "songs": counts[order],
                          "needed": need, "present": np.isin(order, kept),
                          "soft_songs": P[:, order].sum(axis=0).round(2)})
    return table, named


def merge_confused(P, named, min_confusion=MERGE_CONFUSION):
    """[[language columns] per cluster]: present languages joined (transitively) when the songs naming
    each give the other at least min_confusion of their posterior on average. Languages Whisper
    cannot keep apart on this corpus (Hindi and Urdu on the same singers) become one cluster because
    the data says so, not because a table says they are alike."""
    langs = sorted(set(int(a) for a in named[named >= 0]))
    parent = {a: a for a in langs}

    def root(a):
        while parent[a] != a:
            a = parent[a]
        return a

    for i, a in enumerate(langs):
        for b in langs[i + 1:]:
            if min(P[named == a, b].mean(), P[named == b, a].mean()) >= min_confusion:
                parent[root(b)] = root(a)
    groups = {}
    for a in langs:
        groups.setdefault(root(a), []).append(a)
    return sorted(groups.values(), key=lambda g: -int(np.isin(named, g).sum()))


def force_groups(groups, table, P, k):
    """The k groups a forced --n-clusters asks for: the most-named ones, topped up with the next
    languages Whisper names (present or not), then with its likeliest languages overall."""
    groups = [list(g) for g in groups[:k]]
    used = {a for g in groups for a in g}
    for a in [*table["column"], *np.argsort(-np.asarray(P).sum(axis=0), kind="stable")]:
        if len(groups) >= k:
            break
        if int(a) not in used:
            groups.append([int(a)])
            used.add(int(a))
    return groups


def encoder_model_logp(X, seeds, n_groups, seed=0, c=ENCODER_C):
    """(songs, n_groups) log-probabilities of a logistic regression on X (standardized), fitted on
    the songs that name a present language (seeds: their group, -1 for the others); None unless
    every group has a song to learn from."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    known = seeds >= 0
    if n_groups < 2 or len(np.unique(seeds[known])) < n_groups:
        return None
    X = StandardScaler().fit_transform(np.asarray(X, dtype=np.float64))
    clf = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(X[known], seeds[known])
    return np.log(np.maximum(clf.predict_proba(X)[:, np.argsort(clf.classes_)], 1e-9))


def unnamed_clusters(Z, unnamed, seed=0, j=None):
    """(extra cluster per unnamed song, {j: silhouette}): K-Means on the unnamed songs' rows of Z for
    j = 2..MAX_UNNAMED_CLUSTERS, scored by the silhouette among those songs alone (the named songs,
    far away, would flatter any j); the best j when its silhouette reaches UNNAMED_MIN_SILHOUETTE,
    else one cluster. A forced j is taken as it is."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score
    zu = Z[unnamed]
    fits, scores = {}, {}
    for c in ([j] if j is not None else range(2, MAX_UNNAMED_CLUSTERS + 1)):
        if c < 2 or c >= len(zu):
            continue
        fits[c] = KMeans(n_clusters=c, n_init=10, random_state=seed).fit_predict(zu)
        scores[c] = float(silhouette_score(zu, fits[c])) if len(np.unique(fits[c])) > 1 else -1.0
    if j is not None:
        return fits.get(j, np.zeros(len(zu), dtype=int)), scores
    best = max(scores, key=scores.get) if scores else None
    if best is None or scores[best] < UNNAMED_MIN_SILHOUETTE:
        return np.zeros(len(zu), dtype=int), scores
    return fits[best], scores


def group_of_songs(named, groups):
    """Each song's index in `groups` (lists of language codes) by the language it names; -1 for none."""
    groups_of = np.full(len(named), -1)
    for i, g in enumerate(groups):
        groups_of[np.isin(named, g)] = i
    return groups_of


def named_clusters(song_logp, codes, X=None, k=None, seed=0, encoder_weight=ENCODER_WEIGHT):
    """The declared method on songs: {"clusters": cluster per song (0 = the most-named language),
    "confidence", "table": present_languages' table, "groups": the language columns of each
    named cluster, "unnamed": the silhouette per number of clusters of unnamed songs (empty when
    they were few), "k"}.

    song_logp: (songs, languages) each song's mean (floored) Whisper log posteriors; X: (songs, d)
    the songs' mean encoder states (or None: Whisper alone); k: None chooses it, an integer forces it.

    1. Present languages: those Whisper names on enough songs (present_languages), joined where it
       confuses them (merge_confused): one cluster each.
    2. When few songs name none of them (< UNNAMED_SHARE), every song goes to the present language
       it is likeliest to sing: Whisper's posterior summed over each cluster's languages and
       renormalized over the clusters (its language ID restricted to the languages present), plus
       encoder_weight times the log-probability of a logistic regression on the encoder states
       fitted on the songs that named a language; confidence = the chosen cluster's probability with
       that sum tempered by CONFIDENCE_TEMPERATURE.
    3. When many do, their languages are ones Whisper cannot name: the languages it names only
       weakly (STRONG_NAME_POSTERIOR) join them, and they are clustered apart on their log-posterior
       profiles (unnamed_clusters); confidence = the margin (d2 - d1) / (d2 + d1) of a song's
       distances to its own and the nearest other cluster's mean profile. A forced k above the present languages sets
       the number of those clusters."""
    L = np.asarray(song_logp, dtype=np.float64)
    P = softmax_rows(L)
    table, named = present_languages(P, codes)
    groups = merge_confused(P, named)
    groups_of = group_of_songs(named, groups)
    unnamed = groups_of < 0
    many_unnamed = unnamed.sum() >= max(MIN_LANGUAGE_SONGS, UNNAMED_SHARE * len(P)) and len(groups) >= 1
    if many_unnamed:  # weakly named languages join the unnamed songs (their names are a voice's scatter)
        strong = [g for i, g in enumerate(groups) if P[groups_of == i].max(axis=1).mean() >= STRONG_NAME_POSTERIOR]
        if strong and len(strong) < len(groups):
            groups = strong
            groups_of = group_of_songs(named, groups)
            unnamed = groups_of < 0
    extra_j = None
    if k is not None:
        if many_unnamed and int(k) > len(groups):
            extra_j = int(k) - len(groups)
        else:
            groups, many_unnamed = force_groups(groups, table, P, int(k)), False
    if not groups:  # nobody names anything often enough (a handful of songs): Whisper's likeliest language
        groups, many_unnamed = [[int(P.sum(axis=0).argmax())]], False
    out = {"table": table, "groups": groups, "unnamed": {}}
    if many_unnamed:
        from sklearn.decomposition import PCA
        Zc = L - L.mean(axis=0)
        Z = PCA(n_components=min(PROFILE_PCA_DIMS, len(L) - 1, L.shape[1]), random_state=seed).fit_transform(Zc)
        extra, out["unnamed"] = unnamed_clusters(Z, unnamed, seed, extra_j)
        clusters = groups_of.copy()
        clusters[unnamed] = len(groups) + extra
        conf = kmeans_margin(Z, clusters)  # every song's margin between its own and the nearest other cluster
        return {**out, "clusters": clusters, "confidence": conf, "k": len(groups) + len(np.unique(extra))}
    mass = np.stack([P[:, g].sum(axis=1) for g in groups], axis=1)
    score = np.log(np.maximum(mass / mass.sum(axis=1, keepdims=True), 1e-9))
    model = encoder_model_logp(X, groups_of, len(groups), seed) if X is not None and encoder_weight > 0 else None
    if model is not None:
        score = score + encoder_weight * model
    prob = softmax_rows(score / CONFIDENCE_TEMPERATURE)
    return {**out, "clusters": prob.argmax(axis=1), "confidence": prob.max(axis=1), "k": len(groups)}


def kmeans_margin(Z, clusters):
    """(d2 - d1) / (d2 + d1) of each row's distances to its own and the nearest other cluster mean."""
    ids = np.unique(clusters)
    if len(ids) < 2:
        return np.ones(len(Z))
    centres = np.stack([Z[clusters == c].mean(axis=0) for c in ids])
    d = np.linalg.norm(Z[:, None, :] - centres[None], axis=2)
    own = d[np.arange(len(Z)), np.searchsorted(ids, clusters)]
    d[np.arange(len(Z)), np.searchsorted(ids, clusters)] = np.inf
    other = d.min(axis=1)
    return (other - own) / np.maximum(other + own, 1e-12)
