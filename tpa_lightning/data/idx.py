"""Reader for the IDX format of MNIST-style datasets (optionally gzip-compressed)."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import Any

import numpy as np

_DTYPES: dict[int, Any] = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an IDX file (``.gz`` or plain); raises ValueError on a malformed file."""
    p = Path(path)
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rb") as fh:  # type: ignore[operator]
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{p} is not an IDX file (bad magic number)")
    code, ndim = data[2], data[3]
    if code not in _DTYPES:
        raise ValueError(f"{p}: unknown IDX data type code 0x{code:02x}")
    header = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_DTYPES[code])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(f"{p}: expected {expected} bytes of data for shape {shape}, found {len(data) - header}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))
