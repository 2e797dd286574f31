"""WOMD scenarios through the wheel."""

import shutil

import numpy as np
import pytest

import scenetok
from scenetok.errors import InputNotFoundError, InvalidInputError

from conftest import run_failing


def test_the_real_scenario_as_arrays(womd_sample):
    (s,) = scenetok.womd.read_scenarios(womd_sample)
    a = len(s.object_ids)
    assert s.states.shape == (a, 91, 9) and s.valid.shape == (a, 91)
    assert s.timestamps_seconds.shape == (91,) and s.current_time_index == 10
    assert s.object_types.shape == (a,) and set(s.object_types.tolist()) <= {0, 1, 2, 3, 4}
    assert s.sdc_track_index is not None and 0 <= s.sdc_track_index < a
    assert len(s.tracks_to_predict) > 0 and (s.tracks_to_predict < a).all()
    assert (s.valid[s.tracks_to_predict, 10]).all()
    # Invalid states hold no positions worth reading; valid ones are finite.
    assert np.isfinite(s.states[s.valid]).all()
    m = s.map
    assert m["offsets"][0] == 0 and m["offsets"][-1] == len(m["points"]) and len(m["offsets"]) == len(m["id"]) + 1
    assert "lane" in m["kind"] and len(m["kind"]) == len(m["type"])
    assert scenetok.womd.STATE_FIELDS[:2] == ["x", "y"]


def test_iterating_equals_reading_and_folders_read_in_name_order(womd_sample, tmp_path):
    folder = tmp_path / "womd"
    folder.mkdir()
    for i in range(2):
        shutil.copy(womd_sample, folder / f"validation.tfrecord-0000{i}-of-00002")
    read = scenetok.womd.read_scenarios(folder)
    streamed = list(scenetok.womd.iter_scenarios(folder))
    assert len(read) == len(streamed) == 2
    for a, b in zip(read, streamed):
        assert a.scenario_id == b.scenario_id
        np.testing.assert_array_equal(a.states, b.states)


def test_bad_files_raise_the_commands_message(cli, womd_sample, samples, tmp_path):
    with pytest.raises(InputNotFoundError):
        scenetok.womd.read_scenarios(tmp_path / "missing.tfrecord")
    cut = tmp_path / "cut.tfrecord"
    cut.write_bytes(womd_sample.read_bytes()[:100_000])
    with pytest.raises(InvalidInputError) as e:
        scenetok.womd.read_scenarios(cut)
    assert str(cut) in str(e.value)
    assert str(e.value) == run_failing(cli, "eval", "--data", cut, "--model", "ctra", "--out", tmp_path / "run")
    v1 = next((samples / "v1").glob("*.tfrecord"))
    with pytest.raises(InvalidInputError, match="expected a WOMD Scenario TFRecord, found a v1 Frame TFRecord"):
        scenetok.womd.read_scenarios(v1)
    (s,) = scenetok.womd.read_scenarios(womd_sample)
    with pytest.raises(InvalidInputError, match="track index 9999 outside"):
        s.with_tracks_to_predict([9999])
