"""Whatever a scenario holds, loading gives a Scenario or a ScenarioError, never anything else."""

import tomllib
from pathlib import Path

import orjson
from hypothesis import HealthCheck, given, settings, strategies as st

from smpmem.scenario import Scenario, ScenarioError, parse_scenario
from smpmem.scenario._errors import dotted

FULL = (Path(__file__).parent / "data" / "full.toml").read_text()


def _paths(node, prefix=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield prefix + (i,)
            yield from _paths(v, prefix + (i,))


PATHS = [dotted(p) for p in _paths(tomllib.loads(FULL)) if all(isinstance(x, int) or x.isidentifier() for x in p)]

JUNK = st.one_of(
    st.sampled_from([-1, 0, 1, 2**62, 1.5, -0.5, True, "", "x", "4KiB", "-4KiB", "1GB", "rw", "10ms", [], [1], ["a"],
                     {}, {"op": "exit"}, {"zz": 1}, [{"op": "bogus"}], [{"op": "touch", "region": "nope"}]]),
    st.integers(), st.text(max_size=8),
)


class TestRobustness:
    @settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.dictionaries(st.sampled_from(PATHS), JUNK, min_size=1, max_size=3))
    def test_mutations_fail_cleanly(self, overrides):
        """Junk overrides anywhere in a full scenario give a clean ScenarioError or a JSON-ready Scenario."""
        try:
            sc = parse_scenario(FULL, "full.toml", overrides)
        except ScenarioError as e:
            message = str(e)
            assert message.startswith("full.toml")
            assert "Traceback" not in message and "pydantic" not in message and "Input should" not in message
            return
        assert isinstance(sc, Scenario)
        orjson.dumps(sc.resolved())
