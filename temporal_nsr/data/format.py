"""A dataset's file layout, shared by its writer (``data/synthetic/writer.py``) and its reader
(``data/dataset.py``); plain names only, so generating data does not import torch.

    <root>/<split>/<object>/NNNNN.png
    <root>/<split>/<object>/render_params.json   # stem -> {"azimuth", "elevation", "temporal"}
"""

SPLITS = ("train", "val", "test")
PARAMS_FILE = "render_params.json"
