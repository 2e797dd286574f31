"""WOMD ``Scenario`` TFRecords: a file, or a folder of a sharded release read in file-name order.

>>> for scenario in scenetok.womd.iter_scenarios("validation.tfrecord-00000-of-00150"):
...     xy = scenario.states[..., :2]      # [A, 91, 2]
"""

from ._scenetok import STATE_FIELDS, Scenario, ScenarioIterator, iter_scenarios, read_scenarios

__all__ = ["STATE_FIELDS", "Scenario", "ScenarioIterator", "iter_scenarios", "read_scenarios"]
