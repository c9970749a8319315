"""Models over 2 GB: buffers stored after the flatbuffer (offset/size), read back and run."""
from __future__ import annotations

import numpy as np

from tflc.io import read_model, write_model
from tflc.runtime import Session
from tflc.schema import fb
from tflc.testing.graphs import gather_model


def test_model_over_2gb_writes_reads_and_runs(tmp_path):
    rows = (2**31 + 2**24) // 4096 + 1          # a 2.07 GB float32 table of 1024 columns
    table = np.zeros((rows, 1024), np.float32)  # untouched pages cost no memory
    table[7] = 7.0
    table[rows - 1] = 3.0
    path = tmp_path / "big.tflite"
    n = write_model(gather_model(table), path)
    assert n > 2**31 and path.stat().st_size == n
    del table

    with open(path, "rb") as f:  # the flatbuffer itself is small; the buffer lives after it
        head = f.read(1 << 20)
    root = fb.Model.GetRootAs(head, 0)
    big = max((root.Buffers(i) for i in range(root.BuffersLength())), key=lambda b: b.Size())
    assert big.Offset() > 1 and big.Size() == rows * 4096 and big.DataLength() == 0
    assert big.Offset() % 64 == 0

    m = read_model(path)
    data = m.main.tensor("table").data
    assert data.shape == (rows, 1024) and data[7, 0] == 7.0 and data[rows - 1, 5] == 3.0

    s = Session(str(path))
    assert s.run([np.array([7], np.int32)])[0][0, 0] == 7.0
    assert s.run([np.array([rows - 1], np.int32)])[0][0, 1023] == 3.0
    assert s.run([np.array([8], np.int32)])[0].max() == 0.0


def test_force_external_on_a_small_model_is_still_valid(tmp_path):
    table = np.arange(64, dtype=np.float32).reshape(16, 4)
    path = tmp_path / "ext.tflite"
    write_model(gather_model(table), path, force_external=True)
    assert Session(str(path)).run([np.array([3], np.int32)])[0].tolist() == [[12, 13, 14, 15]]
    np.testing.assert_array_equal(read_model(path).main.tensor("table").data, table)
