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
from conftest import run_script  # noqa: E402

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


def test_the_forkserver_preloads_what_a_main_script_imported_and_nothing_for_a_main_without_a_file(monkeypatch):
    import types
    script = types.ModuleType("__main__")
    script.__file__ = "/somewhere/build_dataset.py"
    script.np, script.Path, script.answer = np, Path, 42  # a module, a class from one, a plain value
    monkeypatch.setitem(sys.modules, "__main__", script)
    assert demo_corpus.main_script_imports() == ["numpy", "pathlib"]
    del script.__file__  # python -c, a notebook, pytest-xdist's worker
    assert demo_corpus.main_script_imports() == []


def test_command_line(tmp_path):
    out = tmp_path / "cli"
    r = run_script("demo_corpus.py", "--out", out, "--songs", "1", "--seed", "9",
                   "--set", "min_seconds=20", "--set", "max_seconds=21")
    assert r.returncode == 0, r.stderr
    assert "1 songs" in r.stdout
    assert len(list(out.glob("*.wav"))) == 1 and (out / "manifest.csv").exists()
    bad = run_script("demo_corpus.py", "--out", out, "--set", "bogus=1")
    assert bad.returncode == 1 and bad.stderr.startswith("error: unknown demo setting")


# -----------------------------------------------------------------------------
# numba's cache (issue 10, section 1): warmed and checked before any pool starts
def test_generate_demo_warms_numba_before_its_pool(tmp_path, monkeypatch):
    import multiprocessing.context
    events = []

    class Stop(Exception):
        pass

    def fake_pool(self, *args, **kwargs):
        events.append("pool")
        raise Stop

    monkeypatch.setattr(common, "warm_numba", lambda **kw: events.append("warm"))
    monkeypatch.setattr(multiprocessing.context.BaseContext, "Pool", fake_pool)
    with pytest.raises(Stop):
        demo_corpus.generate_demo(tmp_path / "d", **dict(TINY, n_songs=1, workers=1))
    assert events == ["warm", "pool"]


TINY_GUFUNC = '''
import numpy as np
from numba import guvectorize


@guvectorize(["void(float64[:], float64[:])"], "(n)->(n)", nopython=True, cache=True)
def double(x, out):
    for i in range(x.shape[0]):
        out[i] = 2.0 * x[i]


def workout():
    assert double(np.arange(3.0)).tolist() == [0.0, 2.0, 4.0]
'''


def test_warm_numba_mends_a_gufunc_cache_that_segfaults(tmp_path):
    """numba issue 10128 made by hand: a gufunc's kernel file from one process, its loop from another."""
    import os
    import shutil
    import subprocess
    (tmp_path / "tinygufunc.py").write_text(TINY_GUFUNC)

    def run(cache, code):
        env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
        return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=120)

    good, other = tmp_path / "cache_a", tmp_path / "cache_b"
    assert run(good, "import tinygufunc; tinygufunc.workout()").returncode == 0
    # the second process compiles two other functions first: its symbols get other ABI tags
    r = run(other, "from numba import njit; njit(lambda x: x + 1)(1); njit(lambda x: x * 2)(1.0); "
                   "import tinygufunc; tinygufunc.workout()")
    assert r.returncode == 0, r.stderr
    kernels = [p for p in other.rglob("tinygufunc.double-*.nbc")]
    assert kernels
    for k in kernels:
        shutil.copy(k, next(good.rglob(k.name)))
    crashed = run(good, "import tinygufunc; tinygufunc.workout()")
    assert crashed.returncode != 0  # -11: the segfault that `make test` hit
    mended = run(good, "import common; common.warm_numba(workout='tinygufunc.workout'); print('warm')")
    assert mended.returncode == 0, mended.stderr
    assert "dropped the mismatched files of tinygufunc.double" in mended.stderr
    assert run(good, "import tinygufunc; tinygufunc.workout()").returncode == 0


def test_warm_numba_compiles_librosas_lazy_functions_in_the_parent():
    import os
    import subprocess
    code = ("import common, os\n"
            "import librosa.sequence as seq, librosa.core.spectrum as spec, librosa.filters as filt\n"
            "lazy = [seq._viterbi, getattr(spec, '__overlap_add'), getattr(filt, '__window_ss_fill')]\n"
            "assert not any(f.signatures for f in lazy)\n"
            "common.warm_numba(in_process=True)\n"
            "assert all(f.signatures for f in lazy), [f.signatures for f in lazy]\n"
            "print(os.environ['NUMBA_CACHE_DIR'])\n")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}  # the default, not the caller's
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    # a cache of this project's own, keyed on the versions, never librosa's __pycache__
    assert r.stdout.strip().startswith(str(common.NUMBA_CACHE_ROOT)) and "numba" in r.stdout and "librosa" in r.stdout


# -----------------------------------------------------------------------------
# real voices (issue 8, section 5): --voices DIR of <language>/<speaker>/*.wav|flac, tested with
# synthesized "voices" only
def fake_voice(path, seconds, sr, channels, f0, seed):
    """A vowel-like buzz on f0 with a strong 10 kHz whistle (above the band-limit) and a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = sum(0.3 / h * np.sin(2 * np.pi * h * f0 * t) for h in (1, 2, 3)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    if sr > 20000:
        y = y + 0.3 * np.sin(2 * np.pi * 10000 * t)
    y = np.concatenate([np.zeros(sr // 10), y + 0.01 * rng.standard_normal(len(t))])  # leading silence
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.stack([y] * channels, axis=1).astype(np.float32), sr)
    return path


@pytest.fixture(scope="module")
def voices(tmp_path_factory):
    root = tmp_path_factory.mktemp("voices")
    fake_voice(root / "english" / "alice" / "a1.wav", 1.5, 44100, 2, 210.0, 1)
    fake_voice(root / "english" / "alice" / "a2.flac", 1.0, 44100, 1, 230.0, 2)
    fake_voice(root / "english" / "bob" / "b1.wav", 2.0, 22050, 1, 120.0, 3)
    fake_voice(root / "bangla" / "chandra" / "c1.wav", 1.2, 16000, 1, 190.0, 4)
    fake_voice(root / "bangla" / "dipu" / "d1.flac", 1.8, 48000, 2, 130.0, 5)
    (root / "bangla" / "dipu" / "broken.wav").write_bytes(b"RIFF not really a wav")
    (root / "bangla" / "dipu" / "notes.txt").write_text("ignored")
    return root


VOICE_TINY = dict(n_songs=4, seed=3, workers=2, min_seconds=20.0, max_seconds=22.0)


def test_voices_corpus_languages_speakers_and_files(voices, tmp_path, capfd):
    out = tmp_path / "vc"
    manifest = demo_corpus.generate_demo(out, voices=voices, **VOICE_TINY)
    assert "skipped voice" in capfd.readouterr().err  # broken.wav: one line, not a crash
    df = pd.read_csv(manifest)
    assert list(df.columns) == demo_corpus.MANIFEST_COLUMNS
    assert sorted(df.language) == ["bangla", "bangla", "english", "english"]
    speakers = {"english": {"alice", "bob"}, "bangla": {"chandra", "dipu"}}
    for row in df.itertuples():
        assert row.artist in speakers[row.language]  # each speaker is an artist of one language
        info = sf.info(out / row.path)
        assert info.samplerate == 22050 and info.channels == 1
        assert 20.0 <= info.duration <= 22.0
        y, _ = sf.read(out / row.path, dtype="float32")
        assert 20 * np.log10(np.sqrt(np.mean(y ** 2))) == pytest.approx(demo_corpus.MIX_RMS_DBFS, abs=0.2)
    assert df.groupby("language").artist.nunique().tolist() == [2, 2]  # speakers cycle
    assert df.song_id.str.fullmatch(r"demo_\d{4}").all()
    # the same command again: nothing to do, same manifest; another voices folder is refused
    before = manifest.read_bytes()
    demo_corpus.generate_demo(out, voices=voices, **VOICE_TINY)
    assert manifest.read_bytes() == before
    with pytest.raises(common.PipelineError, match="another seed"):
        demo_corpus.generate_demo(out, **VOICE_TINY)


def test_voice_vocal_is_band_limited_normalized_and_seeded(voices):
    settings = demo_corpus.resolve_settings({"min_seconds": 20.0, "max_seconds": 22.0})
    found = demo_corpus.find_voices(voices)
    songs = demo_corpus.plan_voice_corpus(4, 3, settings, found)
    song = next(s for s in songs if s["artist"] == "alice" or s["artist"] == "dipu")  # 44.1 / 48 kHz sources
    mix, vocal, acc = demo_corpus.render_song(song, settings, stems=True)
    level = 20 * np.log10(np.sqrt(np.mean(vocal.astype(np.float64) ** 2) / np.mean(acc.astype(np.float64) ** 2)))
    assert level == pytest.approx(song["vocal_level_db"], abs=0.01)
    spec = np.abs(np.fft.rfft(vocal.astype(np.float64))) ** 2
    hz = np.fft.rfftfreq(len(vocal), 1 / common.SAMPLE_RATE)
    assert spec[hz > demo_corpus.VOICE_BANDLIMIT_HZ + 300].sum() < 1e-3 * spec.sum()  # the 10 kHz whistle is gone
    assert np.abs(vocal).max() > 0 and np.count_nonzero(np.abs(vocal) > 1e-4) > 0.3 * len(vocal)  # fills the song
    _, vocal2, _ = demo_corpus.render_song(song, settings, stems=True)
    np.testing.assert_array_equal(vocal, vocal2)
    # every utterance leaves load_voice at the same RMS, whatever its source's rate and level
    for f in found["english"]["alice"] + found["bangla"]["chandra"]:
        y = demo_corpus.load_voice(f)
        assert 20 * np.log10(np.sqrt(np.mean(y.astype(np.float64) ** 2))) == pytest.approx(
            demo_corpus.VOICE_RMS_DBFS, abs=0.01)
    # the synthesized demo's song i and the voice corpus's song i share the accompaniment draws
    plain = demo_corpus.plan_corpus(4, 3, settings)
    keys = ["style", "tempo_bpm", "vocal_level_db", "key", "duration_s"]
    assert [[s[k] for k in keys] for s in plain] == [[s[k] for k in keys] for s in songs]


def test_no_vocals_is_the_same_accompaniment_alone(voices):
    settings = demo_corpus.resolve_settings({"min_seconds": 20.0, "max_seconds": 22.0})
    muted = demo_corpus.resolve_settings({"min_seconds": 20.0, "max_seconds": 22.0, "vocals": False})
    found = demo_corpus.find_voices(voices)
    song = demo_corpus.plan_voice_corpus(2, 5, settings, found)[0]
    song_m = demo_corpus.plan_voice_corpus(2, 5, muted, found)[0]
    assert song_m["vocal_level_db"] == float("-inf")
    same = lambda d: repr({k: v for k, v in d.items() if k != "vocal_level_db"})  # noqa: E731  (nan == nan)
    assert same(song_m) == same(song)
    _, _, acc = demo_corpus.render_song(song, settings, stems=True)
    mix_m, vocal_m, acc_m = demo_corpus.render_song(song_m, muted, stems=True)
    assert not vocal_m.any()
    ratio = np.sqrt(np.mean(acc_m.astype(np.float64) ** 2) / np.mean(acc.astype(np.float64) ** 2))
    np.testing.assert_allclose(acc_m, acc * ratio, atol=1e-5)
    np.testing.assert_allclose(mix_m, acc_m, atol=1e-6)
    # the synthesized demo's plan mutes the same way
    assert all(s["vocal_level_db"] == float("-inf") for s in demo_corpus.plan_corpus(4, 3, muted))


def test_voices_folder_errors_are_one_line(tmp_path):
    with pytest.raises(common.PipelineError, match="not found"):
        demo_corpus.find_voices(tmp_path / "missing")
    (tmp_path / "empty" / "english" / "nobody").mkdir(parents=True)
    with pytest.raises(common.PipelineError, match="<language>/<speaker>"):
        demo_corpus.find_voices(tmp_path / "empty")


def test_voices_command_line(voices, tmp_path):
    out = tmp_path / "cli"
    r = run_script("demo_corpus.py", "--out", out, "--songs", "2", "--seed", "9",
                   "--voices", voices, "--no-vocals", "--set", "min_seconds=20", "--set", "max_seconds=21")
    assert r.returncode == 0, r.stderr
    df = pd.read_csv(out / "manifest.csv")
    assert sorted(df.language) == ["bangla", "english"] and np.isneginf(df.vocal_level_db).all()


# -----------------------------------------------------------------------------
# more languages and unequal sizes (--languages, --language-shares)
def test_share_counts_and_the_default_plan_unchanged():
    assert demo_corpus.share_counts(130, (5, 3, 2, 2, 1)).tolist() == [50, 30, 20, 20, 10]
    assert demo_corpus.share_counts(10, (1, 1, 1)).tolist() == [4, 3, 3]  # the remainder goes to the first
    assert demo_corpus.share_counts(7, (0.5, 2)).tolist() == [1, 6]
    # naming the default languages (and no shares) draws the very same songs as saying nothing
    plain = demo_corpus.plan_corpus(12, 3, demo_corpus.resolve_settings(SETTINGS))
    named = demo_corpus.plan_corpus(12, 3, demo_corpus.resolve_settings(
        dict(SETTINGS, languages="english,bangla")))
    assert repr(plain) == repr(named)
    shared = pd.DataFrame(demo_corpus.plan_corpus(12, 3, demo_corpus.resolve_settings(
        dict(SETTINGS, languages=("bangla", "english"), language_shares=(1, 2)))))
    assert shared.language.value_counts().to_dict() == {"english": 8, "bangla": 4}
    with pytest.raises(common.PipelineError, match="3 language_shares for 2 languages"):
        demo_corpus.plan_corpus(6, 3, demo_corpus.resolve_settings(dict(SETTINGS, language_shares=(1, 2, 3))))
    with pytest.raises(common.PipelineError, match="positive"):
        demo_corpus.resolve_settings(dict(SETTINGS, language_shares=(1, 0)))
    with pytest.raises(common.PipelineError, match="knows no language 'klingon'"):
        demo_corpus.plan_corpus(4, 3, demo_corpus.resolve_settings(dict(SETTINGS, languages=("english", "klingon"))))


def test_voices_languages_subset_and_shares(voices):
    settings = demo_corpus.resolve_settings(dict(VOICE_TINY_SETTINGS, language_shares=(2, 1)))
    found = demo_corpus.find_voices(voices)
    df = pd.DataFrame(demo_corpus.plan_voice_corpus(9, 3, settings, found))  # sorted folders: bangla, english
    assert df.language.value_counts().to_dict() == {"bangla": 6, "english": 3}
    only = demo_corpus.resolve_settings(dict(VOICE_TINY_SETTINGS, languages=("english",)))
    assert set(pd.DataFrame(demo_corpus.plan_voice_corpus(4, 3, only, found)).language) == {"english"}
    # the default (every folder, equal turns) is the plan the voices corpus always had
    assert repr(demo_corpus.plan_voice_corpus(4, 3, demo_corpus.resolve_settings(VOICE_TINY_SETTINGS), found)) == \
        repr(demo_corpus.plan_voice_corpus(4, 3, demo_corpus.resolve_settings(
            dict(VOICE_TINY_SETTINGS, languages="bangla,english")), found))
    with pytest.raises(common.PipelineError, match="voices folder has no hindi"):
        demo_corpus.plan_voice_corpus(4, 3, demo_corpus.resolve_settings(
            dict(VOICE_TINY_SETTINGS, languages="english,hindi")), found)


VOICE_TINY_SETTINGS = dict(min_seconds=20.0, max_seconds=22.0)


def test_a_new_language_sings_its_own_words_in_its_script():
    pytest.importorskip("wordfreq")
    settings = demo_corpus.resolve_settings(dict(VOICE_TINY_SETTINGS, languages="english,hindi,spanish",
                                                 language_shares="3,2,1"))
    df = pd.DataFrame(demo_corpus.plan_corpus(12, 3, settings))
    assert df.language.value_counts().to_dict() == {"english": 6, "hindi": 4, "spanish": 2}
    assert df.groupby("language").artist.nunique().to_dict() == {"english": 6, "hindi": 4, "spanish": 2}
    assert df[df.language == "hindi"].espeak_voice.str.startswith("hi+").all()
    hindi = demo_corpus.language_words("hindi")
    assert len(hindi) == demo_corpus.LYRIC_WORDS and {demo_corpus.word_script(w) for w in hindi} == {"DEVANAGARI"}
    assert {demo_corpus.word_script(w) for w in demo_corpus.language_words("spanish")} == {"LATIN"}
    assert all(demo_corpus.word_script(w) == "DEVANAGARI" for t in df[df.language == "hindi"].title for w in t.split())
    with pytest.raises(common.PipelineError, match="no word list for 'te'"):  # not the nearest language's words
        demo_corpus.language_words("telugu")
    song = next(s for s in demo_corpus.plan_corpus(12, 3, settings) if s["language"] == "hindi")
    _, vocal, _ = demo_corpus.render_song(song, settings, stems=True)
    assert np.count_nonzero(np.abs(vocal) > 1e-3) > 0.2 * len(vocal)  # espeak-ng sang the Hindi words


def test_language_flags_on_the_command_line(tmp_path, monkeypatch):
    seen = {}

    def fake_generate(out, **kwargs):  # what main hands the generator, without rendering anything
        seen.update(kwargs)
        raise common.PipelineError("stop")

    monkeypatch.setattr(demo_corpus, "generate_demo", fake_generate)
    monkeypatch.setattr(sys, "argv", ["demo_corpus.py", "--out", str(tmp_path), "--languages", "english,hindi",
                                      "--language-shares", "2,1", "--songs", "9"])
    with pytest.raises(common.PipelineError, match="stop"):
        demo_corpus.main()
    assert seen["languages"] == "english,hindi" and seen["language_shares"] == "2,1" and seen["n_songs"] == 9
    settings = demo_corpus.resolve_settings({k: seen[k] for k in ("languages", "language_shares")})
    assert settings["languages"] == ("english", "hindi") and settings["language_shares"] == (2.0, 1.0)
    with pytest.raises(common.PipelineError, match="language_shares must be positive"):
        demo_corpus.resolve_settings({"language_shares": "2,0"})
