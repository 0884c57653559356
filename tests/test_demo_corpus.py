"""Tests of the offline demo corpus (demo_corpus.py): a tiny corpus of 4 short songs.

    python -m pytest -q tests/test_demo_corpus.py
"""
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import common  # noqa: E402
import demo_corpus  # noqa: E402

TINY = dict(n_songs=4, seed=3, workers=2, min_seconds=30.0, max_seconds=36.0)
SETTINGS = {k: v for k, v in TINY.items() if k not in ("n_songs", "seed", "workers")}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    manifest = demo_corpus.generate_demo(out, **TINY)
    return out, manifest


def test_files_rate_duration_and_manifest(corpus):
    out, manifest = corpus
    assert manifest == out / "manifest.csv"
    df = pd.read_csv(manifest)
    assert list(df.columns) == demo_corpus.MANIFEST_COLUMNS
    assert {"song_id", "language", "title", "artist", "path"} <= set(df.columns)
    assert len(df) == 4 and df.song_id.is_unique
    assert sorted(df.language) == ["bangla", "bangla", "english", "english"]
    for row in df.itertuples():
        info = sf.info(out / row.path)
        assert info.samplerate == common.SAMPLE_RATE == 22050
        assert info.channels == 1
        assert 30.0 <= info.duration <= 36.0
        assert abs(info.duration - row.duration_s) < 0.01
        y, _ = sf.read(out / row.path, dtype="float32")
        assert np.isfinite(y).all() and np.abs(y).max() <= 1.0
        assert 20 * np.log10(np.sqrt(np.mean(y ** 2))) == pytest.approx(demo_corpus.MIX_RMS_DBFS, abs=0.2)
    assert not list(out.glob(".*tmp*")), "a temporary file was left behind"


def test_same_seed_same_audio_other_seed_other_audio(corpus, tmp_path):
    out, _ = corpus
    again = demo_corpus.generate_demo(tmp_path / "again", **TINY)
    assert (tmp_path / "again" / "manifest.csv").read_bytes() == (out / "manifest.csv").read_bytes()
    for wav in sorted(out.glob("*.wav")):
        assert (again.parent / wav.name).read_bytes() == wav.read_bytes(), wav.name
    # another seed: other songs (plan only, no audio needed to see it)
    a = demo_corpus.plan_corpus(4, 3, demo_corpus.resolve_settings(SETTINGS))
    b = demo_corpus.plan_corpus(4, 4, demo_corpus.resolve_settings(SETTINGS))
    assert [s["duration_s"] for s in a] != [s["duration_s"] for s in b]


def test_resume_recreates_only_the_missing_song(corpus):
    out, manifest = corpus
    wavs = sorted(out.glob("*.wav"))
    victim = wavs[1]
    before = victim.read_bytes()
    manifest_before = manifest.read_bytes()
    stamps = {w.name: w.stat().st_mtime_ns for w in wavs if w != victim}
    victim.unlink()
    demo_corpus.generate_demo(out, **TINY)
    assert victim.read_bytes() == before
    assert {w.name: w.stat().st_mtime_ns for w in wavs if w != victim} == stamps
    assert manifest.read_bytes() == manifest_before
    # a folder made with another seed is not silently mixed with new songs
    with pytest.raises(common.PipelineError, match="another seed"):
        demo_corpus.generate_demo(out, **dict(TINY, seed=4))
    assert victim.read_bytes() == before


def test_espeak_sings_bengali_on_the_asked_pitch():
    import librosa
    tts = demo_corpus.engine()
    tts.set_voice("bn+f2")
    y = tts.say("আমি তোমাকে ভালোবাসি", hz=0, rate=140)
    assert len(y) > 0.5 * common.SAMPLE_RATE
    assert np.sqrt(np.mean(y ** 2)) > 0.01
    for hz in (140, 220):
        v = tts.say("আ", hz=hz, rate=80)
        f0 = librosa.yin(y=v, fmin=60, fmax=600, sr=common.SAMPLE_RATE)
        energy = librosa.feature.rms(y=v)[0][: len(f0)]
        assert np.median(f0[energy > 0.3 * energy.max()]) == pytest.approx(hz, rel=0.03)


def test_vocal_level_and_accompaniment_independent_of_language():
    settings = demo_corpus.resolve_settings(SETTINGS)
    song = demo_corpus.plan_corpus(2, 5, settings)[0]
    mix, vocal, acc = demo_corpus.render_song(song, settings, stems=True)
    level = 20 * np.log10(np.sqrt(np.mean(vocal.astype(np.float64) ** 2) / np.mean(acc.astype(np.float64) ** 2)))
    assert level == pytest.approx(song["vocal_level_db"], abs=0.01)
    # the same song sung in the other language: the accompaniment is unchanged up to the mix gain
    other = dict(song, language="bangla" if song["language"] == "english" else "english",
                 espeak_voice=("bn+" if song["language"] == "english" else "en-us+") + song["voice"],
                 title_words=["আমি"] if song["language"] == "english" else ["love"])
    _, vocal2, acc2 = demo_corpus.render_song(other, settings, stems=True)
    ratio = np.sqrt(np.mean(acc2.astype(np.float64) ** 2) / np.mean(acc.astype(np.float64) ** 2))
    np.testing.assert_allclose(acc2, acc * ratio, atol=1e-5)
    assert not np.allclose(vocal2[: len(vocal)], vocal, atol=1e-3)


def test_fair_artists_and_overrides():
    settings = demo_corpus.resolve_settings({})
    songs = demo_corpus.plan_corpus(demo_corpus.DEMO_SONGS, demo_corpus.DEMO_SEED, settings)
    df = pd.DataFrame(songs)
    assert (df.language.value_counts() == demo_corpus.DEMO_SONGS // 2).all()
    for lang in demo_corpus.LANGUAGES:
        assert df[df.language == lang].artist.nunique() == demo_corpus.ARTISTS_PER_LANGUAGE >= 8
    # the two languages get the same singer profiles (voice variant, pitch, speed)
    profiles = {lang: sorted(map(tuple, g[["artist", "voice", "pitch", "speed"]].drop_duplicates()
                                 .drop(columns="artist").values.tolist()))
                for lang, g in df.groupby("language")}
    assert profiles["english"] == profiles["bangla"]
    assert df.song_id.str.fullmatch(r"demo_\d{4}").all()
    more = pd.DataFrame(demo_corpus.plan_corpus(60, 1, demo_corpus.resolve_settings(
        {"artists_per_language": 10, "tempo_range": (60, 61)})))
    assert more.groupby("language").artist.nunique().tolist() == [10, 10]
    assert more.tempo_bpm.between(60, 61).all()
    with pytest.raises(common.PipelineError, match="unknown demo setting"):
        demo_corpus.resolve_settings({"no_such_setting": 1})


def test_command_line(tmp_path):
    import subprocess
    out = tmp_path / "cli"
    r = subprocess.run([sys.executable, "demo_corpus.py", "--out", str(out), "--songs", "1", "--seed", "9",
                        "--set", "min_seconds=20", "--set", "max_seconds=21"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "1 songs" in r.stdout
    assert len(list(out.glob("*.wav"))) == 1 and (out / "manifest.csv").exists()
    bad = subprocess.run([sys.executable, "demo_corpus.py", "--out", str(out), "--set", "bogus=1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and bad.stderr.startswith("error: unknown demo setting")
