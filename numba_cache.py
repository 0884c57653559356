"""numba's on-disk cache for librosa, kept sound: a folder per version key, mended and checked
before any process pool starts (numba issue 10128).

    import common            # imports this module first, so NUMBA_CACHE_DIR is set before librosa is
    common.warm_numba()      # in a stage's parent process, before its pool starts

Nothing here is a script. librosa compiles its numba functions (cache=True) into an on-disk cache.
numba writes a @guvectorize function's two cache files with no lock between them, so pool workers
compiling the same one at once can leave a mismatched pair that segfaults every later process that
calls it. So: every run uses a cache folder of its own, keyed on the versions (a cache an older run
corrupted, such as librosa's __pycache__, is never read), and warm_numba() mends, fills and checks
it before any pool starts; the workers then only read it. Importing this module sets
NUMBA_CACHE_DIR, which must happen before librosa is imported: common imports it, and every script
imports common before librosa.
"""
import contextlib
import os
import sys
from pathlib import Path

import numpy as np

# ----------------------------------------------------------------------------
NUMBA_CACHE_ROOT = Path(__file__).resolve().parent / ".numba_cache"  # one subfolder per version key
NUMBA_WORKOUT = "numba_cache._numba_workout"  # module.function that calls every numba function we use
_NUMBA_WARM = set()  # workouts this process has already checked


def _numba_cache_key():
    """py3.11-numba0.68.1-librosa0.11.0: a cache is reused only by the same versions."""
    from importlib import metadata
    versions = []
    for dist in ("numba", "librosa"):
        try:
            versions.append(f"{dist}{metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{dist}-none")
    return "-".join([f"py{sys.version_info[0]}.{sys.version_info[1]}"] + versions)


if not os.environ.get("NUMBA_CACHE_DIR"):  # a folder the user chose is respected
    os.environ["NUMBA_CACHE_DIR"] = str(NUMBA_CACHE_ROOT / _numba_cache_key())
    if "numba" in sys.modules:  # numba read its settings at import; functions defined from now on see it
        sys.modules["numba"].core.config.reload_config()


def _numba_workout():
    """Call, on tiny inputs, every numba-compiled librosa function the pipeline and its tests reach.

    Importing librosa.core, .util, .beat compiles (or loads) their @guvectorize functions; the calls
    compile the lazy @jit ones and run every gufunc, which is where a mismatched cache pair crashes.
    Both float dtypes: a cache file holds one signature. The asserts catch a cache that loads but
    computes garbage.
    """
    import librosa
    import librosa.beat  # noqa: F401  (lazy submodules: import them so their gufuncs compile here)
    import librosa.effects  # noqa: F401
    import librosa.feature  # noqa: F401
    import librosa.onset  # noqa: F401
    import librosa.sequence  # noqa: F401
    from common import SAMPLE_RATE
    sr = SAMPLE_RATE
    t = np.arange(sr) / sr
    for dtype in (np.float32, np.float64):
        y = (0.3 * np.sin(2 * np.pi * 220 * t) * (1.2 + np.sin(2 * np.pi * 4 * t))).astype(dtype)
        f0 = librosa.yin(y, fmin=80, fmax=800, sr=sr)  # parabolic interpolation gufunc, localmin
        if not abs(float(np.median(f0)) - 220.0) < 5.0:
            raise RuntimeError(f"librosa.yin found {np.median(f0):.1f} Hz in a 220 Hz tone")
        librosa.pyin(y[: sr // 4], fmin=80, fmax=800, sr=sr)  # + viterbi
        m = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=13)
        librosa.feature.delta(m)
        librosa.feature.stack_memory(m, n_steps=2)
        librosa.zero_crossings(y)
        librosa.feature.zero_crossing_rate(y)
        env = librosa.onset.onset_strength(y=y, sr=sr)
        librosa.onset.onset_detect(onset_envelope=env, sr=sr)  # peak_pick
        librosa.beat.beat_track(onset_envelope=env.astype(dtype), sr=sr)  # the beat gufuncs
        librosa.effects.trim(y)
        librosa.effects.split(y)
        librosa.effects.time_stretch(y[: sr // 4], rate=1.25)  # istft: overlap-add, window sum-square
        librosa.lpc(y[:2048], order=4)
        librosa.sequence.dtw(m[:, :8], m[:, :8])
    for dtype in (np.int16, np.int32, np.int64):
        x = np.array([0, 2, 1, 3, 0], dtype)
        if librosa.util.localmax(x).tolist() != [False, True, False, True, False]:
            raise RuntimeError("librosa.util.localmax gives a wrong answer")
        librosa.util.localmin(x)


def warm_numba(in_process=False, workout=NUMBA_WORKOUT):
    """Mend, fill and check numba's cache before any pool starts; call it in the parent, once per run.

    Every call first drops any gufunc whose two cache files disagree (milliseconds, no numba
    needed). The first time for a cache folder (or after it went bad), the workout runs in a subprocess: a
    crash there (a segfault from a corrupted cache) costs nothing but a rebuild of a folder we own.
    A stamp file then marks the folder as checked. The workers then only read the checked cache,
    each loading the functions it calls. With in_process=True the workout also runs here (loading
    every function, ~7 s on the 2-core machine, against ~0.3 s without), for forked workers to
    inherit them all.
    """
    import importlib
    import shutil
    import subprocess
    from common import PipelineError  # common imports this module at its top: not at ours
    if (workout, in_process) in _NUMBA_WARM or (workout, True) in _NUMBA_WARM:
        return
    cache = Path(os.environ.get("NUMBA_CACHE_DIR") or NUMBA_CACHE_ROOT / _numba_cache_key())
    ours = NUMBA_CACHE_ROOT in cache.parents
    cache.mkdir(parents=True, exist_ok=True)
    stamp = cache / f".checked-{_numba_cache_key()}-{workout}"
    module, function = workout.rsplit(".", 1)
    code = f"import importlib; importlib.import_module({module!r}).{function}()"
    with _locked(cache / ".lock"):  # two runs starting together do not compile side by side
        for name in _drop_mismatched_gufuncs(cache):  # cheap, every run: what a racing pool left
            print(f"numba's cache {cache}: dropped the mismatched files of {name} (numba issue 10128); "
                  "recompiling it", file=sys.stderr)
            stamp.unlink(missing_ok=True)  # recompiled below, here, before any worker needs it
        if not stamp.exists():
            for attempt in (1, 2):
                r = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent,
                                   capture_output=True, text=True)
                if r.returncode == 0:
                    break
                tail = (r.stderr.strip().splitlines() or ["no message"])[-1]
                why = "a segmentation fault" if r.returncode == -11 else f"exit {r.returncode}: {tail}"
                if not ours:
                    raise PipelineError(f"librosa's numba functions crash with the cache in NUMBA_CACHE_DIR="
                                        f"{cache} ({why}); empty that folder, or unset NUMBA_CACHE_DIR")
                if attempt == 2:
                    raise PipelineError(f"librosa's numba functions crash even with an empty cache ({why}); "
                                        "reinstall them: `pip install --force-reinstall -r requirements.txt`")
                print(f"numba's cache {cache} failed its check ({why}): rebuilding it", file=sys.stderr)
                for p in cache.iterdir():
                    if p.name != ".lock":
                        shutil.rmtree(p) if p.is_dir() else p.unlink()
            stamp.write_text("checked by numba_cache.warm_numba\n")
        if in_process:
            getattr(importlib.import_module(module), function)()
    _NUMBA_WARM.add((workout, in_process))


def _drop_mismatched_gufuncs(cache):
    """Delete the cache files of every @guvectorize function whose two files disagree; their names.

    A gufunc's kernel (<file>.<func>-<line>.pyXY.<n>.nbc) and its loop (guf-<same name>) are two
    files; the loop calls the kernel by a symbol name whose ABI tag (...B<k>v<number>...) depends on
    the compiling process's history. A loop that names a tag its kernel file lacks calls a null
    pointer: the segfault of numba issue 10128. Reading the bytes needs no numba and takes ms.
    """
    import re
    dropped = []
    for loop in sorted(Path(cache).glob("*/guf-*.nbc")):
        kernel = loop.with_name(loop.name[len("guf-"):])
        qualname = kernel.name.split("-")[0].split(".", 1)[-1]  # utils.__peak_pick -> __peak_pick
        tag = re.compile(rb"%d%sB\d+v(\d+)" % (len(qualname), re.escape(qualname.encode())))
        try:
            wanted = set(tag.findall(loop.read_bytes()))
            ok = kernel.exists() and wanted <= set(tag.findall(kernel.read_bytes()))
        except OSError:
            ok = False
        if not ok:
            stem = kernel.name.rsplit(".", 2)[0]  # pitch._pi_wrapper-430.py311
            for p in list(loop.parent.glob(f"{stem}.*")) + list(loop.parent.glob(f"guf-{stem}.*")):
                p.unlink(missing_ok=True)
            dropped.append(stem)
    return sorted(set(dropped))


@contextlib.contextmanager
def _locked(path):
    """An exclusive lock on `path` while the block runs (a no-op where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)

