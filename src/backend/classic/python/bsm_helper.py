# blender-session-mcp's helper module, installed once into the Blender process as
# sys.modules["_bsm_helper_<version>"] (the version is a hash of this file, so another build
# of the server installs its own module beside this one) by one execute_code request
# (src/backend/classic/script.rs builds it), its entry point `call` bound to the same name
# in `builtins`, and afterwards called with a one-line request of one name and one string:
#
#     _bsm_helper_<version>("r NONCE TRACK EPOCH SEQ CODE_B64")    run(): user code + cursor
#     _bsm_helper_<version>("s NONCE TRACK EPOCH SEQ QUERY_B64")   scene(): get_scene_info
#
# (TRACK 1 or 0, EPOCH "-" for none.) Blender compiles that line in 19 us where the former
# `import sys` / `sys.modules.get` / conditional call took 56 (Blender 3.4.1, perf_counter
# over 3 000 compiles); a Blender without the builtin (restarted, or another version only)
# fails the line with a NameError for that name before anything of it runs.
#
# It runs the user's code exactly as the addon would (a fresh namespace holding only `bpy`,
# stdout captured by the addon's own redirect_stdout), keeps the stdout printed before an
# exception and the full traceback, and writes its machine-readable answer between two
# nonce markers the server strips.
#
# The change journal (State below) makes state tracking cost O(changes), and it never makes
# Blender evaluate its depsgraph. Two sources, both O(1) when nothing changed:
#   - the depsgraph's own "updated since the last evaluation" flags per datablock type
#     (Depsgraph.id_type_updated: OBJECT, COLLECTION, SCENE), read after the user's code
#     without evaluating anything (4-10 us each, Blender 3.4.1 and bpy 5.3.0);
#   - `depsgraph_update_post`, which fires when something does evaluate (the GUI's redraw,
#     an operator, a render, the user's own view_layer.update()) and names what changed,
#     before the evaluation clears those flags.
# Forcing the evaluation instead (view_layer.update() after each command) was measured at
# 50 003 objects (one mesh shared; Blender 3.4.1 / bpy 5.3.0): nothing changed 0.003 ms,
# one object moved or renamed 0.2-0.6 s, selection changed 1.3-5.4 s, one object added or
# removed 9-15 s (5.x lists every object). So, after the user's code:
#   nothing changed (no flag, no handler call): the active object is read (O(1)): tens of
#     microseconds per call whatever the scene size (see run()).
#   a handler named objects (move / rename seen by an evaluation): a rename is found by its
#     pointer in `names` (pointer -> name): O(objects touched).
#   SCENE flag or a Scene update (selection, active): the selection is re-read
#     (view_layer.objects.selected: 0.003-0.16 ms at 50 000 objects, a C walk).
#   OBJECT or COLLECTION flag with no evaluation since (a rename, move, add, remove or link
#     made by plain bpy.data code, here or through another connection): the scene's names
#     are listed in C (scene.objects.keys(): 8-17 ms at 50 000) and compared with the model;
#     only when they differ are the objects walked ({pointer: name}: 60-67 ms) and diffed,
#     renames paired by pointer. The flags stay set until something evaluates the depsgraph,
#     so in background mode that name listing is paid by each command after such a change
#     until then (an operator call or view_layer.update() in the user's code clears it).
#   a handler saw a Collection update: the same name comparison, then a walk if they differ.
# Each change is one journal entry ("+", name) / ("-", name) / ("~", old, new); a session
# sends its cursor (epoch, seq) and gets the entries after it in order, or the full state
# when the cursor is lost (another epoch: Blender restarted or the helper was reinstalled;
# a cursor older than the bounded journal).

import base64
import fnmatch
import itertools
import json
import re
import sys
import traceback
import uuid
from collections import deque

import bpy

JOURNAL_MAX = 100000
SELECTED_SAMPLE = 100
COLLECTIONS_SAMPLE = 100


class State:
    """The journal and the scene model it is kept against, shared by every connection."""

    def __init__(self):
        self.epoch = uuid.uuid4().hex
        self.seq = 0
        self.journal = deque()  # (seq, op) with op ("+", name) | ("-", name) | ("~", old, new)
        self.floor = 0  # a cursor below this seq lost entries: it gets the full state
        self.walked = False  # the first walk fills the model without journal entries
        self.scene_ptr = None
        self.names = {}  # pointer -> name, in scene order
        self.objects = {}  # pointer -> the Object (valid until the next walk)
        self.types = {}  # pointer -> the object's type (fixed for an object's life)
        self.by_type = {}  # type -> how many objects
        self.name_set = set()
        self.active = None
        self.selected = ()
        self.sel_seq = 0  # seq of the last selection change
        # Set by the handlers between syncs.
        self.touched = {}  # pointer -> Object named by a depsgraph update
        self.collections_dirty = True
        self.scene_dirty = True
        self.rescan = True

    def push(self, op):
        self.seq += 1
        self.journal.append((self.seq, op))
        if len(self.journal) > JOURNAL_MAX:
            self.floor = self.journal.popleft()[0]


S = State()


def _on_depsgraph(scene, depsgraph):
    Object, Collection, Scene = bpy.types.Object, bpy.types.Collection, bpy.types.Scene
    touched = S.touched
    for update in depsgraph.updates:
        data = update.id
        if isinstance(data, Object):
            if not S.collections_dirty:
                original = data.original
                touched[original.as_pointer()] = original
        elif isinstance(data, Collection):
            S.collections_dirty = True
            touched.clear()
        elif isinstance(data, Scene):
            S.scene_dirty = True


def _on_reload(*_args):
    # Undo, redo and file loads replace datablocks: pointers and held objects are stale.
    S.rescan = True
    S.touched.clear()


_on_depsgraph._bsm_helper = True
_on_reload._bsm_helper = True


def call(spec):
    """The one-line request's entry point: "OP NONCE TRACK EPOCH SEQ DATA" (see the top)."""
    op, nonce, track, epoch, seq, data = spec.split(" ", 5)
    track, epoch, seq = track == "1", "" if epoch == "-" else epoch, int(seq)
    if op == "r":
        run(data, nonce, track, epoch, seq)
    elif op == "s":
        scene(nonce, base64.b64decode(data).decode("utf-8"), track, epoch, seq)
    else:
        raise ValueError("unknown helper operation %r" % op)


def install():
    """Register the handlers (replacing those of an earlier install of any version)."""
    handlers = bpy.app.handlers
    for name, fn in (("depsgraph_update_post", _on_depsgraph), ("undo_post", _on_reload),
                     ("redo_post", _on_reload), ("load_post", _on_reload)):
        lst = getattr(handlers, name, None)
        if lst is None:
            continue
        for old in [h for h in lst if getattr(h, "_bsm_helper", False)]:
            lst.remove(old)
        lst.append(handlers.persistent(fn) if hasattr(handlers, "persistent") else fn)


def _walk(scene):
    """Diff the scene's objects with the last walk (a name that left and one that came
    under the same pointer is a rename); rebuild the pointer map."""
    names, objects, kinds, by_type = {}, {}, {}, {}
    for obj in scene.objects:
        ptr = obj.as_pointer()
        names[ptr] = obj.name
        objects[ptr] = obj
        t = kinds[ptr] = obj.type
        by_type[t] = by_type.get(t, 0) + 1
    S.types, S.by_type = kinds, by_type
    now = set(names.values())
    if S.walked:
        gone = S.name_set - now
        came = now - S.name_set
        if gone and came:
            old = S.names
            for ptr, name in names.items():
                if name in came:
                    was = old.get(ptr)
                    if was is not None and was in gone:
                        S.push(("~", was, name))
                        gone.discard(was)
                        came.discard(name)
        for name in gone:
            S.push(("-", name))
        for name in came:
            S.push(("+", name))
    else:
        S.walked = True
        S.floor = S.seq
    S.names, S.objects, S.name_set = names, objects, now


def _renames():
    for ptr, obj in S.touched.items():
        old = S.names.get(ptr)
        if old is None:
            continue  # not in this scene
        try:
            new = obj.name
        except ReferenceError:
            S.rescan = True
            return
        if new != old:
            S.names[ptr] = new
            S.name_set.discard(old)
            S.name_set.add(new)
            S.push(("~", old, new))


def _read_selection(view_layer, active):
    selected = tuple(o.name for o in view_layer.objects.selected)
    if (active, selected) != (S.active, S.selected):
        # A selection change takes a seq of its own (no journal entry): a cursor before it
        # gets the selection.
        S.active, S.selected = active, selected
        S.seq += 1
        S.sel_seq = S.seq


_FLAGS = ("OBJECT", "COLLECTION", "SCENE")


def _flags(view_layer):
    """(objects, collections, scene) changed since the depsgraph's last evaluation, read
    without evaluating it. A Blender without the flags evaluates (the handler reports)."""
    try:
        updated = view_layer.depsgraph.id_type_updated
        return tuple(updated(t) for t in _FLAGS)
    except (AttributeError, TypeError):
        view_layer.update()
        return (False, False, False)


def sync():
    """Bring the journal up to date with the scene."""
    scene = bpy.context.scene
    view_layer = bpy.context.view_layer
    if scene.as_pointer() != S.scene_ptr:
        S.scene_ptr = scene.as_pointer()
        S.rescan = True
    objects_flag, collections_flag, scene_flag = _flags(view_layer)
    walked = False
    if not S.rescan and S.touched:
        _renames()  # objects a handler named: renames by pointer (may ask for a rescan)
    S.touched.clear()
    if S.rescan:
        _walk(scene)
        walked = True
    elif S.collections_dirty or objects_flag or collections_flag:
        # Objects or collections changed (seen by a handler or only flagged): compare the
        # names (a C listing) with the model before walking the objects.
        if scene.objects.keys() != list(S.names.values()):
            _walk(scene)
            walked = True
    active_obj = view_layer.objects.active
    active = active_obj.name if active_obj is not None else None
    if walked or S.scene_dirty or scene_flag or active != S.active:
        _read_selection(view_layer, active)
    S.rescan = S.collections_dirty = S.scene_dirty = False


def report(epoch, seq):
    """The state since the cursor (epoch, seq): deltas, or everything when it is lost."""
    out = {"epoch": S.epoch, "seq": S.seq, "count": len(S.names), "scene": bpy.context.scene.name}
    if epoch == S.epoch and S.floor <= seq <= S.seq:
        ops = [list(op) for s, op in S.journal if s > seq] if seq < S.seq else []
        out["ops"] = ops
        if S.sel_seq > seq:
            out["active"] = S.active
            out["selected"] = list(S.selected)
    else:
        out["full"] = list(S.names.values())
        out["active"] = S.active
        out["selected"] = list(S.selected)
    return out


def _emit(nonce, payload):
    sys.stdout.write("<<bsm:%s>>%s<</bsm:%s>>" % (nonce, json.dumps(payload), nonce))


def run(code_b64, nonce, track, epoch, seq):
    """Run the user's code, then report the state since the session's cursor.

    Measured with time.perf_counter() inside Blender, `x = 1`, tracking on, per call:
    see the figures in README's Performance section and tests/real_scale.rs."""
    code = base64.b64decode(code_b64).decode("utf-8")
    error = None
    try:
        exec(compile(code, "<code>", "exec"), {"bpy": bpy})
    except BaseException as exc:
        tb = exc.__traceback__
        # Skip this module's frame: the traceback starts in the user's code.
        error = "".join(traceback.format_exception(type(exc), exc, tb.tb_next if tb else None))
    payload = {"error": error}
    if track:
        try:
            sync()
            payload["state"] = report(epoch, seq)
        except Exception as exc:
            S.rescan = True
            payload["state_error"] = "%s: %s" % (type(exc).__name__, exc)
    _emit(nonce, payload)


def _location(obj):
    loc = obj.location
    return [round(float(loc.x), 2), round(float(loc.y), 2), round(float(loc.z), 2)]


def scene(nonce, query_json, track, epoch, seq):
    """get_scene_info: a summary and one page of objects, at most `max_bytes` of JSON.

    The summary and the filters read the journal's model (names, types and counts kept
    current by sync()); Blender's objects are read only for the page (their location).
    Measured at 50 003 objects on 2 busy cores (Blender 3.4.1), against the addon's own
    get_scene_info there (10 objects and len(): 29.8 ms): the first page 0.85 ms, a type
    filter 0.8 ms, a collection 0.07 ms, a page at offset 40 000 2.7 ms, a name glob
    (one compiled regex over every name) 120-150 ms, limit=100 000 cut at 31 KiB 20 ms."""
    q = json.loads(query_json)
    sync()
    sc = bpy.context.scene
    limit = max(0, int(q.get("limit", 100)))
    offset = max(0, int(q.get("offset", 0)))
    max_bytes = int(q.get("max_bytes", 65536))
    kind = q.get("type")
    pattern = q.get("name")
    coll_name = q.get("collection")
    colls = list(bpy.data.collections)
    summary = {
        "name": sc.name,
        "object_count": len(S.names),
        "objects_by_type": dict(S.by_type),
        "collection_count": len(colls),
        "collections": [{"name": c.name, "objects": len(c.objects)} for c in colls[:COLLECTIONS_SAMPLE]],
        "materials_count": len(bpy.data.materials),
        "selection": {"active": S.active, "selected": list(S.selected[:SELECTED_SAMPLE])},
        "selected_count": len(S.selected),
    }
    if coll_name is not None:
        c = bpy.data.collections.get(coll_name)
        if c is None and coll_name == sc.collection.name:
            c = sc.collection
        if c is None:
            _emit(nonce, {"error": "no collection named %r" % coll_name})
            return
        pool = [(o.as_pointer(), o.name, o.type, o) for o in c.all_objects]
    else:
        # The journal's model: names and types without touching Blender's objects; only
        # the page's objects are read (their location).
        pool = ((p, n, S.types.get(p), None) for p, n in S.names.items())
    match = re.compile(fnmatch.translate(pattern)).match if pattern is not None else None
    if match is not None and coll_name is None:
        # A name filter over the model: one comprehension over the names (not a generator
        # of tuples per object), then the type filter on the hits only.
        types = S.types
        pool = [(p, n, types.get(p), None) for p, n in S.names.items() if match(n)]
        match = None
        known = None
        if kind is None:
            known = len(pool)
    # Without a name or collection filter the count is known: stop once the page is full.
    elif pattern is None and coll_name is None:
        known = len(S.names) if kind is None else S.by_type.get(kind, 0)
    # (a known count also lets the loop below stop once the page is full)
    else:
        known = None
    budget = max_bytes - len(json.dumps(summary)) - 512
    # The page is measured once, whole (one json.dumps per object was most of a page's
    # cost: 100 objects, ~1 ms of 1.4). While it is built, `floor` — never more than the
    # JSON of what is in the page — stops it once it is surely over budget; then it is cut
    # to the longest beginning that fits.
    page, matched, floor, full = [], 0, 0, False
    if pattern is None and coll_name is None and kind is None:
        # No filter at all: skip to the offset in C (a page at offset 40 000 of 50 000
        # costs what the first page does).
        pool = ((p, n, S.types.get(p), None)
                for p, n in itertools.islice(S.names.items(), offset, None))
        matched = offset
    for ptr, name, t, obj in pool:
        if kind is not None and t != kind:
            continue
        if match is not None and match(name) is None:
            continue
        matched += 1
        if matched <= offset or len(page) >= limit or full:
            if known is not None and (len(page) >= limit or full):
                break
            continue
        obj = obj if obj is not None else S.objects[ptr]
        page.append({"name": name, "type": t, "location": _location(obj)})
        # {"name": "", "type": "", "location": [0.0, 0.0, 0.0]}, is 47 characters.
        floor += len(name) + len(t or "") + 47
        full = floor > budget
    cut = False
    if page and (full or len(json.dumps(page)) > budget):
        used, fits = 0, 0
        for item in page:
            used += len(json.dumps(item)) + 2
            if used > budget:
                break
            fits += 1
        cut = fits < len(page) or full
        del page[fits:]
    if known is not None:
        matched = known
    summary["objects"] = page
    summary["matched"] = matched
    summary["offset"] = offset
    summary["truncated_by_size"] = cut
    summary["next_offset"] = offset + len(page) if offset + len(page) < matched else None
    # The summary under a key of its own, beside the state: the server reads each part
    # straight into its type (a flattened struct costs it a buffered copy of the whole).
    answer = {"scene": summary}
    if track:
        answer["state"] = report(epoch, seq)
    _emit(nonce, answer)
