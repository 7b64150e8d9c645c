"""The constants every other module relies on."""

import numpy as np
import pytest

from g2h_edge import schema
from g2h_edge.errors import MissingExtraError, require


def test_channel_counts_and_units():
    assert schema.T == 180
    assert len(schema.IN_COLS) == 10 and len(set(schema.IN_COLS)) == 10
    assert len(schema.MF_COLS) == 14 and len(schema.JM_COLS) == 3
    assert schema.TARGET_UNIT == {"mf": "N/kg", "jm": "Nm/kg"}


def test_mirror_swaps_right_and_left_and_is_an_involution():
    q = np.arange(20, dtype=np.float32).reshape(2, 10)
    m = schema.mirror_sides(q)
    for i, name in enumerate(schema.IN_COLS):
        other = name[:-2] + ("_l" if name.endswith("_r") else "_r")
        assert m[0, i] == q[0, schema.IN_COLS.index(other)]
    np.testing.assert_array_equal(schema.mirror_sides(m), q)


def test_mirror_rejects_wrong_channel_count():
    with pytest.raises(ValueError, match="expected 10 channels"):
        schema.mirror_sides(np.zeros((3, 9)))


@pytest.mark.parametrize("cols, task", [(schema.MF_COLS, "mf"), (schema.JM_COLS, "jm")])
def test_task_lookup(cols, task):
    assert schema.task_for_out_cols(list(cols)) == task
    assert schema.out_cols_for(task) == cols


def test_task_lookup_refuses_reordered_columns():
    with pytest.raises(ValueError, match="match neither task"):
        schema.task_for_out_cols(list(reversed(schema.JM_COLS)))
    with pytest.raises(ValueError, match="unknown task"):
        schema.out_cols_for("emg")


def test_cycle_durations_follow_the_metronome():
    assert schema.cycle_duration_s("slow") == pytest.approx(120 / 78)
    assert schema.cycle_duration_s("fast") == pytest.approx(120 / 135)


def test_require_names_the_extra():
    with pytest.raises(MissingExtraError, match=r"pip install 'g2h-edge\[gpu\]'"):
        require("surely_not_a_module_g2h", "gpu", "TensorRT plans")
