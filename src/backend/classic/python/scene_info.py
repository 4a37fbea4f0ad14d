# Sent by blender-session-mcp as the `code` of one `execute_code` request for the
# `get_scene_info` tool: the addon's own get_scene_info stops at 10 objects and omits the
# selection; this reports every object and the selection in one round trip.
# Placeholders: __BSM_START__ / __BSM_END__ (markers).
def _bsm_scene():
    import json, sys
    scene = bpy.context.scene
    objects = []
    selected = []
    for obj in scene.objects:
        loc = obj.location
        objects.append({
            "name": obj.name,
            "type": obj.type,
            "location": [round(float(loc.x), 2), round(float(loc.y), 2), round(float(loc.z), 2)],
        })
        try:
            if obj.select_get():
                selected.append(obj.name)
        except Exception:
            pass
    active = bpy.context.view_layer.objects.active
    info = {
        "name": scene.name,
        "object_count": len(objects),
        "objects": objects,
        "materials_count": len(bpy.data.materials),
        "selection": {"active": active.name if active is not None else None, "selected": selected},
    }
    sys.stdout.write("__BSM_START__" + json.dumps(info) + "__BSM_END__")
_bsm_scene()
