"""temporal_nsr: temporally equivariant neural scene representations."""

import os
from pathlib import Path

__version__ = "0.1.0"

# The repository root: conf/paths/default.yaml puts data/ and outputs/ under it, wherever a
# command is started from. Set here, once, for every `python -m temporal_nsr.<entry>`; an
# exported PROJECT_ROOT wins.
PROJECT_ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("PROJECT_ROOT", str(PROJECT_ROOT))
# The Hydra configs every entry point composes, and the generator reads without Hydra.
CONF_DIR = PROJECT_ROOT / "conf"
# A run folder's names (`temporal_nsr.runs` loads runs; Hydra callbacks and the headline read
# metrics.json without importing it).
CHECKPOINT_DIR = "checkpoints"  # <run>/checkpoints: the ModelCheckpoint dirpath of conf/callbacks
LAST = "last.ckpt"
RESULT_FILE = "metrics.json"  # <run>/metrics.json: what training.fit records of a finished run
