"""Build the dataset: songs in, 40 x 430 MFCC segments out.

    python build_dataset.py                                        # offline demo corpus (default)
    python build_dataset.py --source demo --songs 40 --seed 1      # a smaller / different demo corpus
    python build_dataset.py --source manifest --manifest songs.csv # yt-dlp queries/URLs and local files

A manifest is a UTF-8 CSV (',', ';' or tab separated) with, per row, one of `path` (a local wav,
mp3, flac, ogg or m4a file, relative to the manifest's folder), `url` or `query` (anything yt-dlp
takes, e.g. `ytsearch1:Anti-Hero - Taylor Swift Official Audio`). Optional: `language` (blank or
absent: an unlabelled song, written as an empty language), `song_id` (a safe file name; the row
number otherwise), `title`, `artist`, and any other column (kept in data/songs.csv).

Writes (DESIGN.md): data/audio/<song_id>.wav (22,050 Hz mono), data/songs.csv, data/failures.csv,
data/features/mfcc.npy (float32 (N, 40, 430)) and data/features/segments.csv. Each song's
features are cached in data/features/cache/<song_id>.npz (with a hash of the feature constants)
and where its WAV came from in data/sources/<song_id>.json, so an interrupted run, re-run, skips
finished songs and ends with the same files as an uninterrupted one; a changed constant, query,
url or local file redoes just what it affects. Bad input is skipped with a line on the console
and a row in data/failures.csv.
"""
import argparse
import concurrent.futures as cf
import contextlib
import hashlib
import io
import json
import math
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from tqdm import tqdm

import common
from common import N_FRAMES, N_MFCC, SAMPLE_RATE, SEGMENT_SECONDS, PipelineError

# ----------------------------------------------------------------------------
# features (any change here invalidates the per-song cache)
SEGMENT_SAMPLES = int(SEGMENT_SECONDS * SAMPLE_RATE)  # 661,500 samples per non-overlapping segment
N_FFT = 2048  # STFT window (librosa's default, as in the report)
HOP_LENGTH = math.ceil(SEGMENT_SAMPLES / N_FRAMES)  # 1539: with center=True, exactly 430 frames span the 30 s
N_MELS = 128  # mel bands under the 40 MFCCs (librosa's default)
FMIN = 0.0  # lowest mel frequency, Hz
FMAX = SAMPLE_RATE / 2  # highest mel frequency, Hz
STD_FLOOR = 1e-3  # floor on a coefficient's std before z-scoring, so a flat one gives 0, not NaN
SILENCE_DB = -60.0  # a segment whose RMS is below this (dBFS) is silent and skipped
REPORT_FIRST_10S = False  # True reproduces the report's bug: hop 512, first 430 frames = first 10 s only
REPORT_HOP_LENGTH = 512  # the report's hop (librosa's default), used only when REPORT_FIRST_10S

# ----------------------------------------------------------------------------
# acquisition
MAX_SONG_SECONDS = 900  # longer songs (mixes, live sets, full albums) are skipped
RETRIES = 5  # yt-dlp retries per request / fragment / extraction
RETRY_BACKOFF = 2.0  # seconds before yt-dlp's first retry, doubled on each next one (up to a minute)
SLEEP_BETWEEN_REQUESTS = 3.0  # seconds between two downloads, so YouTube does not rate-limit a long run
COOKIES_FILE = None  # a Netscape cookies.txt for yt-dlp when YouTube asks to sign in; None for none
SOCKET_TIMEOUT = 30  # seconds before yt-dlp gives up on a silent connection
FFMPEG_TIMEOUT = 600  # seconds for ffmpeg to decode one local file
LOCAL_FORMATS = (".wav", ".mp3", ".flac", ".ogg", ".m4a")  # what a manifest `path` may point to (ffmpeg reads more)
SOURCE_COLUMNS = ("path", "url", "query")  # a row's source, in order of preference
MANIFEST_DELIMITERS = ",;\t"  # a manifest's header line decides which one separates its columns
MAX_CONSECUTIVE_NETWORK_FAILURES = 5  # this many downloads in a row failing on the network stop the phase
NETWORK_CHECK_TIMEOUT = 10  # seconds to open a connection to a row's host before handing it to yt-dlp

# ----------------------------------------------------------------------------
# run
WORKERS = os.cpu_count() or 1  # processes extracting features in parallel (one song each)
RESOLVED_COLUMNS = ["video_id", "resolved_url", "resolved_title"]  # what yt-dlp resolved, in songs.csv
SAFE_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")  # a song_id usable as a file name


# ----------------------------------------------------------------------------
# paths of this stage's own intermediate files
def record_path(data_dir, song_id):
    """Where data/audio/<song_id>.wav came from (and what yt-dlp resolved), for re-runs."""
    return Path(data_dir) / "sources" / f"{song_id}.json"


def _fingerprint(path):
    st = Path(path).stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def read_record(data_dir, song_id):
    try:
        return json.loads(record_path(data_dir, song_id).read_text())
    except (OSError, ValueError):
        return None


def write_record(data_dir, song_id, record):
    with common.atomic_path(record_path(data_dir, song_id)) as tmp:
        tmp.write_text(json.dumps(record, ensure_ascii=False, indent=1))


def is_acquired(song, data_dir):
    """The song's WAV is on disk and came from this row's source (a WAV put there by hand counts).

    A changed query/url, or a local file edited since, means acquiring it again.
    """
    if not common.audio_path(data_dir, song["song_id"]).exists():
        return False
    rec = read_record(data_dir, song["song_id"])
    if rec is None:
        return True
    if rec.get("source") != _record_source(song):
        return False
    src = song["local_path"]
    return not (src and Path(src).is_file() and rec.get("fingerprint") != _fingerprint(src))


def _record_source(song):
    """A local file by its absolute path, so running from another folder is not a change."""
    return str(Path(song["local_path"]).resolve()) if song["local_path"] else song["source"]


def cache_path(data_dir, song_id):
    return common.features_dir(data_dir) / "cache" / f"{song_id}.npz"


def feature_config():
    """Every constant that shapes a segment's features; read at call time so tests may patch them."""
    first_10s = bool(REPORT_FIRST_10S)
    return {
        "n_mfcc": N_MFCC, "n_frames": N_FRAMES, "sample_rate": SAMPLE_RATE,
        "segment_samples": SEGMENT_SAMPLES, "n_fft": N_FFT,
        "hop_length": REPORT_HOP_LENGTH if first_10s else HOP_LENGTH,
        "n_mels": N_MELS, "fmin": FMIN, "fmax": FMAX, "std_floor": STD_FLOOR,
        "silence_db": SILENCE_DB, "report_first_10s": first_10s,
        "max_song_seconds": MAX_SONG_SECONDS,
    }


def config_hash(cfg):
    import librosa
    blob = json.dumps({**cfg, "librosa": librosa.__version__}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------
# manifest
def _decode_manifest(path, raw):
    """The manifest's bytes as text: UTF-8 (with or without a BOM) or UTF-16 with a BOM."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError as e:
            raise PipelineError(f"manifest {path} starts like UTF-16 but is not valid UTF-16 ({e.reason}); "
                                "save it as UTF-8 (in Excel: 'CSV UTF-8')") from e
    if b"\x00" in raw[:4096]:
        raise PipelineError(f"manifest {path} looks like UTF-16 without a byte-order mark; "
                            "save it as UTF-8 (in Excel: 'CSV UTF-8')")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise PipelineError(f"manifest {path} is not UTF-8 (byte 0x{raw[e.start]:02x} on line {line}; "
                            "Latin-1 or Windows-1252?): save it as UTF-8 (in Excel: 'CSV UTF-8')") from e


def _manifest_delimiter(text):
    """The delimiter among MANIFEST_DELIMITERS that the header line uses most (',' if none).

    The header, not csv.Sniffer on the rows: column names hold no ';' or tab, titles may.
    """
    header = next((ln for ln in text.splitlines() if ln.strip()), "")
    counts = {d: header.count(d) for d in MANIFEST_DELIMITERS}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def read_manifest(path):
    """Parse a manifest without writing anything.

    Returns (songs, failures): songs is a list of dicts (song_id, language, title, artist, kind,
    source, local_path, extra), failures a list of (song_id, source, error) for rows skipped.
    `language` is "" for an unlabelled song (no `language` column, or a blank cell).
    Raises PipelineError, naming the fix, for a manifest that cannot be read or has no source column.
    """
    path = Path(path)
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.csv"))[:3]
        hint = f" (it holds {', '.join(inside)})" if inside else ""
        raise PipelineError(f"manifest {path} is a folder, not a CSV file{hint}: pass the file itself")
    if not path.is_file():
        raise PipelineError(f"manifest {path} not found")
    try:
        text = _decode_manifest(path, path.read_bytes())
    except OSError as e:
        raise PipelineError(f"cannot read manifest {path}: {e.strerror or e}") from e
    delimiter = _manifest_delimiter(text)
    try:
        df = pd.read_csv(io.StringIO(text), sep=delimiter, dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as e:
        raise PipelineError(f"cannot read manifest {path}: {' '.join(str(e).split())}") from e
    df.columns = [str(c).strip().lower() for c in df.columns]
    if not any(c in df.columns for c in SOURCE_COLUMNS):
        raise PipelineError(f"manifest {path} has none of the source columns 'query', 'url', 'path' "
                            f"(it has: {', '.join(df.columns)}; read as {delimiter!r}-separated); add one")
    own = set(common.SONG_COLUMNS) | set(RESOLVED_COLUMNS) | {"kind", "local_path", "extra"}
    base = path.parent
    records = [{k: str(v).strip() for k, v in row.items()} for row in df.to_dict("records")]
    # ids made from row numbers must never take an id the manifest itself gives a later row
    taken = {r.get("song_id", "") for r in records if SAFE_ID.match(r.get("song_id", ""))}
    renamed = any(r.get("song_id") and not SAFE_ID.match(r["song_id"]) for r in records)
    songs, failures, seen = [], [], set()
    for i, row in enumerate(records, start=1):
        given = row.get("song_id", "")
        song_id = given
        if not SAFE_ID.match(song_id):
            song_id, n = f"song_{i:04d}", 1
            while song_id in taken:
                n += 1
                song_id = f"song_{i:04d}_{n}"
            taken.add(song_id)
            if given:
                print(f"note: manifest row {i}: song_id {given!r} is not a safe file name; "
                      f"using {song_id} (the original is kept as manifest_song_id)", file=sys.stderr)
        kind = next((c for c in SOURCE_COLUMNS if row.get(c)), None)
        source = row[kind] if kind else ""
        if kind == "path":
            source = str(base / source)
        if kind is None:
            failures.append((song_id, source, f"manifest row {i} has no query, url or path"))
            continue
        if song_id in seen:
            failures.append((song_id, source, f"manifest row {i} repeats song_id {song_id}"))
            continue
        seen.add(song_id)
        extra = {(f"manifest_{k}" if k in own else k): v for k, v in row.items()
                 if k not in ("song_id", "language", "title", "artist")}
        if renamed:  # some id was unsafe: songs.csv keeps every row's id as the manifest gave it
            extra = {"manifest_song_id": given, **extra}
        songs.append({
            "song_id": song_id, "language": row.get("language", "").lower(),
            "title": row.get("title", ""), "artist": row.get("artist", ""),
            "kind": kind, "source": source,
            "local_path": str(base / row["path"]) if kind == "path" else None,
            "extra": extra,
        })
    return songs, failures


# ----------------------------------------------------------------------------
# audio in: any local file or download -> 22,050 Hz mono float32
class AudioError(Exception):
    """This song cannot be used; the message says why."""


def find_ffmpeg():
    """The ffmpeg on PATH, else the imageio-ffmpeg wheel's binary."""
    exe = shutil.which("ffmpeg")
    if exe:
        return exe
    try:
        import imageio_ffmpeg
        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:
        return None


def _ffmpeg_decode(path, ffmpeg, max_seconds):
    """Decode what libsndfile cannot (m4a, some mp3) to float WAV with ffmpeg, no shell involved."""
    if ffmpeg is None:
        raise AudioError("cannot decode this format without ffmpeg (pip install imageio-ffmpeg)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "decoded.wav"
        cmd = [ffmpeg, "-nostdin", "-v", "error", "-y", "-i", "file:" + str(Path(path).resolve()),
               "-vn", "-t", str(max_seconds + 1), "-c:a", "pcm_f32le", "-f", "wav", str(out)]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=FFMPEG_TIMEOUT)
        except subprocess.TimeoutExpired as e:
            raise AudioError(f"ffmpeg took over {FFMPEG_TIMEOUT} s to decode it") from e
        if r.returncode != 0 or not out.exists():
            lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
            raise AudioError(f"not readable audio ({lines[-1] if lines else 'ffmpeg failed'})")
        try:
            return sf.read(out, dtype="float32", always_2d=True)
        except Exception as e:
            raise AudioError(f"not readable audio ({e})") from e


def read_audio(path, ffmpeg=None, max_seconds=MAX_SONG_SECONDS):
    """Any supported file -> float32 mono at SAMPLE_RATE; AudioError says what is wrong."""
    import librosa
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"file not found: {path}")
    if path.stat().st_size == 0:
        raise AudioError(f"file is empty: {path}")
    try:
        with sf.SoundFile(str(path)) as f:
            sr = f.samplerate
            # the decoded length decides, not the header's (a VBR MP3's can be off by minutes);
            # a second past the limit is enough to know, and caps what a 3-hour file costs
            data = f.read(frames=int((max_seconds + 1) * sr), dtype="float32", always_2d=True)
    except Exception:  # not a format libsndfile reads (m4a) or one it chokes on
        data, sr = _ffmpeg_decode(path, ffmpeg, max_seconds)
    if data.size == 0:
        raise AudioError(f"no audio samples in {path}")
    if len(data) > max_seconds * sr:
        raise AudioError(f"song decodes to over {max_seconds} s, over MAX_SONG_SECONDS={max_seconds}")
    if not np.isfinite(data).all():
        raise AudioError(f"NaN or infinite samples in {path}")
    y = data.mean(axis=1, dtype=np.float32)
    if sr != SAMPLE_RATE:
        y = librosa.resample(y, orig_sr=sr, target_sr=SAMPLE_RATE, res_type="soxr_hq").astype(np.float32)
    if len(y) > max_seconds * SAMPLE_RATE:
        raise AudioError(f"song is longer than MAX_SONG_SECONDS={max_seconds}")
    return y


def write_wav(path, y):
    """16-bit PCM WAV at SAMPLE_RATE, atomically; scaled down (never clipped) if it peaks over 1."""
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    if peak > 1.0:
        y = y / peak
    with common.atomic_path(path) as tmp:
        sf.write(str(tmp), y, SAMPLE_RATE, subtype="PCM_16", format="WAV")


# ----------------------------------------------------------------------------
# yt-dlp
class NetworkError(AudioError):
    """A download that failed because its host could not be resolved or reached."""


# what yt-dlp's message says when the network, not the song, is the problem
NETWORK_MESSAGES = re.compile(
    r"name or service not known|temporary failure in name resolution|nodename nor servname|"
    r"getaddrinfo failed|failed to resolve|no address associated|connection refused|"
    r"network is unreachable|no route to host|\[errno -[23]\]|\[errno 111\]", re.IGNORECASE)


def _network_target(source):
    """(host, port) a row's download must reach first, or None when that cannot be told."""
    from urllib.parse import urlsplit
    if re.match(r"^ytsearch(\d+|all)?:", source):
        return "www.youtube.com", 443
    try:
        u = urlsplit(source)
        if u.scheme in ("http", "https") and u.hostname:
            return u.hostname, u.port or (443 if u.scheme == "https" else 80)
    except ValueError:  # a malformed port: yt-dlp says so itself
        pass
    return None


def check_network(source, timeout=NETWORK_CHECK_TIMEOUT):
    """Raise NetworkError at once when the row's host does not resolve or refuses the connection.

    yt-dlp retries such a request RETRIES times with back-off: about two minutes a song, silently.
    Skipped behind a proxy (only yt-dlp knows the way there).
    """
    import socket
    import urllib.request
    target = _network_target(source)
    if target is None or urllib.request.getproxies():
        return
    host, port = target
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except socket.gaierror as e:
        raise NetworkError(f"download failed: cannot resolve {host} ({e.strerror or e}); no network?") from e
    except OSError as e:  # refused, unreachable, timed out
        raise NetworkError(f"download failed: cannot connect to {host}:{port} ({e.strerror or e}); "
                           "no network?") from e


class _YdlLogger:
    """Keep yt-dlp quiet but for its retries (one line each); its errors come back as exceptions."""
    def __init__(self, song_id=""):
        self.song_id = song_id

    def debug(self, msg): pass
    def info(self, msg): pass
    def error(self, msg): pass

    def warning(self, msg):
        if "Retrying" in msg:  # a slow run should say why it is slow
            tqdm.write(f"retry [download] {self.song_id}: {' '.join(str(msg).split())}", file=sys.stderr)


def download(song, data_dir, ffmpeg, cookies=COOKIES_FILE, max_seconds=MAX_SONG_SECONDS, backoff=RETRY_BACKOFF):
    """Fetch one query/URL with yt-dlp into data/audio/<song_id>.wav; return what it resolved.

    Raises AudioError with the reason when nothing usable came back.
    """
    from yt_dlp import YoutubeDL
    from yt_dlp.utils import YoutubeDLError

    too_long = []

    def match_filter(info, *, incomplete=False):
        d = info.get("duration")
        if d and d > max_seconds:
            too_long.append(d)
            return f"longer than {max_seconds} s"
        return None

    with tempfile.TemporaryDirectory(prefix="build_dataset-") as tmp:
        opts = {
            "format": "bestaudio/best",
            "outtmpl": {"default": str(Path(tmp) / "audio.%(ext)s")},  # never a name from the manifest
            "postprocessors": [{"key": "FFmpegExtractAudio", "preferredcodec": "wav"}],
            "ffmpeg_location": ffmpeg,
            "noplaylist": True, "playlist_items": "1",  # one row, one song
            "match_filter": match_filter,
            "retries": RETRIES, "fragment_retries": RETRIES, "extractor_retries": RETRIES,
            "retry_sleep_functions": {k: (lambda n: min(backoff * 2 ** n, 60.0))
                                      for k in ("http", "fragment", "extractor")},
            "socket_timeout": SOCKET_TIMEOUT,
            "cookiefile": cookies,
            "quiet": True, "no_warnings": True, "noprogress": True, "logger": _YdlLogger(song["song_id"]),
        }
        check_network(song["source"])
        try:
            with YoutubeDL(opts) as ydl:
                info = ydl.extract_info(song["source"], download=True)
        except YoutubeDLError as e:
            msg = re.sub(r"^ERROR:\s*", "", str(e))
            error = NetworkError if NETWORK_MESSAGES.search(msg) else AudioError
            raise error(f"download failed: {msg}") from e
        if info is not None and ("entries" in info or info.get("_type") == "playlist"):
            entries = [e for e in (info.get("entries") or []) if e]
            info = entries[0] if entries else None
        if info is None:
            raise AudioError(f"download failed: no result for {song['source']}")
        if too_long:
            raise AudioError(f"song is {too_long[0]:.0f} s long, over MAX_SONG_SECONDS={max_seconds}")
        wavs = sorted(Path(tmp).glob("*.wav"))
        if not wavs:
            raise AudioError("download failed: yt-dlp produced no audio")
        y = read_audio(wavs[0], ffmpeg, max_seconds)
        resolved = {
            "source": _record_source(song),
            "video_id": info.get("id") or "",
            "resolved_url": info.get("webpage_url") or info.get("original_url") or info.get("url") or "",
            "resolved_title": info.get("title") or "",
            "track": info.get("track") or "",
            "artist": info.get("artist") or info.get("creator") or info.get("uploader") or "",
        }
        write_wav(common.audio_path(data_dir, song["song_id"]), y)
        write_record(data_dir, song["song_id"], resolved)  # after the WAV: a stale record means "redo"
    return resolved


# ----------------------------------------------------------------------------
# features
_THREADPOOLS = []  # one threadpoolctl controller per process: finding the libraries is the slow part


def _one_blas_thread():
    """Same bytes whatever the machine's thread count: BLAS summation order must not vary."""
    if not _THREADPOOLS:
        try:
            import librosa.feature  # noqa: F401
            import scipy.linalg  # noqa: F401  (loads scipy's BLAS now, so the controller sees it)
            from threadpoolctl import ThreadpoolController
            np.ones((2, 2)) @ np.ones((2, 2))  # and numpy's
            _THREADPOOLS.append(ThreadpoolController())
        except ImportError:
            _THREADPOOLS.append(None)
    return _THREADPOOLS[0].limit(limits=1) if _THREADPOOLS[0] else contextlib.nullcontext()


def segment_features(y, cfg=None):
    """One 30 s segment (SEGMENT_SAMPLES floats) -> float32 (N_MFCC, N_FRAMES), z-scored per coefficient."""
    import librosa
    cfg = cfg or feature_config()
    with _one_blas_thread():
        m = librosa.feature.mfcc(y=np.ascontiguousarray(y, dtype=np.float32), sr=cfg["sample_rate"],
                                 n_mfcc=cfg["n_mfcc"], n_fft=cfg["n_fft"], hop_length=cfg["hop_length"],
                                 n_mels=cfg["n_mels"], fmin=cfg["fmin"], fmax=cfg["fmax"], center=True)
    if m.shape[1] < cfg["n_frames"]:
        raise ValueError(f"{m.shape[1]} frames, fewer than {cfg['n_frames']}: check HOP_LENGTH")
    m = m[:, :cfg["n_frames"]].astype(np.float64)  # REPORT_FIRST_10S: these are the first 10 s only
    mu = m.mean(axis=1, keepdims=True)
    sd = np.maximum(m.std(axis=1, keepdims=True), cfg["std_floor"])
    return ((m - mu) / sd).astype(np.float32)


def song_features(y, cfg=None):
    """A whole song -> (mfcc (k, 40, 430) float32, segment numbers (k,), failures [str]).

    Non-overlapping segments, remainder dropped; silent or non-finite segments are skipped.
    """
    cfg = cfg or feature_config()
    n = len(y) // cfg["segment_samples"]
    feats, index, problems = [], [], []
    for k in range(n):
        seg = y[k * cfg["segment_samples"]:(k + 1) * cfg["segment_samples"]]
        rms = float(np.sqrt(np.mean(np.square(seg, dtype=np.float64))))
        db = 20 * math.log10(rms) if rms > 0 else -math.inf
        if db < cfg["silence_db"]:
            problems.append(f"segment {k} at {k * SEGMENT_SECONDS:.0f} s is silent "
                            f"({db:.0f} dBFS < SILENCE_DB={cfg['silence_db']:.0f}); skipped")
            continue
        f = segment_features(seg, cfg)
        if not np.isfinite(f).all():
            problems.append(f"segment {k} at {k * SEGMENT_SECONDS:.0f} s gave non-finite MFCCs; skipped")
            continue
        feats.append(f)
        index.append(k)
    mfcc = np.stack(feats) if feats else np.zeros((0, cfg["n_mfcc"], cfg["n_frames"]), np.float32)
    return mfcc, np.asarray(index, dtype=np.int64), problems


def wav_features(wav, cfg=None):
    """data/audio/<id>.wav -> (mfcc, segment numbers, duration_s, failures [(stage, error)])."""
    cfg = cfg or feature_config()
    y = read_audio(wav, None, cfg["max_song_seconds"])
    duration = len(y) / cfg["sample_rate"]
    if len(y) < cfg["segment_samples"]:
        empty = np.zeros((0, cfg["n_mfcc"], cfg["n_frames"]), np.float32)
        return empty, np.zeros(0, np.int64), duration, [
            ("features", f"song is {duration:.1f} s long, shorter than one {SEGMENT_SECONDS:.0f} s segment")]
    mfcc, index, problems = song_features(y, cfg)
    return mfcc, index, duration, [("features", p) for p in problems]


def _cache_key(wav, cfg):
    st = Path(wav).stat()
    return f"{config_hash(cfg)}:{st.st_size}:{st.st_mtime_ns}"


def load_cache(data_dir, song_id, key):
    """The cached (mfcc, index, duration_s, failures) for this song if it was made from the same
    WAV and constants, else None; failures are the song's problems, said again on a re-run."""
    p = cache_path(data_dir, song_id)
    if not p.exists():
        return None
    try:
        with np.load(p, allow_pickle=False) as z:
            if str(z["key"]) != key:
                return None
            problems = json.loads(str(z["failures"])) if "failures" in z.files else []
            return z["mfcc"], z["index"], float(z["duration_s"]), [tuple(p) for p in problems]
    except Exception:  # truncated or foreign file: recompute
        return None


def process_song(song, data_dir, cfg, ffmpeg):
    """Worker: make sure the song's WAV exists, then its features are cached. Never raises.

    Returns {song_id, duration_s, n_segments, failures: [(stage, error)], cached}.
    """
    sid = song["song_id"]
    out = {"song_id": sid, "duration_s": None, "n_segments": 0, "failures": [], "cached": False}
    wav = common.audio_path(data_dir, sid)
    try:
        if not is_acquired(song, data_dir):
            if song["kind"] != "path":  # a download that did not happen this run
                out["failures"].append(("download", "no audio downloaded"))
                return out
            src = Path(song["local_path"])
            try:
                if src.suffix.lower() not in LOCAL_FORMATS:
                    raise AudioError(f"{src.name}: not one of the formats {', '.join(LOCAL_FORMATS)} "
                                     "(LOCAL_FORMATS)")
                fingerprint = _fingerprint(src) if src.is_file() else ""
                y = read_audio(src, ffmpeg, cfg["max_song_seconds"])
            except AudioError as e:
                out["failures"].append(("audio", str(e)))
                return out
            write_wav(wav, y)
            write_record(data_dir, sid, {"source": _record_source(song), "fingerprint": fingerprint})
        key = _cache_key(wav, cfg)
        hit = load_cache(data_dir, sid, key)
        if hit is not None:
            mfcc, index, duration, problems = hit
            out.update(duration_s=duration, n_segments=len(index), failures=problems, cached=True)
            return out
        try:
            mfcc, index, duration, problems = wav_features(wav, cfg)
        except AudioError as e:
            out["failures"].append(("audio", str(e)))
            return out
        with common.atomic_path(cache_path(data_dir, sid)) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, mfcc=mfcc, index=index, duration_s=np.float64(duration), key=np.str_(key),
                         failures=np.str_(json.dumps(problems)))
        out.update(duration_s=duration, n_segments=len(index), failures=problems)
    except Exception as e:  # a bug or a disk error must not end the whole run
        out["failures"].append(("features", f"{type(e).__name__}: {e}"))
    return out


def _init_worker(parent_pid=None):
    common.die_with_parent(parent_pid)  # a SIGKILLed run (the OOM killer) leaves no worker behind
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is handled once, by the main process


def make_pool(workers):
    """The feature workers: forked on Linux (they inherit librosa, already imported), ignoring
    Ctrl-C, and gone as soon as this process is, however it ends."""
    ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else None)
    return cf.ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(os.getpid(),),
                                  mp_context=ctx)


class FailureLog:
    """data/failures.csv as this stage writes it: every problem is said on the console on every
    run, but a row is written once per (stage, song_id, source, error), so a re-run that meets the
    same problem again (a song still too short, a URL still 404) adds no second row."""

    def __init__(self, data_dir):
        self.data_dir = data_dir
        self.rows = common.read_failures(data_dir)
        self.count = 0  # problems met this run, old or new

    def __call__(self, stage, song_id, source, error, quiet=False):
        error = " ".join(str(error).split())
        row = (stage, str(song_id), str(source), error)
        self.count += 1
        if row in self.rows:
            if not quiet:
                print(f"skipped [{stage}] {song_id}: {error}", file=sys.stderr)
            return
        common.log_failure(self.data_dir, stage, song_id, source, error, quiet=quiet)
        self.rows.add(row)


# ----------------------------------------------------------------------------
# the run
def build(source="demo", manifest=None, songs=None, seed=None, workers=WORKERS, data_dir="data",
          sleep=SLEEP_BETWEEN_REQUESTS, cookies=COOKIES_FILE, demo_overrides=None, progress=True):
    """Acquire the songs, extract features, write every output; return a summary dict."""
    data_dir = common.check_writable_dir(data_dir, "--data-dir")  # one line now, not a traceback later
    workers = common.check_workers(workers)
    if source == "demo":
        import demo_corpus  # lazily: only the demo needs espeak-ng
        kw = dict(demo_overrides or {})
        if songs is not None:
            kw["n_songs"] = songs
        if seed is not None:
            kw["seed"] = seed
        print(f"demo corpus -> {data_dir / 'demo_source'}")
        manifest = demo_corpus.generate_demo(data_dir / "demo_source", workers=workers, **kw)
    elif source == "manifest":
        if manifest is None:
            raise PipelineError("--source manifest needs --manifest FILE (a CSV with query/url/path per row)")
    else:
        raise PipelineError(f"unknown --source {source!r}: use demo or manifest")
    rows, bad_rows = read_manifest(manifest)  # before anything is written
    if not rows and not bad_rows:
        raise PipelineError(f"manifest {manifest} lists no songs")
    ffmpeg = find_ffmpeg()
    remote = [s for s in rows if s["kind"] != "path" and not is_acquired(s, data_dir)]
    if remote and ffmpeg is None:
        raise PipelineError("yt-dlp needs ffmpeg: put one on PATH or `pip install imageio-ffmpeg`")
    log = FailureLog(data_dir)
    for sid, src, err in bad_rows:
        log("manifest", sid, src, err)
    cfg = feature_config()
    (data_dir / "audio").mkdir(parents=True, exist_ok=True)
    for folder in (data_dir / "audio", record_path(data_dir, "x").parent, cache_path(data_dir, "x").parent):
        for stale in folder.glob(".*.tmp*"):  # left by a worker stopped mid-write
            stale.unlink()

    workers = max(1, min(workers, len(rows) or 1))
    import librosa  # noqa: F401  (here, once: forked workers inherit it instead of importing it again)
    common.warm_numba()  # librosa's numba cache filled and checked here, before any worker could race on it
    pool = None if workers == 1 else make_pool(workers)
    jobs, results = [], {}  # jobs: (song, future or None when run here, in order, after the downloads)

    def submit(s):
        jobs.append((s, pool.submit(process_song, s, data_dir, cfg, ffmpeg) if pool else None))

    def finished():
        if pool is None:
            for s, _ in jobs:
                yield s, process_song(s, data_dir, cfg, ffmpeg)
        else:
            song_of = {fut: s for s, fut in jobs}
            for fut in cf.as_completed(song_of):
                yield song_of[fut], fut.result()

    try:
        todo = {s["song_id"] for s in remote}
        for s in rows:  # features of what is on disk start while the rest downloads
            if s["song_id"] not in todo:
                submit(s)
        offline = 0  # downloads in a row that failed on the network
        for i, s in enumerate(tqdm(remote, desc="download", unit="song", disable=not (progress and remote))):
            if offline >= MAX_CONSECUTIVE_NETWORK_FAILURES:  # quietly: one line said it for all of them
                log("download", s["song_id"], s["source"], "not attempted: the download phase stopped after "
                    f"{offline} network failures in a row (no network?)", quiet=True)
                continue
            if i and sleep and not offline:  # (after a network failure no request reached anyone)
                time.sleep(sleep)  # be gentle: hundreds of back-to-back requests get rate-limited
            try:
                download(s, data_dir, ffmpeg, cookies, cfg["max_song_seconds"], RETRY_BACKOFF if sleep else 0.0)
            except AudioError as e:
                log("download", s["song_id"], s["source"], e)
                offline = offline + 1 if isinstance(e, NetworkError) else 0
                if offline >= MAX_CONSECUTIVE_NETWORK_FAILURES and i + 1 < len(remote):
                    tqdm.write(f"stopping downloads: {offline} in a row failed on the network (no network?); "
                               f"the other {len(remote) - i - 1} are not attempted (rows in "
                               f"{common.failures_path(data_dir)}); re-run the same command when online "
                               "(MAX_CONSECUTIVE_NETWORK_FAILURES)", file=sys.stderr)
                continue
            offline = 0
            submit(s)
        for s, r in tqdm(finished(), total=len(jobs), desc="features", unit="song", disable=not progress):
            for stage, err in r["failures"]:
                log(stage, s["song_id"], s["source"], err)
            results[s["song_id"]] = r
    except BaseException:  # Ctrl-C: stop now; finished songs are cached, the ones in hand are redone
        if pool is not None:
            procs = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in procs:
                proc.terminate()
        raise
    if pool is not None:
        pool.shutdown()
    if offline >= MAX_CONSECUTIVE_NETWORK_FAILURES and not any(r["n_segments"] for r in results.values()):
        raise PipelineError(f"no segments were produced: the downloads stopped after {offline} network "
                            "failures in a row (no network?); re-run the same command when online")
    return _assemble(data_dir, rows, results, cfg, log.count)


def _assemble(data_dir, rows, results, cfg, n_failures):
    """Concatenate the cached songs, in manifest order, into the stage's outputs (atomically)."""
    kept = [s for s in rows if results.get(s["song_id"], {}).get("n_segments", 0) > 0]
    song_rows, seg_rows = [], []
    for s in kept:
        r = results[s["song_id"]]
        resolved = (read_record(data_dir, s["song_id"]) or {}) if s["kind"] != "path" else {}
        title = s["title"] or resolved.get("track") or resolved.get("resolved_title") or (
            Path(s["source"]).stem if s["kind"] == "path" else s["source"])
        artist = s["artist"] or resolved.get("artist") or "unknown"
        song_rows.append({"song_id": s["song_id"], "language": s["language"], "title": title,
                          "artist": artist, "source": s["source"],
                          "duration_s": round(r["duration_s"], 3),
                          **{c: resolved.get(c, "") for c in RESOLVED_COLUMNS}, **s["extra"]})
    total = sum(results[s["song_id"]]["n_segments"] for s in kept)
    if total == 0:
        raise PipelineError(f"no segments were produced; see {common.failures_path(data_dir)}")
    key_hash = config_hash(cfg)
    with common.atomic_path(common.mfcc_path(data_dir)) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32,
                                        shape=(total, cfg["n_mfcc"], cfg["n_frames"]))
        i = 0
        for s, row in zip(kept, song_rows):
            with np.load(cache_path(data_dir, s["song_id"]), allow_pickle=False) as z:
                assert str(z["key"]).startswith(key_hash), "cache changed during the run"
                mfcc, index = z["mfcc"], z["index"]
            out[i:i + len(index)] = mfcc
            i += len(index)
            for k in index.tolist():
                seg_rows.append({"segment_id": f"{s['song_id']}_{k:03d}", "song_id": s["song_id"],
                                 "language": s["language"], "title": row["title"],
                                 "artist": row["artist"], "start_s": float(k * SEGMENT_SECONDS)})
        out.flush()
        del out
    common.write_csv(common.segments_path(data_dir), pd.DataFrame(seg_rows, columns=common.SEGMENT_COLUMNS))
    common.write_csv(common.songs_path(data_dir), pd.DataFrame(song_rows))
    segs = pd.DataFrame(seg_rows)
    return {
        "songs": pd.Series([r["language"] for r in song_rows]).value_counts().sort_index().to_dict(),
        "segments": segs["language"].value_counts().sort_index().to_dict(),
        "n_segments": total, "failures": n_failures,
        "cached": sum(1 for r in results.values() if r["cached"]),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", choices=["demo", "manifest"], default="demo",
                   help="demo: synthesize the offline demo corpus; manifest: read --manifest")
    p.add_argument("--manifest", default=None, help="CSV of songs: query/url/path per row, optional language")
    p.add_argument("--songs", type=int, default=None, help="demo corpus size (default demo_corpus.DEMO_SONGS)")
    p.add_argument("--seed", type=common.seed_value, default=None, help="demo corpus seed (default demo_corpus.DEMO_SEED)")
    p.add_argument("--workers", type=int, default=WORKERS, help="processes extracting features")
    p.add_argument("--sleep", type=float, default=SLEEP_BETWEEN_REQUESTS, help="seconds between downloads (0 also turns off the retry backoff)")
    p.add_argument("--cookies", default=COOKIES_FILE, help="cookies.txt for yt-dlp (Netscape format)")
    common.add_dir_args(p)
    args = p.parse_args(argv)
    summary = build(source=args.source, manifest=args.manifest, songs=args.songs, seed=args.seed,
                    workers=args.workers, data_dir=args.data_dir, sleep=args.sleep, cookies=args.cookies)
    fmt = lambda d: ", ".join(f"{k or 'unlabelled'} {v}" for k, v in d.items()) + f" ({sum(d.values())} total)"
    print(f"songs:     {fmt(summary['songs'])}")
    print(f"segments:  {fmt(summary['segments'])} -> {common.mfcc_path(args.data_dir)} "
          f"({summary['n_segments']}, {N_MFCC}, {N_FRAMES}) float32")
    print(f"failures:  {summary['failures']} this run -> {common.failures_path(args.data_dir)}")
    dirs = "" if args.data_dir == "data" else f" --data-dir {args.data_dir}"
    print(f"next:      python train_vae.py{dirs}")
    import report  # REPORT.md quotes this command as typed; kept with the dataset it made
    report.record_command(args.data_dir, __file__, argv=sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    common.run_main(main)
