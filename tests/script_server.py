"""The process the tests' scripts are forked from (conftest.run_script): it imports the slow third-party
libraries once, then runs each pipeline script it is sent in a child of its own, as `python SCRIPT ARGS` would.

    python tests/script_server.py torch sklearn.cluster ...   # the modules to import first

One request per line on stdin, as JSON: [script, args, env, cwd, stdout_file, stderr_file]. For each it
answers two lines on stdout: the child's pid, then its exit status as `python SCRIPT` gives it.

Why: torch, scikit-learn, pandas and matplotlib take about 5 s to import, on every script a test runs
(the end-to-end chain runs eleven). A child is a fresh process as far as the pipeline's own modules go:
none is imported here, so each script imports them anew, and nothing passes from one script to the next
but files. Only third-party modules whose import reads no variable the tests set may be preloaded (not
numba: it reads NUMBA_CACHE_DIR, which numba_cache sets, when it is imported).

A child ends as the interpreter ends a script (its exit status and message, then the wait for its
non-daemon threads, then the atexit functions, then the flush of stdout and stderr) but skips the
teardown of every module that follows: with these libraries loaded that teardown took 2 s a script,
a third of the test suite's CPU. What it skips would only close what a script left open, and the
pipeline writes every output through a `with` (common.atomic_path).
"""
import atexit
import json
import os
import runpy
import sys
import threading


def exit_status(code):
    """The exit status `python SCRIPT` gives for SystemExit(code), printing a message code as it does."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def run_as_main(script):
    """Run the script as __main__; its exit status, an uncaught exception's traceback printed first."""
    try:
        runpy.run_path(os.path.abspath(script), run_name="__main__")
    except SystemExit as e:
        return exit_status(e.code)
    except BaseException:
        sys.excepthook(*sys.exc_info())
        return 1
    return 0


def end(status):
    """What Py_FinalizeEx does first (threads joined, atexit run, streams flushed), then exit at once."""
    getattr(threading, "_shutdown", lambda: None)()  # non-daemon threads and thread pools' own exit hooks
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


for name in sys.argv[1:]:
    __import__(name)

for line in sys.stdin:
    script, args, env, cwd, out, err = json.loads(line)
    pid = os.fork()
    if pid == 0:  # the child: becomes `python script args` run in cwd with exactly env
        os.environ.clear()
        os.environ.update(env)
        os.chdir(cwd)
        for fd, path, flags in ((0, os.devnull, os.O_RDONLY), (1, out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                                (2, err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
            opened = os.open(path, flags)
            os.dup2(opened, fd)
            os.close(opened)
        sys.stdin = open(os.devnull)
        sys.argv = [script, *args]
        sys.path[0] = os.path.dirname(os.path.abspath(script))  # as `python script` sets it
        end(run_as_main(script))
    print(pid, flush=True)
    _, status = os.waitpid(pid, 0)
    print(os.waitstatus_to_exitcode(status), flush=True)
end(0)  # stdin closed: the tests are over (no 2 s teardown at the end of each pytest worker either)
