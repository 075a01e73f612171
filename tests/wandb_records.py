"""Read the records of an offline W&B run file (`run-<id>.wandb`) without the W&B service.

wandb >= 0.19 writes an offline run only as this transaction log (no wandb-summary.json or
config.yaml until `wandb sync`). Its format is LevelDB's log: a 7-byte header (":W&B", magic
0xBEE1, version 0), then 32 KiB blocks of records, each a 7-byte header (crc32, little-endian
length, type: 1 full, 2 first, 3 middle, 4 last) and a piece of a protobuf `Record`.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK = 32768
HEADER = 7


def records(path: Path) -> list:
    """Every protobuf Record of the file, in order."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run file")
    out, pos, pending = [], HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # the rest of a block too short for a header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        piece = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == 0 and length == 0:
            break
        pending = piece if kind in (1, 2) else pending + piece
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            out.append(record)
    return out


def summary_and_config(path: Path) -> tuple[dict, dict]:
    """The last value of every summary key and config key logged in the file."""
    summary: dict = {}
    config: dict = {}
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "summary":
            summary.update({item.key: json.loads(item.value_json) for item in record.summary.update})
        elif kind == "config":
            config.update({item.key: json.loads(item.value_json) for item in record.config.update})
        elif kind == "run":
            config.update({item.key: json.loads(item.value_json) for item in record.run.config.update})
    return summary, config
