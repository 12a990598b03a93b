"""Read an offline W&B run's records (``<dir>/wandb/offline-run-*/run-<id>.wandb``) without
the network: the file is a LevelDB-style log of protobuf ``Record`` messages."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path
from typing import Any

BLOCK = 32768  # bytes per log block; a record never starts in a block's last 6 bytes
HEADER = 7  # file header ":W&B" + magic + version; each record: crc (4), length (2), type (1)
FULL, LAST = 1, 4


def records(path: Path) -> list[Any]:
    """The ``wandb_internal_pb2.Record`` messages of one ``.wandb`` file, in order."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    pos, chunk, out = HEADER, b"", []
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if kind == 0:
            break
        chunk += data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(chunk)
            out.append(record)
            chunk = b""
    return out


def offline_run(folder: Path, run_id: str | None = None, wait_s: float = 60) -> dict[str, Any]:
    """The run, summary, history keys and config of the one offline run under ``folder``
    (of id ``run_id`` when given): {"run": Record.run, "summary": {key: value},
    "history": set of keys, "config": {key: value}}.

    W&B's service process writes the file after ``finish()`` returns; on a loaded machine it
    may still be flushing, so this waits up to ``wait_s`` for the run's exit record.
    """
    pattern = f"offline-run-*-{run_id}" if run_id else "offline-run-*"
    (run_dir,) = sorted((folder / "wandb").glob(pattern))
    file = next(run_dir.glob("run-*.wandb"))
    deadline = time.monotonic() + wait_s
    found = records(file)
    while not any(r.WhichOneof("record_type") == "exit" for r in found):
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
        found = records(file)
    out: dict[str, Any] = {"run": None, "summary": {}, "history": set(), "config": {}}
    for record in found:
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out["run"] = record.run
            for item in record.run.config.update:
                out["config"][item.key] = json.loads(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                out["config"][item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
        elif kind == "summary":
            for item in record.summary.update:
                key = item.key or "/".join(item.nested_key)
                out["summary"][key] = json.loads(item.value_json)
        elif kind == "history":
            out["history"] |= {item.key or item.nested_key[0] for item in record.history.item}
    return out
