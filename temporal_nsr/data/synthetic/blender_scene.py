"""Generates the views of one (object, timestep) inside Blender; runs in Blender's own Python.

Never imported by temporal_nsr (``bpy`` exists only inside Blender).
`temporal_nsr.data.synthetic.blender` runs it as::

    blender -b --factory-startup --python-exit-code 1 --python blender_scene.py -- job.json

The job file (JSON, written by `temporal_nsr.data.synthetic.blender`) holds the undeformed mesh,
its face colours, the deformation as a list of generic operations (a deformation family's
``blender_ops``; this script knows no family), camera, light and Cycles settings, and one output
path per view. The scene follows the conventions of `temporal_nsr.data.synthetic.geometry` and
`temporal_nsr.data.synthetic.embree` (world Z up):

* The operations, in order: ``simple_deform`` adds a real SimpleDeform modifier (``method``
  BEND / TWIST / TAPER / STRETCH about ``axis``, by ``angle_deg`` or ``factor``); with an
  ``origin_rotation_deg`` its ``origin`` is an empty turned by those Euler angles, placed at
  ``origin_location`` (the bar's frame; default its origin) and parented to the bar (the bend's
  frame, turned +90 degrees about x: x stays x and y is the world's z, so "bend about z" bends
  in the x-z plane, like ``bend_vertices``; the taper's, at one end of the bar), so re-centring
  the bar keeps the deformation. ``sine_offset`` adds a Geometry Nodes modifier that moves
  every vertex along ``offset`` (X / Y / Z) by ``amplitude * sin(2 pi p / wavelength - phase)``,
  p its coordinate along ``along``, ``phase_deg`` in degrees (Set Position fed by Math nodes).
  ``hinge`` turns the part named ``part`` by ``angle_deg`` about its origin's ``axis`` (its
  object rotation; a wing about its hinge). ``scale`` sets the bar's object scale (after every
  modifier).
* The mesh: one object per part (``parts``: name and origin; ``part``: each vertex's), the
  first, the main part, the parent of the others; each object's origin is its part's (a wing's
  hinge). The operations act on the main part unless they name another.
* Re-centring: the bounding box of every deformed, scaled part goes to the origin (the main
  part moves, its children with it).
* One Diffuse BSDF material per colour, assigned per face (the underside is red).
* A sun with angle 0 (hard shadows) shining along ``-light_direction`` with strength
  ``pi * (1 - ambient)``, and a world of radiance ``ambient`` seen by shading rays only: a lit,
  unshadowed face has ``albedo * (ambient + (1 - ambient) * cos)``, as in the Embree generator.
  Camera rays see the world as ``background`` (white).
* Camera at ``r * (cos el cos az, cos el sin az, sin el)`` with a Track To constraint on an
  empty at the origin (-Z forward, Y up), horizontal field of view ``fov_deg``.
* Cycles on the CPU, fixed seed, no denoising, no adaptive sampling, box pixel filter of one
  pixel, "Raw" view transform (the PNG bytes are the linear values times 255, like the Embree
  generator's), no dither.

A job's ``dump_meshes`` (the mesh checks, `BlenderBackend.deformed_vertices`) lists objects
(each a mesh, colours and operations like the job's own, and a ``path``): each is built alone
in turn and its deformed vertices written to its path; such a job renders no views.

On bad input or a too old Blender it prints one line starting with ``temporal_nsr:`` to stderr
and exits with status 2. When done it writes the job's ``result`` JSON: Blender's version, the
seconds spent building the scene and the seconds spent on the views.
"""

import json
import math
import os
import sys
import time

import bpy
from mathutils import Vector

MARKER = "temporal_nsr:"


def fail(message):
    print(f"{MARKER} {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def job_path():
    argv = sys.argv
    if "--" not in argv or argv.index("--") + 1 >= len(argv):
        fail("blender_scene.py needs a job file: blender -b --python blender_scene.py -- job.json")
    return argv[argv.index("--") + 1]


def check_version(job):
    need = tuple(job["min_blender_version"])
    have = tuple(bpy.app.version)
    if have < need:
        fail(
            f"Blender {bpy.app.version_string} is too old: the Blender backend needs "
            f"{'.'.join(map(str, need))} or newer (Cycles X settings); point "
            "backend.executable to a newer Blender"
        )


def clear_scene():
    for collection in (bpy.data.objects, bpy.data.meshes, bpy.data.materials, bpy.data.lights):
        for item in list(collection):
            collection.remove(item)


def diffuse_material(name, rgb):
    material = bpy.data.materials.new(name)
    material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    bsdf = nodes.new("ShaderNodeBsdfDiffuse")
    bsdf.inputs["Color"].default_value = (*rgb, 1.0)
    bsdf.inputs["Roughness"].default_value = 0.0  # Lambert
    output = nodes.new("ShaderNodeOutputMaterial")
    links.new(bsdf.outputs["BSDF"], output.inputs["Surface"])
    return material


def sine_offset(bar, operation, index):
    """A Geometry Nodes modifier: Set Position, offset along ``offset`` by
    ``amplitude * sin(2 pi p / wavelength - phase)``, p the position along ``along``."""
    group = bpy.data.node_groups.new(f"deform_{index}", "GeometryNodeTree")
    if hasattr(group, "interface"):  # Blender 4.0 moved a group's sockets to its interface
        for side in ("INPUT", "OUTPUT"):
            group.interface.new_socket("Geometry", in_out=side, socket_type="NodeSocketGeometry")
    else:
        group.inputs.new("NodeSocketGeometry", "Geometry")
        group.outputs.new("NodeSocketGeometry", "Geometry")
    nodes, links = group.nodes, group.links
    given, result = nodes.new("NodeGroupInput"), nodes.new("NodeGroupOutput")
    position = nodes.new("GeometryNodeInputPosition")
    split = nodes.new("ShaderNodeSeparateXYZ")
    links.new(position.outputs["Position"], split.inputs["Vector"])
    angle = nodes.new("ShaderNodeMath")  # p * 2 pi / wavelength - phase
    angle.operation = "MULTIPLY_ADD"
    links.new(split.outputs[operation["along"]], angle.inputs[0])
    angle.inputs[1].default_value = 2.0 * math.pi / operation["wavelength"]
    angle.inputs[2].default_value = -math.radians(operation["phase_deg"])
    sine = nodes.new("ShaderNodeMath")
    sine.operation = "SINE"
    links.new(angle.outputs["Value"], sine.inputs[0])
    height = nodes.new("ShaderNodeMath")
    height.operation = "MULTIPLY"
    links.new(sine.outputs["Value"], height.inputs[0])
    height.inputs[1].default_value = operation["amplitude"]
    offset = nodes.new("ShaderNodeCombineXYZ")
    links.new(height.outputs["Value"], offset.inputs[operation["offset"]])
    move = nodes.new("GeometryNodeSetPosition")
    links.new(given.outputs[0], move.inputs["Geometry"])
    links.new(offset.outputs["Vector"], move.inputs["Offset"])
    links.new(move.outputs["Geometry"], result.inputs[0])
    bar.modifiers.new(f"deform_{index}", "NODES").node_group = group


def apply_operation(scene, bar, operation, index):
    """One deformation operation of the job (see the module docstring)."""
    kind = operation["op"]
    if kind == "hinge":
        part = bpy.data.objects[operation["part"]]
        part.rotation_euler["XYZ".index(operation["axis"])] = math.radians(operation["angle_deg"])
        return
    if kind == "scale":
        bar.scale = tuple(operation["factors"])
        return
    if kind == "sine_offset":
        sine_offset(bar, operation, index)
        return
    if kind != "simple_deform":
        fail(f"unknown deformation operation {kind!r}; regenerate the job file")
    modifier = bar.modifiers.new(f"deform_{index}", "SIMPLE_DEFORM")
    modifier.deform_method = operation["method"]
    modifier.deform_axis = operation["axis"]
    if "angle_deg" in operation:
        modifier.angle = math.radians(operation["angle_deg"])
    else:
        modifier.factor = operation["factor"]
    if operation.get("origin_rotation_deg") is not None:
        frame = bpy.data.objects.new(f"deform_{index}_frame", None)
        scene.collection.objects.link(frame)
        frame.rotation_euler = [math.radians(a) for a in operation["origin_rotation_deg"]]
        frame.location = operation.get("origin_location", (0.0, 0.0, 0.0))
        frame.parent = bar
        modifier.origin = frame


def build_object(scene, job):
    """One mesh object per part of the job, the main part (the first) the parent of the others,
    each with its origin at the part's ``origin``; deformed by the operations and re-centred.

    Returns:
        (object, vertex indices of the job's mesh) per part, the main part first.
    """
    top = diffuse_material("top", job["top_color"])
    bottom = diffuse_material("bottom", job["bottom_color"])
    parts = []
    for index, part in enumerate(job["parts"]):
        keep = [i for i, p in enumerate(job["part"]) if p == index]
        local = {old: new for new, old in enumerate(keep)}
        faces = [(f, job["underside"][j]) for j, f in enumerate(job["faces"]) if f[0] in local]
        origin = Vector(part["origin"])
        mesh = bpy.data.meshes.new(part["name"])
        mesh.from_pydata(
            [Vector(job["vertices"][i]) - origin for i in keep],
            [],
            [tuple(local[i] for i in f) for f, _ in faces],
        )
        mesh.materials.append(top)
        mesh.materials.append(bottom)
        mesh.polygons.foreach_set("material_index", [1 if u else 0 for _, u in faces])
        mesh.update()
        obj = bpy.data.objects.new(part["name"], mesh)
        scene.collection.objects.link(obj)
        if parts:  # a child's location is in its parent's frame
            obj.parent = parts[0][0]
            origin = origin - Vector(job["parts"][0]["origin"])
        obj.location = origin
        parts.append((obj, keep))
    bar = parts[0][0]

    for index, operation in enumerate(job["operations"]):
        apply_operation(scene, bar, operation, index)

    # Re-centre: the bounding box of every deformed, scaled part goes to the origin.
    bpy.context.view_layer.update()
    depsgraph = bpy.context.evaluated_depsgraph_get()
    corners = [
        obj.matrix_world @ Vector(c)
        for obj, _ in parts
        for c in obj.evaluated_get(depsgraph).bound_box
    ]
    low = Vector([min(c[i] for c in corners) for i in range(3)])
    high = Vector([max(c[i] for c in corners) for i in range(3)])
    bar.location = bar.location - 0.5 * (low + high)
    return parts


def build_lights(scene, job):
    ambient = job["ambient"]
    sun_data = bpy.data.lights.new("sun", "SUN")
    sun_data.energy = math.pi * (1.0 - ambient)  # irradiance; a white Lambert face reflects E / pi
    sun_data.angle = 0.0  # a point-like sun: hard shadows
    sun = bpy.data.objects.new("sun", sun_data)
    scene.collection.objects.link(sun)
    # A sun shines along its local -Z: turn +Z towards the light.
    sun.rotation_euler = Vector(job["light_direction"]).to_track_quat("Z", "Y").to_euler()

    world = bpy.data.worlds.new("world")
    scene.world = world
    world.use_nodes = True
    nodes, links = world.node_tree.nodes, world.node_tree.links
    nodes.clear()
    # Camera rays see the background colour; shading rays see a uniform sky of radiance ambient.
    path = nodes.new("ShaderNodeLightPath")
    sky = nodes.new("ShaderNodeBackground")
    sky.inputs["Color"].default_value = (ambient, ambient, ambient, 1.0)
    backdrop = nodes.new("ShaderNodeBackground")
    backdrop.inputs["Color"].default_value = (*job["background"], 1.0)
    mix = nodes.new("ShaderNodeMixShader")
    output = nodes.new("ShaderNodeOutputWorld")
    links.new(path.outputs["Is Camera Ray"], mix.inputs["Fac"])
    links.new(sky.outputs["Background"], mix.inputs[1])
    links.new(backdrop.outputs["Background"], mix.inputs[2])
    links.new(mix.outputs["Shader"], output.inputs["Surface"])


def build_camera(scene, job):
    data = bpy.data.cameras.new("camera")
    data.sensor_fit = "HORIZONTAL"
    data.lens_unit = "FOV"
    data.angle = math.radians(job["fov_deg"])
    data.clip_start = 0.01 * job["camera_radius"]
    data.clip_end = 4.0 * job["camera_radius"]
    camera = bpy.data.objects.new("camera", data)
    scene.collection.objects.link(camera)
    target = bpy.data.objects.new("look_at", None)  # the world origin
    scene.collection.objects.link(target)
    track = camera.constraints.new("TRACK_TO")
    track.target = target
    track.track_axis = "TRACK_NEGATIVE_Z"
    track.up_axis = "UP_Y"
    scene.camera = camera
    return camera


def camera_location(azimuth_deg, elevation_deg, radius):
    # At elevation +-90, cos(el) is about 6e-17, not 0: the camera stays a hair off the pole on
    # the side of its azimuth, so Track To's up direction still follows the azimuth, the limit
    # the Embree generator uses (image right = (-sin az, cos az, 0)). Checked at exactly +-90.
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    return Vector(
        (
            radius * math.cos(el) * math.cos(az),
            radius * math.cos(el) * math.sin(az),
            radius * math.sin(el),
        )
    )


def configure_render(scene, job):
    scene.render.engine = "CYCLES"
    cycles = scene.cycles
    cycles.device = "CPU"
    cycles.samples = job["samples"]
    cycles.use_adaptive_sampling = False
    cycles.use_denoising = False
    cycles.max_bounces = job["max_bounces"]
    cycles.seed = job["seed"]
    cycles.pixel_filter_type = "BOX"
    cycles.filter_width = 1.0
    cycles.use_auto_tile = True
    cycles.tile_size = job["image_size"]
    render = scene.render
    render.threads_mode = "FIXED"
    render.threads = job["threads"]
    render.use_persistent_data = True  # keep the scene between views; only the camera moves
    render.resolution_x = render.resolution_y = job["image_size"]
    render.resolution_percentage = 100
    render.film_transparent = False
    render.dither_intensity = 0.0
    render.image_settings.file_format = "PNG"
    render.image_settings.color_mode = "RGB"
    render.image_settings.color_depth = "8"
    scene.view_settings.view_transform = "Raw"
    scene.view_settings.look = "None"
    scene.view_settings.exposure = 0.0
    scene.view_settings.gamma = 1.0


def dump_mesh(parts, path):
    """Write the deformed, re-centred vertices of every part in world units, in the job's vertex
    order (checks the operations)."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    vertices = [None] * sum(len(keep) for _, keep in parts)
    for obj, keep in parts:
        evaluated = obj.evaluated_get(depsgraph)
        world = evaluated.matrix_world
        for k, i in enumerate(keep):  # Blender's Python 3.9 (Blender 3.0) has no zip(strict=)
            vertices[i] = list(world @ evaluated.data.vertices[k].co)
    with open(path, "w") as f:
        json.dump({"vertices": vertices}, f)


def main():
    start = time.perf_counter()
    with open(job_path()) as f:
        job = json.load(f)
    check_version(job)
    clear_scene()
    scene = bpy.context.scene
    configure_render(scene, job)
    camera = None
    if job["dump_meshes"]:  # the mesh checks: each object built alone, its vertices written
        for entry in job["dump_meshes"]:
            clear_scene()
            dump_mesh(build_object(scene, {**job, **entry}), entry["path"])
    else:
        build_object(scene, job)
        build_lights(scene, job)
        camera = build_camera(scene, job)
    setup = time.perf_counter() - start
    for view in job["views"]:
        camera.location = camera_location(view["azimuth"], view["elevation"], job["camera_radius"])
        scene.render.filepath = view["path"]
        bpy.ops.render.render(write_still=True)
    result = {
        "blender_version": bpy.app.version_string,
        "views": len(job["views"]),
        "setup_seconds": setup,  # Blender's start is not included: it precedes the script
        "views_seconds": time.perf_counter() - start - setup,
    }
    with open(job["result"] + ".part", "w") as f:
        json.dump(result, f)
    os.replace(job["result"] + ".part", job["result"])


try:
    main()
except KeyError as error:
    fail(f"job file lacks key {error}; regenerate it with temporal_nsr.data.synthetic.blender")
