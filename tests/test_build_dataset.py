"""build_dataset.py: manifests, local files, yt-dlp on 127.0.0.1, bad input, features, resuming."""
import argparse
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
from conftest import ROOT, run_main_in_process, run_script, synth_song

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
        info = sf.info(common.audio_path(data, sid))
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
              "nosource": ("manifest", "no query, url or path")}
    for sid, (stage, text) in expect.items():
        assert f.loc[sid, "stage"] == stage and text in f.loc[sid, "error"], (sid, f.loc[sid].tolist())
    assert (f.loc["good", "error"] == "manifest row 9 repeats song_id good")
    songs = pd.read_csv(common.songs_path(data), dtype=str)
    assert "nolang" not in f.index  # a blank language is an unlabelled song, not a failure
    assert list(songs["song_id"]) == ["good", "nolang", "song_0010"]  # the unsafe id: the row number
    assert songs.loc[2, "manifest_song_id"] == "../../evil"  # ... and the original kept
    assert not list(data.rglob("*evil*"))
    mfcc, segs = common.load_features(data)
    assert len(mfcc) == 3 and np.isfinite(mfcc).all()
    assert list(segs["language"]) == ["english", "", "bangla"]  # "" for the unlabelled song, not NaN


def test_edited_local_file_is_decoded_again(tmp_path, make_song):
    make_song("src/a.wav", 31, seed=1)
    m = write_manifest(tmp_path / "src/m.csv", [{"song_id": "a", "language": "english", "path": "a.wav"}])
    data = tmp_path / "data"
    run_build(m, data)
    first = outputs(data)["features/mfcc.npy"]
    make_song("src/a.wav", 34, seed=2)  # the user replaced the file under the same name
    run_build(m, data)
    assert outputs(data)["features/mfcc.npy"] != first
    assert abs(sf.info(common.audio_path(data, "a")).duration - 34) < 0.01
    fresh = tmp_path / "fresh"
    run_build(m, fresh)
    assert outputs(fresh) == outputs(data)


def test_missing_source_column_stops_before_writing(tmp_path):
    data = tmp_path / "data"
    m = write_manifest(tmp_path / "m.csv", [{"song_id": "x", "language": "english", "title": "no source"}])
    r = run_script("build_dataset.py", "--source", "manifest", "--manifest", m, "--data-dir", data)
    assert r.returncode == 1 and "'query', 'url', 'path'" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
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
        y, sr = sf.read(common.audio_path(data, sid))
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
    assert hits.count("/song.mp3") > 0 and abs(sf.info(common.audio_path(data, "wav")).duration - 33) < 0.2


def test_ytdlp_search_without_result_is_a_failure(tmp_path, monkeypatch, make_song):
    import yt_dlp
    monkeypatch.setattr(yt_dlp.YoutubeDL, "extract_info",
                        lambda self, url, download=True, **kw: {"_type": "playlist", "entries": []})
    monkeypatch.setattr(bd, "check_network", lambda source, timeout=None: None)  # no DNS from a test
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
        y = bd.read_audio(common.audio_path(clean, sid))
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
    r = run_script("build_dataset.py", "--source", "manifest", "--manifest", m, "--data-dir", data, "--workers", "1")
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


# ----------------------------------------------------------------------------
# issue 10, section 4: processes and errors
_POOL_CHILD = r"""
import json, multiprocessing, os, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1] if __name__ == "__main__" else os.environ["POOL_CHILD_ROOT"])
import common


def ready(ready_dir):  # a forkserver worker's initializer is done (its thread count says nothing: BLAS threads)
    (Path(ready_dir) / str(os.getpid())).touch()


def watchdog_only(owner, ready_dir):
    common.die_with_parent(owner, poll=0.1, use_prctl=False)
    ready(ready_dir)


if __name__ == "__main__":  # a forkserver's worker imports this file as __mp_main__: it must not start a pool
    import concurrent.futures as cf
    kind, ready_dir = sys.argv[2], sys.argv[3]
    os.environ["POOL_CHILD_ROOT"] = sys.argv[1]
    forkserver = multiprocessing.get_context("forkserver")
    if kind == "build_dataset":  # the pool build() runs its songs in (forked: one thread until its initializer)
        import build_dataset
        pool = build_dataset.make_pool(2)
    elif kind == "song_tasks":  # build_features' pool: forkserver workers, the model loaded in the initializer
        import song_tasks
        pool = cf.ProcessPoolExecutor(2, mp_context=forkserver, initializer=song_tasks._init_worker,
                                      initargs=(os.getpid(), ready, ready_dir))
    else:  # a forkserver pool with only the watchdog, no prctl
        pool = cf.ProcessPoolExecutor(2, mp_context=forkserver, initializer=watchdog_only,
                                      initargs=(os.getpid(), ready_dir))
    for _ in range(2):
        pool.submit(time.sleep, 60)

    def up(pid):  # its initializer has run (its watchdog thread is up)
        if kind == "build_dataset":
            return len(os.listdir(f"/proc/{pid}/task")) >= 2
        return (Path(ready_dir) / str(pid)).exists()

    deadline = time.time() + 60
    while time.time() < deadline:
        pids = list(pool._processes)
        try:
            if len(pids) == 2 and all(up(p) for p in pids):
                break
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    from multiprocessing import forkserver, resource_tracker
    extra = [forkserver._forkserver._forkserver_pid, resource_tracker._resource_tracker._pid]
    print(json.dumps(pids + [p for p in extra if p]), flush=True)
    time.sleep(120)
"""


def _alive(pid):
    """The process exists and is not a zombie (a zombie has stopped; only its exit status is left)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("kind", ["build_dataset", "song_tasks", "forkserver_watchdog"])
def test_sigkilled_parent_leaves_no_worker(tmp_path, kind):
    import json
    import os
    import signal
    import time
    script = tmp_path / "child.py"
    script.write_text(_POOL_CHILD)
    ready = tmp_path / "ready"
    ready.mkdir()
    child = subprocess.Popen([sys.executable, str(script), str(ROOT), kind, str(ready)], stdout=subprocess.PIPE,
                             text=True)
    pids = []
    try:
        pids = json.loads(child.stdout.readline())
        assert len(pids) >= 2 and all(_alive(p) for p in pids)
        if kind != "build_dataset":
            assert len(list(ready.iterdir())) == 2  # both workers are up, with their watchdogs
        child.send_signal(signal.SIGKILL)  # as the out-of-memory killer would
        child.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)  # a bounded poll, not a fixed wait
        assert not [p for p in pids if _alive(p)], "workers outlived their parent"
    finally:
        child.kill()
        child.stdout.close()
        for p in pids:  # whatever the outcome, leave nothing behind
            if _alive(p):
                os.kill(p, signal.SIGKILL)


def test_bad_flags_are_one_line_errors(tmp_path, make_song, capsys):
    make_song("src/a.wav", 31, seed=1)
    m = write_manifest(tmp_path / "src/m.csv", [{"language": "english", "path": "a.wav"}])
    a_file = tmp_path / "file.txt"
    a_file.write_text("not a folder")
    base = ["--source", "manifest", "--manifest", str(m)]
    for argv, text in [(["--data-dir", str(a_file)], "is not a folder"),
                       (["--data-dir", str(a_file / "sub")], "is a file"),
                       (["--data-dir", str(tmp_path / "d"), "--workers", "-1"], "--workers"),
                       (["--data-dir", str(tmp_path / "d"), "--workers", "0"], "--workers")]:
        code, err = run_main_in_process(bd.main, base + argv, capsys)
        err = [ln for ln in err.splitlines() if ln.strip()]
        assert code == 1 and len(err) == 1 and text in err[0] and err[0].startswith("error:"), (argv, err)
    assert not (tmp_path / "d").exists()


def test_check_writable_dir(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    assert common.check_writable_dir(ro / "new" / "deeper") == ro / "new" / "deeper"
    assert not (ro / "new").exists() and list(ro.iterdir()) == []  # checking creates nothing
    ro.chmod(0o555)
    try:
        if os_access_ignores_modes(ro):  # root writes anywhere: make the probe fail as it would
            import tempfile
            real = tempfile.mkstemp

            def refused(*a, dir=None, **kw):
                if Path(dir) == ro:
                    raise PermissionError(13, "Permission denied")
                return real(*a, dir=dir, **kw)
            monkeypatch.setattr(tempfile, "mkstemp", refused)
        with pytest.raises(common.PipelineError, match="--results-dir .*cannot write in .*Permission denied"):
            common.check_writable_dir(ro / "results", "--results-dir")
    finally:
        ro.chmod(0o755)


def os_access_ignores_modes(path):
    """True when this process can write into a folder whose mode forbids it (root)."""
    import os
    import tempfile
    try:
        fd, p = tempfile.mkstemp(dir=path)
    except OSError:
        return False
    os.close(fd)
    os.unlink(p)
    return True


def test_generated_ids_never_take_a_manifest_id(tmp_path, make_song):
    make_song("src/a.wav", 31, seed=1)
    make_song("src/b.wav", 31, seed=2)
    make_song("src/c.wav", 31, seed=3)
    m = write_manifest(tmp_path / "src/m.csv", [
        {"song_id": "../x", "language": "english", "path": "a.wav"},  # row 1 -> not song_0001
        {"song_id": "", "language": "bangla", "path": "b.wav"},  # row 2 -> not song_0002
        {"song_id": "song_0001", "language": "bangla", "path": "b.wav"},
        {"song_id": "song_0002", "language": "english", "path": "c.wav"}])
    data = tmp_path / "data"
    run_build(m, data)
    songs = pd.read_csv(common.songs_path(data), dtype=str, keep_default_na=False)
    assert list(songs["song_id"]) == ["song_0001_2", "song_0002_2", "song_0001", "song_0002"]
    assert list(songs["manifest_song_id"]) == ["../x", "", "song_0001", "song_0002"]
    assert not common.failures_path(data).exists()  # nothing dropped as a duplicate


def test_manifest_folder_encodings_and_delimiters(tmp_path, make_song):
    make_song("src/a.wav", 31, seed=1)
    make_song("src/b.wav", 31, seed=2)
    with pytest.raises(common.PipelineError, match="is a folder, not a CSV file"):
        bd.read_manifest(tmp_path / "src")
    text = "song_id,language,title,path\nsöng,bangla,Gān,a.wav\nb,english,Café,b.wav\n"
    latin = text.replace("ā", "a")  # what Latin-1 can hold
    for name, data in [("latin1.csv", latin.encode("latin-1")), ("cp1252.csv", latin.encode("cp1252"))]:
        (tmp_path / "src" / name).write_bytes(data)
        with pytest.raises(common.PipelineError, match="not UTF-8.*save it as UTF-8"):
            bd.read_manifest(tmp_path / "src" / name)
    (tmp_path / "src/nobom16.csv").write_bytes(text.encode("utf-16-le"))
    with pytest.raises(common.PipelineError, match="UTF-16 without a byte-order mark; save it as UTF-8"):
        bd.read_manifest(tmp_path / "src/nobom16.csv")
    variants = {"utf16.csv": text.encode("utf-16"),  # with a BOM: decoded
                "semicolon.csv": text.replace(",", ";").encode(),
                "tab.csv": text.replace(",", "\t").encode("utf-8-sig"),
                "comma.csv": text.replace("Café", '"Café; live, 1999"').encode()}
    for name, data in variants.items():
        (tmp_path / "src" / name).write_bytes(data)
        songs, bad = bd.read_manifest(tmp_path / "src" / name)
        assert bad == [] and [s["song_id"] for s in songs] == ["song_0001", "b"], name
        assert [s["language"] for s in songs] == ["bangla", "english"] and songs[0]["title"] == "Gān", name
        assert songs[0]["extra"]["manifest_song_id"] == "söng"
    assert songs[1]["title"] == "Café; live, 1999"


def test_rerun_adds_no_duplicate_failure_rows(tmp_path, make_song):
    make_song("src/good.wav", 31, seed=1)
    make_song("src/short.wav", 12, seed=2)
    make_song("src/gap.wav", 61, seed=3, silent=[(30, 61)])
    (tmp_path / "src/empty.wav").write_bytes(b"")
    m = write_manifest(tmp_path / "src/m.csv", [
        {"song_id": "good", "language": "english", "path": "good.wav"},
        {"song_id": "short", "language": "english", "path": "short.wav"},  # features stage
        {"song_id": "gap", "language": "bangla", "path": "gap.wav"},  # a silent segment
        {"song_id": "empty", "language": "bangla", "path": "empty.wav"},  # audio stage
        {"song_id": "nosource", "language": "bangla", "path": ""}])  # manifest stage
    data = tmp_path / "data"
    first = run_build(m, data)
    rows = failures(data)
    assert sorted(rows["song_id"]) == ["empty", "gap", "nosource", "short"]
    second = run_build(m, data)
    assert failures(data).equals(rows)  # the same problems met again: no new rows
    assert first["failures"] == second["failures"] == 4  # ... but each run counts (and says) them all
    common.failures_path(data).unlink()  # a cleared log is filled again, cached songs' problems too
    run_build(m, data)
    assert sorted(failures(data)["song_id"]) == ["empty", "gap", "nosource", "short"]


def test_max_song_seconds_checks_the_decoded_length(tmp_path, make_song, monkeypatch):
    src = make_song("src/long.mp3", 90, seed=1)
    src.write_bytes(src.read_bytes()[:int(src.stat().st_size * 0.42)])  # header: 90 s, audio: ~37 s
    assert sf.info(src).duration > 60
    monkeypatch.setattr(bd, "MAX_SONG_SECONDS", 60)
    y = bd.read_audio(src)
    assert 31 < len(y) / SR < 45
    with pytest.raises(bd.AudioError, match="MAX_SONG_SECONDS=30"):
        bd.read_audio(src, max_seconds=30)
    m = write_manifest(tmp_path / "src/m.csv", [{"song_id": "vbr", "language": "english", "path": "long.mp3"}])
    run_build(m, tmp_path / "data")
    assert len(common.load_features(tmp_path / "data")[0]) == 1


# ----------------------------------------------------------------------------
# issue 9: labels are optional; no network fails fast
def test_unlabelled_and_partly_labelled_manifests(tmp_path, make_song, capsys):
    for i in range(3):
        make_song(f"src/s{i}.wav", 31, seed=i)
    none = write_manifest(tmp_path / "src/none.csv", [{"song_id": f"s{i}", "path": f"s{i}.wav"} for i in range(3)])
    some = write_manifest(tmp_path / "src/some.csv", [
        {"song_id": "s0", "language": "English", "path": "s0.wav"},
        {"song_id": "s1", "language": "", "path": "s1.wav"},
        {"song_id": "s2", "language": " ", "path": "s2.wav"}])
    for m, langs in ((none, ["", "", ""]), (some, ["english", "", ""])):
        data = tmp_path / m.stem
        summary = run_build(m, data)
        assert not common.failures_path(data).exists()
        assert summary["songs"] == dict(pd.Series(langs).value_counts().sort_index())
        _, segs = common.load_features(data)
        assert list(segs["language"]) == langs  # "" for unlabelled, never NaN
        songs = pd.read_csv(common.songs_path(data), dtype=str, keep_default_na=False)
        assert list(songs["language"]) == langs
    capsys.readouterr()
    bd.main(["--source", "manifest", "--manifest", str(none), "--data-dir", str(tmp_path / "none"),
             "--workers", "1", "--sleep", "0"])
    assert "songs:     unlabelled 3 (3 total)" in capsys.readouterr().out


def _refused_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connections are refused
    return port


def test_no_network_fails_fast_and_stops_the_download_phase(tmp_path, make_song, capsys):
    import time
    port = _refused_port()
    t = time.monotonic()
    with pytest.raises(bd.NetworkError, match="Connection refused.*no network"):  # default back-off
        bd.download({"song_id": "x", "source": f"http://127.0.0.1:{port}/x.mp3", "kind": "url",
                     "local_path": None}, tmp_path / "d0", bd.find_ffmpeg())
    assert time.monotonic() - t < 5
    make_song("src/local.wav", 31, seed=1)
    n = bd.MAX_CONSECUTIVE_NETWORK_FAILURES + 3
    m = write_manifest(tmp_path / "src/m.csv",
                       [{"song_id": f"r{i}", "language": "english", "url": f"http://127.0.0.1:{port}/{i}.mp3"}
                        for i in range(n)] + [{"song_id": "local", "language": "bangla", "path": "local.wav"}])
    data = tmp_path / "data"
    capsys.readouterr()
    t = time.monotonic()
    summary = run_build(m, data)
    assert time.monotonic() - t < 30
    err = capsys.readouterr().err
    assert "stopping downloads" in err and "no network?" in err
    f = failures(data).set_index("song_id")
    tried = [f"r{i}" for i in range(bd.MAX_CONSECUTIVE_NETWORK_FAILURES)]
    assert f.loc[tried, "error"].str.contains("Connection refused").all()
    assert f.loc[[f"r{i}" for i in range(len(tried), n)], "error"].str.contains("not attempted").all()
    assert err.count("skipped [download]") == len(tried)  # one line for the rest, not one each
    assert summary["songs"] == {"bangla": 1}  # the local song is still built


def test_unresolvable_host_fails_before_ytdlp_retries(tmp_path, monkeypatch):
    import socket
    import time
    import urllib.request

    def no_dns(*a, **kw):
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    monkeypatch.setattr(socket, "getaddrinfo", no_dns)  # offline, as far as this process can tell
    monkeypatch.setattr(urllib.request, "getproxies", lambda: {})
    t = time.monotonic()
    with pytest.raises(bd.NetworkError, match="cannot resolve www.youtube.com .*no network"):
        bd.download({"song_id": "q", "source": "ytsearch1:a song", "kind": "query", "local_path": None},
                    tmp_path / "d", bd.find_ffmpeg())  # the default back-off: 2 minutes before
    assert time.monotonic() - t < 2


def test_a_refused_url_is_a_network_error_but_a_404_is_not(http_server, tmp_path, capsys):
    root, base, hits = http_server
    song = {"song_id": "x", "kind": "url", "local_path": None}
    with pytest.raises(bd.AudioError) as e:
        bd.download({**song, "source": f"{base}/missing.mp3"}, tmp_path / "d", bd.find_ffmpeg(), backoff=0)
    assert not isinstance(e.value, bd.NetworkError) and "404" in str(e.value)
    assert bd._network_target("ytsearch1:a song") == ("www.youtube.com", 443)
    assert bd._network_target("notaurl") is None
    bd._YdlLogger("x").warning("Unable to download webpage: timed out. Retrying (1/5)...")
    bd._YdlLogger("x").warning("Falling back on generic information extractor")
    assert capsys.readouterr().err.strip().splitlines() == [
        "retry [download] x: Unable to download webpage: timed out. Retrying (1/5)..."]  # a line per retry


def test_every_seed_flag_refuses_what_numpy_cannot_take(tmp_path):
    """A negative or huge --seed is one argparse line (exit 2) before any work, in every script."""
    assert common.seed_value("0") == 0 and common.seed_value(str(common.MAX_SEED)) == common.MAX_SEED
    for bad in ["-1", str(common.MAX_SEED + 1), "x"]:
        with pytest.raises(argparse.ArgumentTypeError, match="a seed is a whole number"):
            common.seed_value(bad)
    for script in sorted(ROOT.glob("*.py")):  # every --seed flag parses with seed_value
        for line in script.read_text().splitlines():
            if 'add_argument("--seed"' in line:
                assert "type=common.seed_value" in line, (script.name, line)
    for argv, flag in [(["train_cvae.py", "--seed", "-1"], "--seed"),  # its flags come from training.py
                       (["build_features.py", "--spread-seeds", "1,x"], "--spread-seeds")]:
        r = run_script(ROOT / argv[0], *argv[1:], cwd=tmp_path)
        assert r.returncode == 2 and f"argument {flag}: a seed is a whole number" in r.stderr, r.stderr[-500:]
