# blender-session-mcp — headless Blender-side server.
#
# Runs in either of two hosts:
#   * inside Blender in background mode:
#       blender -b [file.blend] --python headless_server.py -- [--host 127.0.0.1] [--port 9876]
#           [--parent-pid PID]   (stop when that process is no longer our parent)
#   * in a plain Python that has the `bpy` module (Blender as a Python module, e.g. PyPI's
#     `bpy` 5.x wheel; no Blender install needed), the arguments following the script:
#       python headless_server.py [--host H] [--port P] [--parent-pid PID] [--blend-file F]
#
# It speaks exactly the classic BlenderMCP addon protocol (TCP, one JSON object per request
# and per reply, no framing; {"type", "params"} -> {"status": "success", "result"} or
# {"status": "error", "message"}), with the same result shapes for get_scene_info,
# get_object_info and execute_code, plus `ping` and `get_addon_info`. Unlike the GUI addon
# it needs no bpy.app.timers: the main thread runs its own loop and executes one command at
# a time, while one thread per connection reads requests. It is also robust where the
# classic addon is not: a multi-byte character split across reads is simply waited for, and
# malformed JSON gets a status error instead of silence.
#
# Stop it with SIGTERM or SIGINT: connections are closed and Blender (or the Python) exits.

import base64
import ctypes
import io
import json
import os
import queue
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
from contextlib import redirect_stdout

import bpy

PROTOCOL_VERSION = 14
SERVER_NAME = "blender-session-mcp headless server"
SERVER_VERSION = "1"
CAPABILITIES = [
    "get_scene_info",
    "get_object_info",
    "execute_code",
    "get_viewport_screenshot",
    "screenshot_return_data",
    "ping",
    "get_addon_info",
    "cancel",
]

STOP = threading.Event()
JOBS = queue.Queue()
# The command the main thread is running, so that `cancel` (answered on its connection's own
# thread, never queued behind it) can stop it: an exception raised asynchronously in the
# main thread at its next Python instruction. A script blocked inside one long C call (a
# render, a sleep) stops when that call returns.
RUNNING_LOCK = threading.Lock()
RUNNING = {"slot": None}
MAIN_THREAD_ID = threading.get_ident()


class Cancelled(BaseException):
    """Raised in the main thread to stop the running command."""
STATS_LOCK = threading.Lock()
STATS = {"clients": 0, "connections_total": 0, "commands": 0}


def log(message):
    # stderr: stdout is captured by execute_code (redirect_stdout is process-wide).
    sys.__stderr__.write("[bsm-server] %s\n" % message)
    sys.__stderr__.flush()


def script_args(argv):
    """This script's own arguments. Under the Blender executable they follow `--` (Blender
    reads everything before it); in a plain Python that imports `bpy` (Blender as a module:
    `bpy.app.binary_path` is empty) they are everything after the script's path."""
    if "--" in argv:
        return argv[argv.index("--") + 1:]
    if not bpy.app.binary_path:
        return argv[1:]
    return []


def parse_args(argv):
    args = script_args(argv)
    host = os.environ.get("BSM_HOST", "127.0.0.1")
    port = int(os.environ.get("BSM_PORT", "9876"))
    parent = None
    blend_file = None
    i = 0
    while i < len(args):
        if args[i] == "--host" and i + 1 < len(args):
            host = args[i + 1]
            i += 2
        elif args[i] == "--port" and i + 1 < len(args):
            port = int(args[i + 1])
            i += 2
        elif args[i] == "--parent-pid" and i + 1 < len(args):
            parent = int(args[i + 1])
            i += 2
        elif args[i] == "--blend-file" and i + 1 < len(args):
            blend_file = args[i + 1]
            i += 2
        else:
            i += 1
    return host, port, parent, blend_file


# ------------------------------------------------------------------ framing
class RequestScanner:
    """Finds the end of the first JSON object in a byte stream, one byte scanned once."""

    def __init__(self):
        self.buf = bytearray()
        self.reset()

    def reset(self):
        self.pos = 0
        self.depth = 0
        self.started = False
        self.in_string = False
        self.escaped = False

    def feed(self, data):
        """Append data; return a list of (request_or_None, error_or_None) found."""
        self.buf += data
        out = []
        while True:
            item = self._scan()
            if item is None:
                return out
            out.append(item)

    def _scan(self):
        buf = self.buf
        i = self.pos
        n = len(buf)
        while i < n:
            b = buf[i]
            i += 1
            if self.in_string:
                if self.escaped:
                    self.escaped = False
                elif b == 0x5C:  # backslash
                    self.escaped = True
                elif b == 0x22:  # quote
                    self.in_string = False
                continue
            if not self.started:
                if b in (0x20, 0x09, 0x0A, 0x0D):
                    continue
                if b != 0x7B:  # '{'
                    # Not a request: report it and drop everything buffered.
                    del self.buf[:]
                    self.reset()
                    return (None, "malformed request: expected a JSON object")
                self.started = True
                self.depth = 1
                continue
            if b == 0x22:
                self.in_string = True
            elif b in (0x7B, 0x5B):
                self.depth += 1
            elif b in (0x7D, 0x5D):
                self.depth -= 1
                if self.depth == 0:
                    raw = bytes(buf[:i])
                    del self.buf[:i]
                    self.reset()
                    try:
                        return (json.loads(raw.decode("utf-8")), None)
                    except (ValueError, UnicodeDecodeError) as e:
                        return (None, "malformed request: %s" % e)
        self.pos = i
        return None


# ------------------------------------------------------------------ handlers
def get_scene_info():
    scene_info = {
        "name": bpy.context.scene.name,
        "object_count": len(bpy.context.scene.objects),
        "objects": [],
        "materials_count": len(bpy.data.materials),
    }
    for i, obj in enumerate(bpy.context.scene.objects):
        if i >= 10:
            break
        scene_info["objects"].append({
            "name": obj.name,
            "type": obj.type,
            "location": [round(float(obj.location.x), 2), round(float(obj.location.y), 2), round(float(obj.location.z), 2)],
        })
    return scene_info


def get_object_info(name):
    obj = bpy.data.objects.get(name)
    if not obj:
        raise ValueError("Object not found: %s" % name)
    info = {
        "name": obj.name,
        "type": obj.type,
        "location": [obj.location.x, obj.location.y, obj.location.z],
        "rotation": [obj.rotation_euler.x, obj.rotation_euler.y, obj.rotation_euler.z],
        "scale": [obj.scale.x, obj.scale.y, obj.scale.z],
        "visible": obj.visible_get(),
        "materials": [s.material.name for s in obj.material_slots if s.material],
    }
    if obj.type == "MESH":
        corners = [obj.matrix_world @ __import__("mathutils").Vector(c) for c in obj.bound_box]
        info["world_bounding_box"] = [
            [min(c[k] for c in corners) for k in range(3)],
            [max(c[k] for c in corners) for k in range(3)],
        ]
        if obj.data:
            info["mesh"] = {
                "vertices": len(obj.data.vertices),
                "edges": len(obj.data.edges),
                "polygons": len(obj.data.polygons),
            }
    return info


def execute_code(code):
    try:
        namespace = {"bpy": bpy}
        capture_buffer = io.StringIO()
        with redirect_stdout(capture_buffer):
            exec(code, namespace)
        return {"executed": True, "result": capture_buffer.getvalue()}
    except Exception as e:
        raise Exception("Code execution error: %s" % e)


def _render_still(out, size):
    """Render the scene camera to `out` (PNG), longest side `size`; returns (width, height)."""
    scene = bpy.context.scene
    render = scene.render
    saved = (render.engine, render.resolution_x, render.resolution_y,
             render.resolution_percentage, render.filepath, render.image_settings.file_format)
    aspect = render.resolution_x / max(render.resolution_y, 1)
    errors = []
    try:
        if aspect >= 1:
            render.resolution_x, render.resolution_y = size, max(1, int(size / aspect))
        else:
            render.resolution_x, render.resolution_y = max(1, int(size * aspect)), size
        render.resolution_percentage = 100
        render.image_settings.file_format = "PNG"
        render.filepath = out
        # Cycles on the CPU works without any display; Workbench is the fallback.
        for engine in ("CYCLES", "BLENDER_WORKBENCH"):
            try:
                render.engine = engine
                if engine == "CYCLES":
                    scene.cycles.device = "CPU"
                    scene.cycles.samples = 8
                    scene.cycles.use_denoising = False
                bpy.ops.render.render(write_still=True)
                if os.path.exists(out):
                    return render.resolution_x, render.resolution_y
                errors.append("%s: no image written" % engine)
            except Exception as e:
                errors.append("%s: %s" % (engine, e))
    finally:
        (render.engine, render.resolution_x, render.resolution_y, render.resolution_percentage,
         render.filepath, render.image_settings.file_format) = saved
    raise RuntimeError("Cannot take a screenshot in background mode: rendering failed (%s)" % "; ".join(errors))


def get_viewport_screenshot(max_size=800, filepath=None, format="png", return_data=False):
    # Background mode has no viewport: render the scene's camera on the CPU instead.
    if bpy.context.scene.camera is None:
        raise ValueError("Cannot take a screenshot in background mode: the scene has no camera to render from. Add one (bpy.ops.object.camera_add()) and set bpy.context.scene.camera.")
    out = filepath or os.path.join(tempfile.gettempdir(), "bsm-shot-%d-%d.png" % (os.getpid(), time.time_ns()))
    width, height = _render_still(out, max(16, int(max_size)))
    result = {"success": True, "width": width, "height": height, "filepath": out}
    if return_data:
        with open(out, "rb") as f:
            result["image_data"] = base64.b64encode(f.read()).decode("ascii")
        if not filepath:
            os.remove(out)
            del result["filepath"]
    return result


def ping():
    return {"pong": True}


def get_addon_info():
    with STATS_LOCK:
        stats = dict(STATS)
    return {
        "name": SERVER_NAME,
        "addon_version": SERVER_VERSION,
        "protocol_version": PROTOCOL_VERSION,
        "capabilities": CAPABILITIES,
        "blender_version": bpy.app.version_string,
        "background": bpy.app.background,
        "clients": stats["clients"],
        "connections_total": stats["connections_total"],
        "commands": stats["commands"],
    }


HANDLERS = {
    "get_scene_info": get_scene_info,
    "get_object_info": get_object_info,
    "execute_code": execute_code,
    "get_viewport_screenshot": get_viewport_screenshot,
    "ping": ping,
    "get_addon_info": get_addon_info,
}


def cancel_running():
    """Stop the running command, if any; returns whether one was running."""
    with RUNNING_LOCK:
        if RUNNING["slot"] is None:
            return False
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(MAIN_THREAD_ID), ctypes.py_object(Cancelled))
        return True


def execute_command(command):
    if not isinstance(command, dict):
        return {"status": "error", "message": "malformed request: expected a JSON object"}
    cmd_type = command.get("type")
    params = command.get("params") or {}
    handler = HANDLERS.get(cmd_type)
    if handler is None:
        return {"status": "error", "message": "Unknown command type: %s" % cmd_type}
    if not isinstance(params, dict):
        return {"status": "error", "message": "params must be an object"}
    try:
        return {"status": "success", "result": handler(**params)}
    except Exception as e:
        traceback.print_exc(file=sys.__stderr__)
        return {"status": "error", "message": str(e)}


# ------------------------------------------------------------------ network
def client_thread(client, address):
    with STATS_LOCK:
        STATS["clients"] += 1
        STATS["connections_total"] += 1
    log("Connected to client: %s" % (address,))
    scanner = RequestScanner()
    try:
        while not STOP.is_set():
            try:
                data = client.recv(8192)
            except OSError:
                break
            if not data:
                break
            for request, error in scanner.feed(data):
                if error is not None:
                    reply = {"status": "error", "message": error}
                    client.sendall(json.dumps(reply).encode("ascii"))
                    continue
                if isinstance(request, dict) and request.get("type") == "cancel":
                    stopped = cancel_running()
                    reply = {"status": "success", "result": {"cancelled": stopped}}
                    client.sendall(json.dumps(reply).encode("ascii"))
                    continue
                # Hand the command to the main thread and wait: one request at a time per
                # connection, so replies keep the order of requests.
                slot = {"request": request, "reply": None, "done": threading.Event()}
                JOBS.put(slot)
                while not slot["done"].wait(0.1):
                    if STOP.is_set():
                        return
                reply = dict(slot["reply"])
                # Tells blender-session-mcp that this server stops a command on `cancel`; the
                # classic addon's clients ignore the extra key.
                reply["can_cancel"] = True
                client.sendall(json.dumps(reply).encode("ascii"))
    except OSError:
        pass
    finally:
        try:
            client.close()
        except OSError:
            pass
        with STATS_LOCK:
            STATS["clients"] -= 1
        log("Client disconnected: %s" % (address,))


def accept_loop(server):
    while not STOP.is_set():
        try:
            client, address = server.accept()
        except socket.timeout:
            continue
        except OSError:
            break
        client.settimeout(None)
        threading.Thread(target=client_thread, args=(client, address), daemon=True).start()


def main():
    host, port, parent, blend_file = parse_args(sys.argv)
    if blend_file:
        # The Blender executable opens a .blend given on its command line; the bpy module
        # has no command line of its own, so the file is opened here.
        try:
            bpy.ops.wm.open_mainfile(filepath=blend_file)
        except Exception as e:
            log("cannot open %s: %s" % (blend_file, e))
            sys.exit(2)
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        server.bind((host, port))
    except OSError as e:
        log("cannot listen on %s:%d: %s" % (host, port, e))
        sys.exit(2)
    server.listen(64)
    server.settimeout(0.2)

    def stop(signum, _frame):
        log("signal %d: stopping" % signum)
        STOP.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threading.Thread(target=accept_loop, args=(server,), daemon=True).start()
    log("BlenderMCP-compatible server listening on %s:%d (Blender %s, background=%s)"
        % (host, port, bpy.app.version_string, bpy.app.background))
    # The main-thread loop: every command from every connection runs here, one at a time.
    while not STOP.is_set():
        try:
            slot = JOBS.get(timeout=0.1)
        except queue.Empty:
            # Started by blender-session-mcp: never outlive it (even if it was killed).
            if parent is not None and os.getppid() != parent:
                log("parent process %d is gone: stopping" % parent)
                STOP.set()
            continue
        try:
            run_job(slot)
        except Cancelled:
            # A cancel that arrived as its command was ending: nothing left to stop, but the
            # connection's thread still gets its reply.
            if not slot["done"].is_set():
                slot["reply"] = slot["reply"] or {
                    "status": "error", "message": "Code execution error: cancelled by the client"}
                slot["done"].set()
    server.close()
    log("stopped")


def run_job(slot):
    """Run one command on the main thread and hand its reply to the connection's thread."""
    with STATS_LOCK:
        STATS["commands"] += 1
    try:
        with RUNNING_LOCK:
            RUNNING["slot"] = slot
        try:
            reply = execute_command(slot["request"])
        finally:
            with RUNNING_LOCK:
                RUNNING["slot"] = None
    except Cancelled:
        reply = {"status": "error", "message": "Code execution error: cancelled by the client"}
    slot["reply"] = reply
    slot["done"].set()

main()
