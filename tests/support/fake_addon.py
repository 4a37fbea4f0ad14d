#!/usr/bin/env python3
"""A fake BlenderMCP addon for tests, faithful to ../shared/PROTOCOL.md.

It behaves like the classic addon's socket server:
  * TCP on 127.0.0.1, many connections, one thread each, keep-alive;
  * reads 8192-byte chunks, appends them to a buffer and tries
    json.loads(buffer.decode("utf-8")) after each chunk; only JSONDecodeError means "wait
    for more", so a multi-byte character split across a read boundary kills the connection
    (UnicodeDecodeError), exactly like the real addon;
  * executes one command at a time across all connections (Blender's main thread);
  * replies json.dumps(response) (ASCII) with no framing;
  * both error layers: {"status": "error", "message"} and in-band {"error"} / {"succeed": false}.

`execute_code` really runs the Python it receives with exec(code, {"bpy": bpy}) against a
small mock `bpy` (mock_bpy.py: objects, selection, materials, a few operators), capturing stdout, and a
raised exception becomes "Code execution error: <msg>" as in the addon. The mock has what
the server's helper module uses, faithful to Blender 3.4 (../shared/BLENDER_NOTES.md):
bpy.app.handlers (depsgraph_update_post, undo_post, redo_post, load_post, persistent),
bpy.types.Object/Collection/Scene, as_pointer(), collections, view_layer.objects.selected,
and view_layer.update(), which calls the depsgraph handlers only when something was
changed since the last update, with the updates Blender lists: a rename names the Object, a
selection or active change only the Scene, an addition the Scene, the new Object and the
Collection, a removal the Scene and the Collection; view_layer.depsgraph.id_type_updated(T)
says whether a datablock of type T ('OBJECT', 'SCENE', 'COLLECTION') was changed since the
last evaluation, without evaluating (measured on 3.4 and 5.3: a rename or move flags OBJECT,
a selection or active change SCENE, an addition OBJECT and COLLECTION, a removal all three);
operators (bpy.ops) evaluate when they finish, as in background Blender; scene.objects.keys()
lists the names.

Events are printed to stdout as JSON lines for the test harness:
  listening{port}, accepted{conn}, request{conn,type,bytes,digest},
  executed{conn,type,seq,digest,stdout?}, closed{conn}, error{conn,message},
  fault{conn,kind,type?}, armed{kind}. `seq` counts executions across all connections (the main thread's order);
  `stdout` (execute_code only, when it succeeded) is the first 200 characters of what the
  code printed, as captured for the reply.

Options: --port N (0 = any free port), --protocol N (0 = classic addon without ping /
get_addon_info; >= 5 adds them; >= 14 adds screenshot return_data).

Fault injection: each line written to the fake's stdin is a JSON fault spec, acknowledged
with an `armed` event. A spec applies to the next `count` (default 1) requests matching its
optional `type`; connection faults apply to the next accepted connections. Kinds:
  delay {seconds}          hold the "main thread" this long before executing
  slow_reply {seconds}     execute, then wait this long before replying
  close_before_reply       execute, then close without replying (killed mid-command)
  close_after_read         read the request, close without executing
  reset_after_read         read the request, abort the connection with a TCP RST
  never_answer             read the request, never execute nor reply, keep the connection
  byte_by_byte             execute, reply one byte per send
  garbage {bytes}          reply with these bytes instead of JSON
  trailing                 execute, reply, then send a second, unrequested JSON reply
  oversize {size}          reply with a success result string of `size` characters
  close_on_accept          (connection fault) close the next accepted connection at once
  sync                     not a fault: answered with a `synced` event (the harness's barrier)
Every applied fault is reported as a `fault` event. EOF on stdin ends the fake.
"""
import argparse
import base64
import hashlib
import io
import json
import os
import socket
import struct
import sys
import time
import threading
import traceback
import types
from contextlib import redirect_stdout

from mock_bpy import bpy  # the mock bpy, installed as sys.modules["bpy"]; next to this file

EVENT_LOCK = threading.Lock()
MAIN_THREAD = threading.Lock()  # commands run one at a time, like Blender's main thread
REAL_STDOUT = sys.stdout
SEQ = [0]
FAULTS_LOCK = threading.Lock()
FAULTS = []  # armed fault specs, each {"kind", "type"?, "count"}
CONNECTION_FAULTS = ("close_on_accept",)
STDOUT_LOGGED = 200  # characters of an execute_code's stdout copied into its `executed` event


def take_fault(conn_level, cmd_type=None):
    """Pop (consume one use of) the first armed fault matching, or return None."""
    with FAULTS_LOCK:
        for spec in FAULTS:
            if (spec["kind"] in CONNECTION_FAULTS) != conn_level:
                continue
            if not conn_level and spec.get("type") not in (None, cmd_type):
                continue
            spec["count"] -= 1
            if spec["count"] <= 0:
                FAULTS.remove(spec)
            return dict(spec)
    return None

# A 1x1 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def event(name, **fields):
    fields["event"] = name
    with EVENT_LOCK:
        REAL_STDOUT.write(json.dumps(fields) + "\n")
        REAL_STDOUT.flush()


# ---------------------------------------------------------------- addon handlers
class Addon:
    def __init__(self, protocol):
        self.protocol = protocol

    def get_scene_info(self):
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

    def get_object_info(self, name):
        obj = bpy.data.objects.get(name)
        if not obj:
            raise ValueError(f"Object not found: {name}")
        info = {
            "name": obj.name,
            "type": obj.type,
            "location": list(obj.location),
            "rotation": list(obj.rotation_euler),
            "scale": list(obj.scale),
            "visible": obj.visible_get(),
            "materials": [s.material.name for s in obj.material_slots if s.material],
        }
        if obj.type == "MESH" and obj.data:
            x, y, z = obj.location
            info["world_bounding_box"] = [[x - 1, y - 1, z - 1], [x + 1, y + 1, z + 1]]
            info["mesh"] = {
                "vertices": len(obj.data.vertices),
                "edges": len(obj.data.edges),
                "polygons": len(obj.data.polygons),
            }
        return info

    def execute_code(self, code):
        try:
            namespace = {"bpy": bpy}
            capture_buffer = io.StringIO()
            with redirect_stdout(capture_buffer):
                exec(code, namespace)
            return {"executed": True, "result": capture_buffer.getvalue()}
        except Exception as e:
            raise Exception(f"Code execution error: {str(e)}")

    def get_viewport_screenshot(self, max_size=800, filepath=None, format="png", return_data=False):
        if return_data and self.protocol >= 14:
            return {"success": True, "width": 1, "height": 1, "image_data": base64.b64encode(PNG).decode("ascii")}
        if not filepath:
            return {"error": "No filepath provided"}
        with open(filepath, "wb") as f:
            f.write(PNG)
        return {"success": True, "width": 1, "height": 1, "filepath": filepath}

    def get_polyhaven_status(self):
        return {"enabled": False, "message": "PolyHaven integration is disabled."}

    def get_polyhaven_categories(self, asset_type):
        # The real handler catches request failures and reports them in-band.
        return {"error": "API request failed: no network in this test"}

    def import_generated_asset(self, name, task_uuid=None, request_id=None):
        return {"succeed": False, "error": "Generation task not found"}

    def ping(self):
        return {"pong": True}

    def get_addon_info(self):
        return {
            "name": "fake-addon",
            "addon_version": "0.0-test",
            "protocol_version": self.protocol,
            "capabilities": ["ping", "get_addon_info"] + (["screenshot_return_data"] if self.protocol >= 14 else []),
            "blender_version": "3.4.1 (fake)",
        }

    def execute_command(self, command):
        try:
            cmd_type = command.get("type")
            params = command.get("params", {})
            handlers = {
                "get_scene_info": self.get_scene_info,
                "get_object_info": self.get_object_info,
                "execute_code": self.execute_code,
                "get_viewport_screenshot": self.get_viewport_screenshot,
                "get_polyhaven_status": self.get_polyhaven_status,
                "get_polyhaven_categories": self.get_polyhaven_categories,
                "import_generated_asset": self.import_generated_asset,
            }
            if self.protocol >= 5:
                handlers["ping"] = self.ping
                handlers["get_addon_info"] = self.get_addon_info
            handler = handlers.get(cmd_type)
            if handler:
                try:
                    return {"status": "success", "result": handler(**params)}
                except Exception as e:
                    return {"status": "error", "message": str(e)}
            return {"status": "error", "message": f"Unknown command type: {cmd_type}"}
        except Exception as e:
            return {"status": "error", "message": str(e)}


def printed(command, response):
    """For the event log only: the start of what an execute_code command printed (the stdout
    the addon captured and returns), so a test can tell which code ran when."""
    result = response.get("result") if response.get("status") == "success" else None
    if command.get("type") != "execute_code" or not isinstance(result, dict):
        return {}
    return {"stdout": str(result.get("result", ""))[:STDOUT_LOGGED]}


def send_reply(client, payload, fault):
    kind = fault["kind"] if fault else None
    if kind == "byte_by_byte":
        for i in range(len(payload)):
            client.sendall(payload[i:i + 1])
            time.sleep(0.0005)
    elif kind == "trailing":
        client.sendall(payload + json.dumps({"status": "success", "result": "unrequested"}).encode())
    else:
        client.sendall(payload)


def handle_client(addon, client, conn_id):
    buffer = b""
    try:
        while True:
            data = client.recv(8192)
            if not data:
                break
            buffer += data
            try:
                command = json.loads(buffer.decode("utf-8"))
            except json.JSONDecodeError:
                continue  # incomplete: wait for more (a UnicodeDecodeError escapes, as in the addon)
            digest = hashlib.sha1(buffer).hexdigest()[:16]
            event("request", conn=conn_id, type=command.get("type"), bytes=len(buffer), digest=digest)
            buffer = b""
            fault = take_fault(False, command.get("type"))
            kind = fault["kind"] if fault else None
            if fault:
                event("fault", conn=conn_id, kind=kind, type=command.get("type"))
            if kind == "close_after_read":
                break
            if kind == "reset_after_read":
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                break
            if kind == "never_answer":
                continue
            if kind == "garbage":
                client.sendall(fault.get("bytes", "HTTP/1.1 400 Bad Request\r\n\r\n").encode())
                continue
            with MAIN_THREAD:
                if kind == "delay":
                    time.sleep(float(fault.get("seconds", 1)))
                SEQ[0] += 1
                seq = SEQ[0]
                if kind == "oversize":
                    response = {"status": "success", "result": "x" * int(fault.get("size", 1 << 20))}
                else:
                    response = addon.execute_command(command)
                event("executed", conn=conn_id, type=command.get("type"), seq=seq, digest=digest, **printed(command, response))
            if kind == "close_before_reply":
                break
            if kind == "slow_reply":
                time.sleep(float(fault.get("seconds", 1)))
            try:
                send_reply(client, json.dumps(response).encode("utf-8"), fault)
            except OSError:
                pass
    except Exception as e:  # the addon prints and drops the client
        event("error", conn=conn_id, message="%s: %s" % (type(e).__name__, e))
    finally:
        try:
            client.close()
        except OSError:
            pass
        event("closed", conn=conn_id)


def read_control():
    """Fault specs arrive as JSON lines on stdin. The test harness holds stdin open; when it
    goes away (even by crashing), so do we."""
    try:
        for line in sys.stdin:
            line = line.strip()
            if not line:
                continue
            spec = json.loads(line)
            if spec.get("kind") == "sync":
                # A barrier, not a fault: every event logged before this line was read is
                # already on stdout, so the harness sees the log up to "now".
                event("synced")
                continue
            spec["count"] = int(spec.get("count", 1))
            with FAULTS_LOCK:
                FAULTS.append(spec)
            event("armed", kind=spec["kind"])
    finally:
        os._exit(0)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--protocol", type=int, default=0)
    args = parser.parse_args()
    if not sys.stdin.isatty():
        threading.Thread(target=read_control, daemon=True).start()
    addon = Addon(args.protocol)
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", args.port))
    server.listen(128)
    event("listening", port=server.getsockname()[1])
    conn_id = 0
    while True:
        client, _addr = server.accept()
        conn_id += 1
        event("accepted", conn=conn_id)
        if take_fault(True):
            event("fault", conn=conn_id, kind="close_on_accept")
            client.close()
            event("closed", conn=conn_id)
            continue
        threading.Thread(target=handle_client, args=(addon, client, conn_id), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
