# Sent by blender-session-mcp as the `code` of one `execute_code` request.
# It runs the user's code exactly as the addon would (a fresh namespace holding only `bpy`),
# keeps the stdout printed before an exception and the full traceback, and appends a snapshot
# of the scene's state between two nonce markers, all in the same round trip.
# Placeholders (replaced before sending): __BSM_CODE__ (base64 of the UTF-8 user code),
# __BSM_TRACK__ (True/False), __BSM_START__ / __BSM_END__ (markers).
def _bsm_run():
    import base64, json, sys, traceback
    code = base64.b64decode("__BSM_CODE__").decode("utf-8")
    error = None
    try:
        exec(compile(code, "<code>", "exec"), {"bpy": bpy})
    except BaseException as exc:
        tb = exc.__traceback__
        # Skip this wrapper's own frame: the traceback starts in the user's code.
        error = "".join(traceback.format_exception(type(exc), exc, tb.tb_next if tb else None))
    state = None
    state_error = None
    if __BSM_TRACK__:
        try:
            scene = bpy.context.scene
            objects = list(scene.objects)
            active = bpy.context.view_layer.objects.active
            selected = []
            for obj in objects:
                try:
                    if obj.select_get():
                        selected.append(obj.name)
                except Exception:
                    pass
            state = {
                "scene": scene.name,
                "objects": [obj.name for obj in objects],
                "active": active.name if active is not None else None,
                "selected": selected,
            }
        except Exception as exc:
            state_error = "%s: %s" % (type(exc).__name__, exc)
    sys.stdout.write("__BSM_START__" + json.dumps({"error": error, "state": state, "state_error": state_error}) + "__BSM_END__")
_bsm_run()
