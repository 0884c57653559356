"""build_dataset.py: manifests, local files, yt-dlp on 127.0.0.1, bad input, features, resuming."""
import functools
import http.server
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

import build_dataset as bd
import common
from conftest import ROOT, synth_song

# the report's song list: in ../shared beside the checkout (as CI lays it out), else this machine's copy
SEED_SONGS = next((p for p in (ROOT.parent / "shared" / "data" / "seed_songs.csv",
                               Path("/work/shared/data/seed_songs.csv")) if p.exists()),
                  ROOT.parent / "shared" / "data" / "seed_songs.csv")
SR = common.SAMPLE_RATE


def write_manifest(path, rows):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def run_build(manifest, data_dir, **kw):
    kw.setdefault("workers", 1)
    return bd.build(source="manifest", manifest=manifest, data_dir=data_dir, sleep=0, progress=False, **kw)


def failures(data_dir):
    p = common.failures_path(data_dir)
    return pd.read_csv(p, dtype=str) if p.exists() else pd.DataFrame(columns=common.FAILURE_COLUMNS)


def four_songs(tmp_path, make_song):
    """Four local songs of 1 to 2 segments, both languages; returns the manifest rows."""
    rows = []
    for i, (lang, secs) in enumerate([("english", 61), ("bangla", 35), ("english", 31), ("bangla", 64)]):
        make_song(f"src/s{i}.wav", secs, seed=i)
        rows.append({"song_id": f"{lang}_{i:02d}", "language": lang, "title": f"Song {i}",
                     "artist": f"Artist {i % 2}", "path": f"s{i}.wav"})
    return rows


def outputs(data_dir):
    return {name: (Path(data_dir) / name).read_bytes()
            for name in ("features/mfcc.npy", "features/segments.csv", "songs.csv")}


# ----------------------------------------------------------------------------
# features
def test_hop_gives_430_frames_spanning_the_segment():
    assert bd.HOP_LENGTH == 1539
    assert 1 + bd.SEGMENT_SAMPLES // bd.HOP_LENGTH == common.N_FRAMES
    # the last frame's window reaches the segment's last half-window: the whole 30 s is covered
    assert (common.N_FRAMES - 1) * bd.HOP_LENGTH + bd.N_FFT // 2 >= bd.SEGMENT_SAMPLES - bd.N_FFT // 2


def test_segment_features_shape_dtype_and_zscore():
    y = synth_song(30, seed=3)[:, 0]
    f = bd.segment_features(y)
    assert f.shape == (common.N_MFCC, common.N_FRAMES) and f.dtype == np.float32
    np.testing.assert_allclose(f.mean(axis=1), 0, atol=1e-4)
    np.testing.assert_allclose(f.std(axis=1), 1, atol=1e-3)


def test_report_first_10s_switch_changes_what_is_covered(monkeypatch):
    a = synth_song(30, seed=1)[:, 0]
    b = a.copy()
    b[11 * SR:] = synth_song(19, seed=5)[:, 0]  # same first 11 s, different last 19 s
    fixed = bd.feature_config()
    assert not np.allclose(bd.segment_features(a, fixed), bd.segment_features(b, fixed), atol=1e-2)
    monkeypatch.setattr(bd, "REPORT_FIRST_10S", True)
    report = bd.feature_config()
    assert report["hop_length"] == 512 and bd.config_hash(report) != bd.config_hash(fixed)
    fa, fb = bd.segment_features(a, report), bd.segment_features(b, report)
    assert fa.shape == (common.N_MFCC, common.N_FRAMES)
    np.testing.assert_array_equal(fa, fb)  # the report's frames never see past 10 s


def test_silent_segment_skipped_never_nan(tmp_path, make_song):
    make_song("src/gap.wav", 95, seed=2, silent=[(30, 60)])
    make_song("src/quiet.wav", 31, seed=4, silent=[(0, 31)])
    m = write_manifest(tmp_path / "src/m.csv", [
        {"song_id": "gap", "language": "english", "path": "gap.wav"},
        {"song_id": "quiet", "language": "bangla", "path": "quiet.wav"}])
    data = tmp_path / "data"
    run_build(m, data)
    mfcc, segs = common.load_features(data)
    assert list(segs["segment_id"]) == ["gap_000", "gap_002"]
    assert list(segs["start_s"]) == [0.0, 60.0]
    assert np.isfinite(mfcc).all()
    f = failures(data)
    assert ((f["song_id"] == "gap") & f["error"].str.contains("segment 1 at 30 s is silent")).any()
    assert ((f["song_id"] == "quiet") & f["error"].str.contains("silent")).any()
    assert list(pd.read_csv(common.songs_path(data))["song_id"]) == ["gap"]


# ----------------------------------------------------------------------------
# local files
def test_local_formats_rates_and_channels(tmp_path, make_song):
    specs = [("a.wav", 44100, 2), ("b.flac", 48000, 1), ("c.ogg", 22050, 2), ("d.mp3", 44100, 1),
             ("e.m4a", 32000, 2), ("f.wav", 8000, 1)]
    rows = []
    for i, (name, sr, ch) in enumerate(specs):
        make_song(f"src/{name}", 32, sr=sr, channels=ch, seed=i)
        rows.append({"language": ["english", "bangla"][i % 2], "path": name, "genre": f"g{i}"})
    data = tmp_path / "data"
    summary = run_build(write_manifest(tmp_path / "src/m.csv", rows), data)
    songs = pd.read_csv(common.songs_path(data), dtype=str)
    assert list(songs["song_id"]) == [f"song_{i:04d}" for i in range(1, 7)]  # from row numbers
    assert list(songs["title"]) == ["a", "b", "c", "d", "e", "f"]  # file stem when no title
    assert list(songs["genre"]) == [f"g{i}" for i in range(6)]  # extra columns kept
    assert songs["source"].str.endswith(tuple(n for n, _, _ in specs)).all()
    for sid, dur in zip(songs["song_id"], songs["duration_s"].astype(float)):
        info = sf.info(bd.audio_path(data, sid))
        assert info.samplerate == SR and info.channels == 1
        assert abs(dur - 32) < 0.2 and abs(info.duration - dur) < 1e-3
    mfcc, segs = common.load_features(data)
    assert mfcc.shape == (6, common.N_MFCC, common.N_FRAMES) and mfcc.dtype == np.float32
    assert summary["segments"] == {"bangla": 3, "english": 3}
    assert not common.failures_path(data).exists()


def test_bad_local_inputs_are_failure_rows(tmp_path, make_song):
    make_song("src/good.wav", 31, seed=1)
    make_song("src/short.flac", 12, seed=2)
    (tmp_path / "src/empty.wav").write_bytes(b"")
    (tmp_path / "src/page.mp3").write_text("<html><body>not audio</body></html>")
    m = write_manifest(tmp_path / "src/m.csv", [
        {"song_id": "good", "language": "english", "path": "good.wav"},
        {"song_id": "short", "language": "bangla", "path": "short.flac"},
        {"song_id": "empty", "language": "bangla", "path": "empty.wav"},
        {"song_id": "html", "language": "english", "path": "page.mp3"},
        {"song_id": "missing", "language": "english", "path": "nowhere.ogg"},
        {"song_id": "text", "language": "english", "path": "notes.txt"},
        {"song_id": "nolang", "language": "", "path": "good.wav"},
        {"song_id": "nosource", "language": "english", "path": ""},
        {"song_id": "good", "language": "bangla", "path": "good.wav"},  # repeated id
        {"song_id": "../../evil", "language": "bangla", "path": "good.wav"}])
    data = tmp_path / "data"
    run_build(m, data)
    f = failures(data).set_index("song_id")
    assert list(f.columns) == ["stage", "source", "error"]
    expect = {"short": ("features", "shorter than one"), "empty": ("audio", "empty"),
              "html": ("audio", "not readable audio"), "missing": ("audio", "not found"),
              "text": ("audio", "not one of the formats"),
              "nolang": ("manifest", "no language"), "nosource": ("manifest", "no query, url or path")}
    for sid, (stage, text) in expect.items():
        assert f.loc[sid, "stage"] == stage and text in f.loc[sid, "error"], (sid, f.loc[sid].tolist())
    assert (f.loc["good", "error"] == "manifest row 9 repeats song_id good")
    songs = pd.read_csv(common.songs_path(data), dtype=str)
    assert list(songs["song_id"]) == ["good", "song_0010"]  # the unsafe id replaced by the row number
    assert not list(data.rglob("*evil*"))
    mfcc, segs = common.load_features(data)
    assert len(mfcc) == 2 and np.isfinite(mfcc).all()


def test_edited_local_file_is_decoded_again(tmp_path, make_song):
    make_song("src/a.wav", 31, seed=1)
    m = write_manifest(tmp_path / "src/m.csv", [{"song_id": "a", "language": "english", "path": "a.wav"}])
    data = tmp_path / "data"
    run_build(m, data)
    first = outputs(data)["features/mfcc.npy"]
    make_song("src/a.wav", 34, seed=2)  # the user replaced the file under the same name
    run_build(m, data)
    assert outputs(data)["features/mfcc.npy"] != first
    assert abs(sf.info(bd.audio_path(data, "a")).duration - 34) < 0.01
    fresh = tmp_path / "fresh"
    run_build(m, fresh)
    assert outputs(fresh) == outputs(data)


def test_missing_required_column_stops_before_writing(tmp_path):
    data = tmp_path / "data"
    m = write_manifest(tmp_path / "m.csv", [{"song_id": "x", "query": "ytsearch1:a song"}])
    r = subprocess.run([sys.executable, "build_dataset.py", "--source", "manifest", "--manifest", str(m),
                        "--data-dir", str(data)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "'language'" in r.stderr and "Traceback" not in r.stderr
    assert not data.exists()
    m2 = write_manifest(tmp_path / "m2.csv", [{"language": "english", "title": "no source"}])
    with pytest.raises(common.PipelineError, match="'query', 'url', 'path'"):
        run_build(m2, data)
    assert not data.exists()


def test_seed_songs_manifest_parses_as_is():
    if not SEED_SONGS.exists():
        pytest.skip("the report's seed_songs.csv is not on this machine")
    songs, bad = bd.read_manifest(SEED_SONGS)
    assert bad == [] and len(songs) == 636
    langs = pd.Series([s["language"] for s in songs]).value_counts().to_dict()
    assert langs == {"english": 305, "bangla": 331}
    assert all(s["kind"] == "query" and s["source"].startswith("ytsearch1:") for s in songs)
    assert songs[0]["song_id"] == "english_0001" and songs[0]["artist"] == "Taylor Swift"
    assert songs[0]["extra"]["n_segments"] == "6"


# ----------------------------------------------------------------------------
# yt-dlp, for real, against a server on 127.0.0.1
@pytest.fixture
def http_server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    hits = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            hits.append(self.path)
            super().do_GET()

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{srv.server_address[1]}", hits
    srv.shutdown()
    srv.server_close()


def test_ytdlp_downloads_and_failures(tmp_path, http_server, make_song, monkeypatch):
    root, base, hits = http_server
    make_song("www/song.mp3", 33, sr=44100, channels=2, seed=1)
    make_song("www/song.wav", 31, sr=48000, channels=1, seed=2)
    make_song("www/long.wav", 40, seed=3)
    (root / "page.html").write_text("<html><head><title>hi</title></head><body>no audio</body></html>")
    m = write_manifest(tmp_path / "m.csv", [
        {"song_id": "mp3", "language": "english", "url": f"{base}/song.mp3"},
        {"song_id": "wav", "language": "bangla", "url": f"{base}/song.wav", "artist": "Given Artist"},
        {"song_id": "gone", "language": "english", "url": f"{base}/missing.mp3"},
        {"song_id": "html", "language": "bangla", "url": f"{base}/page.html"},
        {"song_id": "long", "language": "bangla", "url": f"{base}/long.wav"},
        {"song_id": "bogus", "language": "bangla", "url": "notaurl"}])
    data = tmp_path / "data"
    monkeypatch.setattr(bd, "MAX_SONG_SECONDS", 36)
    run_build(m, data)
    songs = pd.read_csv(common.songs_path(data), dtype=str, keep_default_na=False)
    assert list(songs["song_id"]) == ["mp3", "wav"]
    assert list(songs["video_id"]) == ["song", "song"]  # what yt-dlp resolved
    assert list(songs["resolved_url"]) == [f"{base}/song.mp3", f"{base}/song.wav"]
    assert list(songs["artist"]) == ["unknown", "Given Artist"] and list(songs["title"]) == ["song", "song"]
    for sid, secs in (("mp3", 33), ("wav", 31)):
        y, sr = sf.read(bd.audio_path(data, sid))
        assert sr == SR and y.ndim == 1 and abs(len(y) / sr - secs) < 0.2
    f = failures(data).set_index("song_id")
    assert f.loc["gone", "stage"] == "download" and "404" in f.loc["gone", "error"]
    assert f.loc["html", "stage"] == "download" and "Unsupported URL" in f.loc["html", "error"]
    assert "MAX_SONG_SECONDS" in f.loc["long", "error"] and f.loc["bogus", "stage"] == "download"
    # a re-run downloads nothing that is already on disk and gives the same songs.csv
    before, n_hits = outputs(data), len([h for h in hits if h.startswith("/song")])
    run_build(m, data)
    assert len([h for h in hits if h.startswith("/song")]) == n_hits
    assert outputs(data) == before
    # ... but a row whose url changed is fetched again
    rows = pd.read_csv(m, dtype=str, keep_default_na=False)
    rows.loc[rows["song_id"] == "wav", "url"] = f"{base}/song.mp3"
    rows.to_csv(m, index=False)
    run_build(m, data)
    assert hits.count("/song.mp3") > 0 and abs(sf.info(bd.audio_path(data, "wav")).duration - 33) < 0.2


def test_ytdlp_search_without_result_is_a_failure(tmp_path, monkeypatch, make_song):
    import yt_dlp
    monkeypatch.setattr(yt_dlp.YoutubeDL, "extract_info",
                        lambda self, url, download=True, **kw: {"_type": "playlist", "entries": []})
    make_song("ok.wav", 31)
    m = write_manifest(tmp_path / "m.csv", [
        {"song_id": "q", "language": "english", "query": "ytsearch1:no such song at all", "path": ""},
        {"song_id": "ok", "language": "bangla", "query": "", "path": "ok.wav"}])
    data = tmp_path / "data"
    run_build(m, data)
    f = failures(data)
    assert f.loc[0, "song_id"] == "q" and "no result" in f.loc[0, "error"]
    assert f.loc[0, "source"] == "ytsearch1:no such song at all"
    assert list(pd.read_csv(common.songs_path(data))["song_id"]) == ["ok"]


# ----------------------------------------------------------------------------
# resuming
def test_interrupted_then_resumed_equals_clean(tmp_path, make_song, monkeypatch):
    rows = four_songs(tmp_path, make_song)
    full = write_manifest(tmp_path / "src/all.csv", rows)
    first_two = write_manifest(tmp_path / "src/two.csv", rows[:2])
    clean = tmp_path / "clean"
    run_build(full, clean)
    mfcc, segs = common.load_features(clean)
    assert mfcc.shape == (6, common.N_MFCC, common.N_FRAMES)
    assert list(segs["segment_id"][:3]) == ["english_00_000", "english_00_001", "bangla_01_000"]
    assert list(segs["start_s"][:2]) == [0.0, 30.0] and set(segs["language"]) == {"english", "bangla"}
    songs = pd.read_csv(common.songs_path(clean))
    assert list(songs.columns[:6]) == common.SONG_COLUMNS
    for sid, n in segs["song_id"].value_counts().items():  # every row of segments.csv is its song's
        rows_i = np.flatnonzero(segs["song_id"] == sid)
        y = bd.read_audio(bd.audio_path(clean, sid))
        k = int(segs["segment_id"][rows_i[-1]].rsplit("_", 1)[1])
        np.testing.assert_array_equal(mfcc[rows_i[-1]],
                                      bd.segment_features(y[k * bd.SEGMENT_SAMPLES:(k + 1) * bd.SEGMENT_SAMPLES]))

    # a run killed (Ctrl-C) on its third song writes no final outputs but keeps two cached songs
    resumed = tmp_path / "resumed"
    real, calls = bd.process_song, []

    def interrupted(song, *a):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(song["song_id"])
        return real(song, *a)

    monkeypatch.setattr(bd, "process_song", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_build(full, resumed)
    assert not common.mfcc_path(resumed).exists() and not common.songs_path(resumed).exists()
    monkeypatch.setattr(bd, "process_song", real)

    computed = []
    real_wf = bd.wav_features
    monkeypatch.setattr(bd, "wav_features", lambda wav, cfg=None: computed.append(Path(wav).stem) or real_wf(wav, cfg))
    run_build(full, resumed)
    assert computed == ["english_02", "bangla_03"]  # finished songs are not redone
    assert outputs(resumed) == outputs(clean)

    # a smaller manifest first, then the full one; and a lost cache file is simply recomputed
    grown = tmp_path / "grown"
    run_build(first_two, grown)
    assert len(common.load_features(grown)[0]) == 3
    run_build(full, grown)
    bd.cache_path(grown, "bangla_01").unlink()
    computed.clear()
    summary = run_build(full, grown)
    assert computed == ["bangla_01"] and summary["cached"] == 3
    assert outputs(grown) == outputs(clean)


def test_parallel_equals_serial_and_constants_invalidate_cache(tmp_path, make_song, monkeypatch):
    rows = four_songs(tmp_path, make_song)
    m = write_manifest(tmp_path / "src/all.csv", rows)
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    run_build(m, serial, workers=1)
    run_build(m, parallel, workers=2)
    assert outputs(parallel) == outputs(serial)
    monkeypatch.setattr(bd, "REPORT_FIRST_10S", True)
    summary = run_build(m, serial, workers=1)
    assert summary["cached"] == 0  # a changed constant means every song is recomputed
    assert outputs(serial)["features/mfcc.npy"] != outputs(parallel)["features/mfcc.npy"]


def test_cli_manifest_summary(tmp_path, make_song):
    make_song("src/a.wav", 31, seed=1)
    make_song("src/b.ogg", 62, seed=2)
    m = write_manifest(tmp_path / "src/m.csv", [{"language": "english", "path": "a.wav"},
                                                 {"language": "bangla", "path": "b.ogg"}])
    data = tmp_path / "data"
    r = subprocess.run([sys.executable, "build_dataset.py", "--source", "manifest", "--manifest", str(m),
                        "--data-dir", str(data), "--workers", "1"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "songs:     bangla 1, english 1 (2 total)" in r.stdout
    assert "segments:  bangla 2, english 1 (3 total)" in r.stdout
    assert "failures:  0 this run" in r.stdout and f"python train_vae.py --data-dir {data}" in r.stdout
    mfcc = np.load(common.mfcc_path(data), mmap_mode="r")
    assert mfcc.shape == (3, 40, 430) and mfcc.dtype == np.float32


# ----------------------------------------------------------------------------
# the offline demo corpus
def test_tiny_demo_corpus(tmp_path):
    try:
        import demo_corpus  # noqa: F401
    except ImportError:
        pytest.skip("demo_corpus.py is not there yet")
    data = tmp_path / "data"
    summary = bd.build(source="demo", songs=4, seed=0, workers=1, data_dir=data, progress=False,
                       demo_overrides={"min_seconds": 31, "max_seconds": 64})
    mfcc, segs = common.load_features(data)
    assert mfcc.dtype == np.float32 and mfcc.shape[1:] == (common.N_MFCC, common.N_FRAMES)
    assert len(mfcc) == len(segs) >= 4 and np.isfinite(mfcc).all()
    assert set(segs["language"]) == {"english", "bangla"} and set(summary["songs"]) == {"english", "bangla"}
    np.testing.assert_allclose(np.asarray(mfcc).mean(axis=2), 0, atol=1e-4)
    songs = pd.read_csv(common.songs_path(data))
    assert len(songs) == 4 and {"voice", "style", "tempo_bpm"} <= set(songs.columns)
