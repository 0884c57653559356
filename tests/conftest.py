"""Shared test helpers: the repo root on sys.path, the pipeline's scripts run as a user runs them, and
synthesized audio files."""
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# the modules, longest first (seconds measured under `make test` on 2 cores), so that a parallel run
# (pytest-xdist, --dist loadscope --no-loadscope-reorder) neither begins the end-to-end chain after the
# short modules nor ends with one worker on a long module while the other waits (longest job first);
# a module not listed runs after these
LONGEST_MODULES_FIRST = ("test_end_to_end.py",  # ~90 s
                         "test_language_path.py", "test_analyze.py", "test_build_dataset.py",  # 35-55 s
                         "test_whisper.py", "test_demo_corpus.py", "test_train.py",  # 25-35 s
                         "test_language.py", "test_song_tasks.py", "test_models.py")  # 9-20 s


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_MODULES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the others keep their order


def pytest_configure(config):
    config.addinivalue_line("markers", "renders_figures: this test reads the PNGs, so they are rendered for it")


@pytest.fixture(autouse=True)
def figures_unrendered(request, monkeypatch):
    """Figures are built but not rendered (plots.UNRENDERED_FIGURES_ENV), in-process and in the scripts
    a test runs, unless the test is marked renders_figures: rendering the PNGs was most of the analysis
    tests' time, and only the tests that read a PNG need one. The file still appears (empty), so tests
    of which figures a run writes still hold. Module-scoped fixtures are set up before this: test_analyze's
    full_run renders every figure of the three analyze_*.py; test_end_to_end's chain, which draws the
    same kinds again, sets the variable for its scripts itself."""
    if request.node.get_closest_marker("renders_figures"):
        return
    import plots
    monkeypatch.setenv(plots.UNRENDERED_FIGURES_ENV, "1")


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


# imported once by tests/script_server.py, which forks the scripts a test runs, instead of by each script
# (~5 s of imports a script: the chain of test_end_to_end runs eleven). torch._dynamo: a trainer's first
# optimizer imports it (2-3 s)
PRELOADED_MODULES = ("torch", "torch._dynamo", "sklearn.cluster", "sklearn.decomposition", "sklearn.feature_extraction.text",
                     "sklearn.manifold", "sklearn.metrics", "sklearn.mixture", "sklearn.preprocessing",
                     "scipy.signal", "pandas", "matplotlib.pyplot", "seaborn", "tqdm")
SCRIPT_TIMEOUT_S = 600  # a script still running then is killed and its test fails
_ENV_AT_START = dict(os.environ)  # the server's own environment: before any test has changed it
_SCRIPT_SERVER = {}  # this test process's connection to the run's server: {"conn": socket, "answers": file}


def _run_owner():
    """The pytest run's process: pytest-xdist's controller for a worker (the workers' parent), else this one."""
    return os.getppid() if os.environ.get("PYTEST_XDIST_WORKER") else os.getpid()


def _script_server_paths():
    base = Path(tempfile.gettempdir()) / f"langclust-script-server-{_run_owner()}"
    return base.with_suffix(".sock"), base.with_suffix(".lock")


def _start_script_server(path):
    """Start tests/script_server.py on the socket `path`, for this run (its Popen: ready once it prints so)."""
    path.unlink(missing_ok=True)  # a run that was killed left it
    return subprocess.Popen([sys.executable, str(ROOT / "tests" / "script_server.py"), str(path), str(_run_owner()),
                             *PRELOADED_MODULES], cwd=ROOT, env=_ENV_AT_START, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, text=True)


def _wait_until_ready(proc):
    with proc.stdout:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"tests/script_server.py exited ({proc.wait()}); its error is above")


def pytest_sessionstart(session):
    """pytest-xdist's controller starts the run's script server at once, while its workers import and
    collect, holding the lock file until the server listens; a worker's first script waits on that lock."""
    if os.environ.get("PYTEST_XDIST_WORKER") or not getattr(session.config.option, "numprocesses", None):
        return  # one process (or a worker): the first script starts it
    sock, lock_path = _script_server_paths()
    lock = open(lock_path, "a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    proc = _start_script_server(sock)

    def release_when_ready():
        with lock:  # closing it releases the lock, ready or not (a worker then sees the error itself)
            try:
                _wait_until_ready(proc)
            except RuntimeError:
                pass
    threading.Thread(target=release_when_ready, daemon=True).start()


def _script_server():
    """This process's connection to the run's one script server, started by pytest-xdist's controller
    (pytest_sessionstart) or else by the first test that runs a script; the lock file keeps two test
    processes from both starting one, and a worker from connecting before it listens."""
    if "conn" not in _SCRIPT_SERVER:
        sock, lock_path = _script_server_paths()
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                conn.connect(str(sock))
            except OSError:  # none yet (or a dead run's socket)
                _wait_until_ready(_start_script_server(sock))
                conn.connect(str(sock))
        _SCRIPT_SERVER.update(conn=conn, answers=conn.makefile("r"))
    return _SCRIPT_SERVER["conn"], _SCRIPT_SERVER["answers"]


def _answer(answers):
    line = answers.readline()
    if not line:
        raise RuntimeError("tests/script_server.py exited; its error is above")
    return line


def pytest_sessionfinish(session):
    """The connection closes; the server itself exits when the run's process does."""
    if "conn" in _SCRIPT_SERVER:
        _SCRIPT_SERVER.pop("answers").close()
        _SCRIPT_SERVER.pop("conn").close()


def run_script(script, *args, env=None, cwd=ROOT):
    """Run one of the pipeline's scripts as a user would: `python SCRIPT ARGS` in its own process, in cwd,
    with this process's environment plus env; a subprocess.CompletedProcess (returncode, stdout, stderr:
    text). The process is forked from tests/script_server.py, with torch and the like already imported;
    the pipeline's modules are not."""
    conn, answers = _script_server()
    with tempfile.TemporaryDirectory() as tmp:
        out, err = Path(tmp, "stdout"), Path(tmp, "stderr")
        request = [str(script), [str(a) for a in args], {**os.environ, **(env or {})}, str(cwd), str(out), str(err)]
        conn.sendall((json.dumps(request) + "\n").encode())
        pid = int(_answer(answers))
        timer = threading.Timer(SCRIPT_TIMEOUT_S, os.kill, (pid, signal.SIGKILL))
        timer.start()
        try:
            code = int(_answer(answers))
        finally:
            timer.cancel()
        return subprocess.CompletedProcess([script, *args], code, out.read_text(), err.read_text())


def run_main_in_process(main, argv, capsys):
    """A script's command line in this process, as its `__main__` runs it (common.run_main):
    (exit status, stderr). For error exits only; run_script runs a script as its own process."""
    import common
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        common.run_main(lambda: main(argv))
    return e.value.code, capsys.readouterr().err


def run_script_ok(script, *args, env=None):
    """run_script in the repo root, asserting it succeeded; its stdout."""
    proc = run_script(script, *args, env=env)
    assert proc.returncode == 0, f"{script} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


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
