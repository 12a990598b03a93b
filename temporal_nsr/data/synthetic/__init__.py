"""The ground-truth generator: objects deforming over time, seen from a sphere.

``python -m temporal_nsr.data.generate`` is its command line; the library is here:

    errors.py        GeneratorConfigError
    config.py        GeneratorConfig: the one typed config; defaults from conf/data/bend.yaml
    geometry.py      bar mesh, bend and twist formulas (Blender's SimpleDeform), cameras
    profiles.py      time profiles (sine, linear): the amount of deformation at each timestep
    families/        deformation families (bend, twist, bend_twist, ...): parameters, mesh,
                     Blender operations
    objects.py       ObjectSpec of each object (canonical bar + seeded variations), true parameters
    backend.py       Scene and the Backend protocol: render(scene, poses) -> images
    embree.py        EmbreeBackend: ray casting in this process (the default)
    blender.py       BlenderBackend: Cycles in a Blender subprocess running blender_scene.py
    generator.py     generate_dataset / ensure_dataset, render_object (views without files)
    writer.py        split layout, PNG and label files, manifest, staging folder

Scene conventions are documented in `geometry` (mesh, deformation, camera) and `embree`
(shading); the Blender backend builds the same scene (`blender_scene`).
"""
