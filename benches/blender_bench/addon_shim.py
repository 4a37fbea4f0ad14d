# blender-session-mcp benchmark: run the UNMODIFIED classic BlenderMCP addon (ahujasid's
# addon.py) inside a background Blender, so the bench measures the addon users really run.
#
#     blender -b --python addon_shim.py -- --addon /path/to/addon.py --port 9876 [--parent-pid PID]
#
# The addon cannot run under `blender -b` by itself, for two reasons this shim works around
# without touching the addon's code:
#   1. its BlenderMCPServer.start() refuses in background mode: the shim does what start()
#      does past that check (bind, listen, start the addon's own _server_loop thread) on the
#      addon's own BlenderMCPServer instance;
#   2. it runs every command through bpy.app.timers.register(...), and timers never fire in
#      background mode: the shim replaces bpy.app.timers.register with a queue that this
#      script's main-thread loop pumps, calling each callback on the main thread as Blender
#      would (a callback returning a number is called again after that many seconds).
# Everything else (reading requests in 8 KiB chunks, json.loads of the buffer, the command
# handlers, the replies) is the addon's own code. If `requests` is not importable (Debian's
# Blender has no such module), a stub stands in: only the addon's online asset commands use
# it, and the bench never calls them.
#
# Stop it with SIGTERM or SIGINT.

import heapq
import importlib.util
import itertools
import os
import queue
import signal
import socket
import sys
import threading
import time
import types

import bpy


def log(message):
    sys.__stderr__.write("[addon-shim] %s\n" % message)
    sys.__stderr__.flush()


def parse_args():
    args = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    opts = {"addon": None, "port": 9876, "parent": None}
    for flag, key, kind in (("--addon", "addon", str), ("--port", "port", int),
                            ("--parent-pid", "parent", int)):
        if flag in args and args.index(flag) + 1 < len(args):
            opts[key] = kind(args[args.index(flag) + 1])
    if not opts["addon"]:
        log("usage: blender -b --python addon_shim.py -- --addon ADDON.py --port PORT")
        sys.exit(2)
    return opts


def stub_requests():
    try:
        import requests  # noqa: F401
    except ImportError:
        stub = types.ModuleType("requests")

        def unavailable(*_args, **_kwargs):
            raise RuntimeError("requests is not installed in this Blender (benchmark shim)")

        stub.utils = types.SimpleNamespace(default_headers=lambda: {})
        stub.get = stub.post = stub.request = unavailable
        stub.exceptions = types.SimpleNamespace(RequestException=Exception)
        sys.modules["requests"] = stub


# bpy.app.timers stand-in: (due time, sequence, callback) on a heap, fed through a queue.
INCOMING = queue.Queue()
SEQUENCE = itertools.count()


def timers_register(function, first_interval=0.0, persistent=False):
    INCOMING.put((time.monotonic() + float(first_interval or 0.0), next(SEQUENCE), function))


def main():
    opts = parse_args()
    stub_requests()
    bpy.app.timers.register = timers_register

    spec = importlib.util.spec_from_file_location("blender_mcp_addon", opts["addon"])
    addon = importlib.util.module_from_spec(spec)
    sys.modules["blender_mcp_addon"] = addon
    spec.loader.exec_module(addon)
    # The addon's own register(): properties, panels, operators; its auto-start prints that
    # it cannot start in background mode.
    addon.register()
    server = getattr(bpy.types, "blendermcp_server", None) or addon.BlenderMCPServer()
    bpy.types.blendermcp_server = server

    # What BlenderMCPServer.start() does after its background-mode check.
    server.host, server.port = "127.0.0.1", opts["port"]
    server.running = True
    server.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        server.socket.bind((server.host, server.port))
    except OSError as e:
        log("cannot listen on %s:%d: %s" % (server.host, server.port, e))
        sys.exit(2)
    server.socket.listen(1)
    server.server_thread = threading.Thread(target=server._server_loop, daemon=True)
    server.server_thread.start()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log("unmodified addon %s serving on %s:%d (Blender %s)"
        % (opts["addon"], server.host, server.port, bpy.app.version_string))

    due = []
    while not stop.is_set():
        timeout = 0.1
        if due:
            timeout = max(0.0, min(timeout, due[0][0] - time.monotonic()))
        try:
            heapq.heappush(due, INCOMING.get(timeout=timeout))
            while True:
                heapq.heappush(due, INCOMING.get_nowait())
        except queue.Empty:
            pass
        now = time.monotonic()
        while due and due[0][0] <= now:
            _, _, function = heapq.heappop(due)
            again = function()
            if isinstance(again, (int, float)) and not isinstance(again, bool):
                timers_register(function, again)
        if opts["parent"] is not None and os.getppid() != opts["parent"]:
            log("parent process %d is gone: stopping" % opts["parent"])
            stop.set()
    server.stop()


main()
