"""The mock `bpy` the fake addon (fake_addon.py) runs code against: objects, selection,
materials, collections, a few operators, and what the server's helper module uses,
faithful to Blender 3.4 (../shared/BLENDER_NOTES.md); fake_addon.py's docstring says what
it models. Importing it installs it as sys.modules["bpy"] with the default scene (a cube,
a camera, a light, one material)."""

import sys
import types

class Vector:
    def __init__(self, xyz=(0.0, 0.0, 0.0)):
        self.x, self.y, self.z = (float(v) for v in xyz)

    def __iter__(self):
        return iter((self.x, self.y, self.z))

    def __getitem__(self, i):
        return (self.x, self.y, self.z)[i]

    def __repr__(self):
        return "Vector((%r, %r, %r))" % (self.x, self.y, self.z)


class Mesh:
    def __init__(self, name, verts=8, edges=12, faces=6):
        self.name = name
        self.vertices = [None] * verts
        self.edges = [None] * edges
        self.polygons = [None] * faces


class Material:
    def __init__(self, name):
        self.name = name


class MaterialSlot:
    def __init__(self, material):
        self.material = material


class Object:
    def __init__(self, name, type_="MESH", data=None, location=(0, 0, 0)):
        self._name = None
        self.type = type_
        self.data = data
        self.location = Vector(location)
        self.rotation_euler = Vector()
        self.scale = Vector((1, 1, 1))
        self.material_slots = []
        self._selected = False
        self.name = name

    @property
    def name(self):
        return self._name

    @name.setter
    def name(self, value):
        self._name = None
        self._name = bpy.data.objects.unique_name(str(value))
        DEPSGRAPH.tag_object(self)

    @property
    def original(self):
        return self

    def as_pointer(self):
        return id(self)

    def select_get(self):
        return self._selected

    def select_set(self, state):
        self._selected = bool(state)
        DEPSGRAPH.tag_scene()

    def visible_get(self):
        return True

    def __repr__(self):
        return "bpy.data.objects[%r]" % self._name


class Collection:
    def __init__(self):
        self._items = []

    def __iter__(self):
        return iter(list(self._items))

    def __len__(self):
        return len(self._items)

    def __getitem__(self, key):
        if isinstance(key, int):
            return self._items[key]
        for item in self._items:
            if item.name == key:
                return item
        raise KeyError("bpy_prop_collection[key]: key \"%s\" not found" % key)

    def __contains__(self, key):
        return self.get(key) is not None

    def get(self, name, default=None):
        for item in self._items:
            if item.name == name:
                return item
        return default

    def unique_name(self, base):
        names = {item.name for item in self._items}
        if base not in names:
            return base
        stem = base
        if len(base) > 4 and base[-4] == "." and base[-3:].isdigit():
            stem = base[:-4]
        n = 1
        while "%s.%03d" % (stem, n) in names:
            n += 1
        return "%s.%03d" % (stem, n)


class ObjectCollection(Collection):
    def new(self, name, object_data):
        type_ = "MESH" if isinstance(object_data, Mesh) else "EMPTY"
        obj = Object(name, type_, object_data)
        self._items.append(obj)
        DEPSGRAPH.tag_scene()
        DEPSGRAPH.tag_object(obj)
        DEPSGRAPH.tag_collection()
        return obj

    def remove(self, obj, do_unlink=True):
        self._items.remove(obj)
        DEPSGRAPH.forget(obj)
        DEPSGRAPH.tag_scene()
        DEPSGRAPH.tag_collection()
        if bpy.context.view_layer.objects.active is obj:
            bpy.context.view_layer.objects.active = None


class Depsgraph:
    """What Blender's depsgraph reports to depsgraph_update_post after an evaluation."""

    def __init__(self):
        self.objects = {}
        self.scene = False
        self.collection = False
        self.updates = []

    def tag_object(self, obj):
        self.objects[id(obj)] = obj

    def forget(self, obj):
        self.objects.pop(id(obj), None)

    def tag_scene(self):
        self.scene = True

    def tag_collection(self):
        self.collection = True

    def id_type_updated(self, id_type):
        if id_type == "OBJECT":
            return bool(self.objects) or self.collection
        if id_type == "SCENE":
            return self.scene
        if id_type == "COLLECTION":
            return self.collection
        return False

    def evaluate(self, scene):
        if not (self.objects or self.scene or self.collection):
            return  # nothing changed: no handler call
        updates = []
        if self.scene:
            updates.append(types.SimpleNamespace(id=scene))
        updates += [types.SimpleNamespace(id=o) for o in self.objects.values()]
        if self.collection:
            updates.append(types.SimpleNamespace(id=BPY_COLLECTION))
        self.objects, self.scene, self.collection = {}, False, False
        self.updates = updates
        for handler in list(bpy.app.handlers.depsgraph_update_post):
            handler(scene, self)
        self.updates = []


DEPSGRAPH = Depsgraph()


class MaterialCollection(Collection):
    def new(self, name):
        mat = Material(self.unique_name(name))
        self._items.append(mat)
        return mat


class MeshCollection(Collection):
    def new(self, name):
        mesh = Mesh(self.unique_name(name))
        self._items.append(mesh)
        return mesh


class SceneObjects:
    def __iter__(self):
        return iter(bpy.data.objects)

    def __len__(self):
        return len(bpy.data.objects)

    def __getitem__(self, key):
        return bpy.data.objects[key]

    def get(self, name, default=None):
        return bpy.data.objects.get(name, default)

    def keys(self):
        return [o.name for o in bpy.data.objects]

    def link(self, obj):
        pass


class ViewLayerObjects(SceneObjects):
    def __init__(self):
        self._active = None

    @property
    def active(self):
        return self._active

    @active.setter
    def active(self, obj):
        self._active = obj
        DEPSGRAPH.tag_scene()

    @property
    def selected(self):
        return [o for o in bpy.data.objects if o.select_get()]


class BlendCollection:
    """bpy.types.Collection: the scene's master collection and the default "Collection"
    (every object of this mock is in both)."""

    def __init__(self, name):
        self.name = name
        self.objects = SceneObjects()

    @property
    def all_objects(self):
        return list(bpy.data.objects)


BPY_COLLECTION = BlendCollection("Collection")


class Scene:
    def __init__(self):
        self.name = "Scene"
        self.objects = SceneObjects()
        self.collection = BlendCollection("Scene Collection")

    def as_pointer(self):
        return id(self)


class ViewLayer:
    def __init__(self):
        self.objects = ViewLayerObjects()

    @property
    def depsgraph(self):
        return DEPSGRAPH

    def update(self):
        DEPSGRAPH.evaluate(bpy.context.scene)


class Context:
    def __init__(self):
        self.scene = Scene()
        self.view_layer = ViewLayer()

    @property
    def active_object(self):
        return self.view_layer.objects.active

    object = active_object

    @property
    def selected_objects(self):
        return [o for o in bpy.data.objects if o.select_get()]


def _add_primitive(base, verts, edges, faces, location=(0, 0, 0), **_kwargs):
    for o in bpy.data.objects:
        o.select_set(False)
    mesh = bpy.data.meshes.new(base)
    mesh.vertices = [None] * verts
    mesh.edges = [None] * edges
    mesh.polygons = [None] * faces
    obj = bpy.data.objects.new(base, mesh)
    obj.location = Vector(location)
    obj.select_set(True)
    bpy.context.view_layer.objects.active = obj
    bpy.context.view_layer.update()  # an operator evaluates the depsgraph when it ends
    return {"FINISHED"}


def _select_all(action="TOGGLE"):
    objs = list(bpy.data.objects)
    if action == "TOGGLE":
        action = "DESELECT" if any(o.select_get() for o in objs) else "SELECT"
    for o in objs:
        o.select_set(action == "SELECT")
    bpy.context.view_layer.update()
    return {"FINISHED"}


def _delete(**_kwargs):
    for o in [o for o in bpy.data.objects if o.select_get()]:
        bpy.data.objects.remove(o)
    bpy.context.view_layer.update()
    return {"FINISHED"}


class BlendCollections(Collection):
    pass


def make_bpy():
    mod = types.ModuleType("bpy")
    collections = BlendCollections()
    collections._items.append(BPY_COLLECTION)
    mod.data = types.SimpleNamespace(
        objects=ObjectCollection(), materials=MaterialCollection(), meshes=MeshCollection(),
        collections=collections,
    )
    mod.types = types.SimpleNamespace(Object=Object, Collection=BlendCollection, Scene=Scene)
    mod.app = types.SimpleNamespace(
        handlers=types.SimpleNamespace(
            depsgraph_update_post=[], undo_post=[], redo_post=[], load_post=[],
            persistent=lambda fn: fn,
        ),
        version_string="3.4.1 (fake)",
        background=True,
    )
    mod.ops = types.SimpleNamespace(
        mesh=types.SimpleNamespace(
            primitive_cube_add=lambda size=2.0, location=(0, 0, 0), **kw: _add_primitive("Cube", 8, 12, 6, location),
            primitive_uv_sphere_add=lambda radius=1.0, location=(0, 0, 0), **kw: _add_primitive("Sphere", 482, 992, 512, location),
            primitive_plane_add=lambda size=2.0, location=(0, 0, 0), **kw: _add_primitive("Plane", 4, 4, 1, location),
        ),
        object=types.SimpleNamespace(select_all=_select_all, delete=_delete),
    )
    return mod


bpy = make_bpy()
sys.modules["bpy"] = bpy
bpy.context = Context()


def default_scene():
    bpy.data.objects.new("Cube", bpy.data.meshes.new("Cube"))
    bpy.data.objects.new("Camera", None).type = "CAMERA"
    bpy.data.objects.new("Light", None).type = "LIGHT"
    bpy.data.objects["Camera"].location = Vector((7.36, -6.93, 4.96))
    bpy.data.objects["Light"].location = Vector((4.08, 1.01, 5.9))
    bpy.data.materials.new("Material")
    cube = bpy.data.objects["Cube"]
    cube.material_slots = [MaterialSlot(bpy.data.materials["Material"])]
    cube.select_set(True)
    bpy.context.view_layer.objects.active = cube


default_scene()
