"""Shared test helpers: the repo root on sys.path, and synthesized audio files."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def synth_song(seconds, sr=22050, channels=1, seed=0, silent=()):
    """Float32 (n, channels) 'music': a gliding harmonic tone with a pulse, plus a little noise.

    silent: (start_s, end_s) spans set to digital silence.
    """
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    f0 = 140.0 * 2 ** ((seed % 7) / 12) * (1 + 0.25 * np.sin(2 * np.pi * (0.15 + 0.03 * seed) * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    y = sum(0.25 / h * np.sin(h * phase) for h in (1, 2, 3, 5))
    y = y * (0.5 + 0.5 * np.sin(2 * np.pi * 2.0 * t) ** 2) + 0.02 * rng.standard_normal(n)
    for a, b in silent:
        y[int(a * sr):int(b * sr)] = 0.0
    return np.stack([y * (1.0 - 0.3 * c) for c in range(channels)], axis=1).astype(np.float32)


def ffmpeg_exe():
    import imageio_ffmpeg
    return imageio_ffmpeg.get_ffmpeg_exe()


def write_song(path, seconds, sr=22050, channels=1, seed=0, silent=()):
    """Write synth_song to path; the format follows the extension (wav, flac, ogg, mp3, m4a)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    y = synth_song(seconds, sr, channels, seed, silent)
    ext = path.suffix.lower()
    if ext == ".m4a":  # libsndfile does not write AAC: go through ffmpeg
        tmp = path.with_suffix(".src.wav")
        sf.write(tmp, y, sr)
        subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-i", str(tmp), "-c:a", "aac",
                        "-b:a", "96k", str(path)], check=True)
        tmp.unlink()
    elif ext == ".mp3":
        sf.write(path, y, sr, format="MP3", subtype="MPEG_LAYER_III")
    elif ext == ".ogg":
        sf.write(path, y, sr, format="OGG", subtype="VORBIS")
    else:
        sf.write(path, y, sr)
    return path


@pytest.fixture
def make_song(tmp_path):
    """make_song("songs/a.flac", seconds=31, sr=44100, channels=2, seed=1) -> path under tmp_path."""
    def make(name, seconds, **kw):
        return write_song(tmp_path / name, seconds, **kw)
    return make
