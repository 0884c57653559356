"""The tests' way of running a script (conftest.run_script): it must behave as `python SCRIPT ARGS` does."""
import textwrap

from conftest import PRELOADED_MODULES, run_script

PROBE = textwrap.dedent('''
    import os, sys
    print(__name__, sys.argv[1:], os.getcwd(), os.environ.get("PROBE_VALUE"), sys.path[0] == os.path.dirname(__file__))
    print("common" in sys.modules, PRELOADED_MODULES[0] in sys.modules)
    print("to stderr", file=sys.stderr)
    sys.exit(int(sys.argv[1]))
''')


def test_a_script_runs_as_its_own_main_with_its_args_cwd_env_and_exit_status(tmp_path):
    script = tmp_path / "probe.py"
    script.write_text(f"PRELOADED_MODULES = {PRELOADED_MODULES!r}\n" + PROBE)
    r = run_script(script, "3", "x y", cwd=tmp_path, env={"PROBE_VALUE": "v"})
    assert r.returncode == 3 and r.stderr == "to stderr\n"
    first, second = r.stdout.splitlines()
    assert first == f"__main__ ['3', 'x y'] {tmp_path} v True"
    # the pipeline's modules are imported anew by each script; the slow third-party ones are already there
    assert second == "False True"


def test_an_uncaught_exception_prints_its_traceback_and_exits_1(tmp_path):
    script = tmp_path / "boom.py"
    script.write_text("raise ValueError('boom')\n")
    r = run_script(script, cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" in r.stderr and r.stderr.strip().endswith("ValueError: boom")


def test_a_message_exit_is_status_1_and_the_end_runs_threads_then_atexit(tmp_path):
    """The child skips the interpreter's module teardown but not what comes before it: a non-daemon
    thread is waited for (this one waits for the main thread to finish first), then atexit runs, then
    what is buffered is written."""
    script = tmp_path / "ending.py"
    script.write_text(textwrap.dedent('''
        import atexit, sys, threading
        atexit.register(lambda: print("atexit", flush=False))
        main = threading.main_thread()
        threading.Thread(target=lambda: (main.join(), print("thread after main", flush=False))).start()
        sys.stdout.write("buffered ")
        sys.exit("stopped: a message")
    '''))
    r = run_script(script, cwd=tmp_path)
    assert r.returncode == 1 and r.stderr == "stopped: a message\n"
    assert r.stdout == "buffered thread after main\natexit\n"
    script.write_text("import sys; sys.exit(258)\n")  # as the interpreter: the status modulo 256
    assert run_script(script, cwd=tmp_path).returncode == 2
