"""The process the tests' scripts are forked from (conftest.run_script): it imports the slow third-party
libraries once, then runs each pipeline script it is sent in a child of its own, as `python SCRIPT ARGS` would.

    python tests/script_server.py SOCKET OWNER_PID torch sklearn.cluster ...   # the modules to import first

It listens on the Unix socket SOCKET, prints "ready" once, and serves every test process that connects
(one server for all of pytest-xdist's workers: its imports took 8 s of CPU, once per worker before); it
exits when the process OWNER_PID (the pytest run) is gone. One request per line, as JSON: [script, args,
env, cwd, stdout_file, stderr_file]. For each it answers two lines: the child's pid at once, then, when
the child ends, its exit status as `python SCRIPT` gives it. Requests on different connections run side
by side; one loop, no threads, so forking is safe.

Why: torch, scikit-learn, pandas and matplotlib take about 5 s to import, on every script a test runs
(the end-to-end chain runs eleven). A child is a fresh process as far as the pipeline's own modules go:
none is imported here, so each script imports them anew, and nothing passes from one script to the next
but files. Only third-party modules whose import reads no variable the tests set may be preloaded (not
numba: it reads NUMBA_CACHE_DIR, which numba_cache sets, when it is imported).

A child ends as the interpreter ends a script (its exit status and message, then the wait for its
non-daemon threads, then the atexit functions, then the flush of stdout and stderr) but skips the
teardown of every module that follows: with these libraries loaded that teardown took 2 s a script
(a fork of this server that only exits: 2.1 s, against 0.05 s with os._exit). What it skips would only
close what a script left open, and the pipeline writes every output through a `with`
(common.atomic_path).
"""
import atexit
import json
import os
import runpy
import selectors
import socket
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


def run_child(request, server_fds):
    """In the forked child: become `python script args` run in cwd with exactly env; never returns."""
    script, args, env, cwd, out, err = request
    for fd in server_fds:  # the server's sockets, pidfds and selector: not for a script's children to hold
        os.close(fd)
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


def send(conn, number):
    try:
        conn.sendall(f"{number}\n".encode())
    except OSError:  # that test process is gone; its connection closes on the next read
        pass


def serve(path, owner):
    """Serve requests on the socket `path` until the process `owner` is gone."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen()
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, "accept")
    pidfds = hasattr(os, "pidfd_open")  # Linux: the owner and the children are watched as pidfds; else polled
    if pidfds:
        sel.register(os.pidfd_open(owner), selectors.EVENT_READ, "owner")
    buffers = {}  # connection -> bytes received but not yet a whole line
    print("ready", flush=True)
    devnull = os.open(os.devnull, os.O_WRONLY)  # the starter may stop reading: nothing more goes to its pipe
    os.dup2(devnull, 1)  # (fd 1, not sys.stdout: a child's sys.stdout must stay the one on fd 1)
    os.close(devnull)
    over = False
    while not over:
        events = sel.select(timeout=None if pidfds else 1.0)
        over = not pidfds and not _alive(owner)
        for key, _ in events:
            if key.data == "owner":
                over = True
            elif key.data == "accept":
                conn, _ = listener.accept()
                buffers[conn] = b""
                sel.register(conn, selectors.EVENT_READ, "request")
            elif key.data == "request":
                conn = key.fileobj
                data = conn.recv(65536)
                if not data:  # that test process is done
                    sel.unregister(conn)
                    del buffers[conn]
                    conn.close()
                    continue
                buffers[conn] += data
                while b"\n" in buffers[conn]:
                    line, buffers[conn] = buffers[conn].split(b"\n", 1)
                    server_fds = [k.fd for k in sel.get_map().values()] + [sel.fileno()]
                    pid = os.fork()
                    if pid == 0:
                        run_child(json.loads(line), server_fds)
                    send(conn, pid)
                    if pidfds:
                        sel.register(os.pidfd_open(pid), selectors.EVENT_READ, ("child", pid, conn))
                    else:  # wait for it here (that test process waits for it anyway; the others wait too)
                        send(conn, os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
            else:  # a child ended: its status to the connection that asked for it
                _, pid, conn = key.data
                sel.unregister(key.fileobj)
                os.close(key.fileobj)
                _, status = os.waitpid(pid, 0)
                if conn in buffers:
                    send(conn, os.waitstatus_to_exitcode(status))
    for leftover in (path, os.path.splitext(path)[0] + ".lock"):  # the run is over: its socket and lock go too
        if os.path.exists(leftover):
            os.unlink(leftover)


def _alive(pid):
    """common._process_alive without its zombie check (not imported: this server imports none of the
    pipeline's modules; the owner's parent, pytest's caller, reaps it at once)."""
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


if __name__ == "__main__":
    socket_path, owner_pid, preload = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    for name in preload:
        __import__(name)
    serve(socket_path, owner_pid)
    os._exit(0)  # the run is over: no 2 s teardown of the preloaded libraries either
