"""The PCT order of same-instant wake-ups (smpmem.sim.engine.PctSchedule): off by default, deterministic per seed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import trio

from smpmem.sim import Actor, Simulator
from smpmem.sim.engine import PctSchedule

ROOT = Path(__file__).resolve().parents[2]

# Six threads taking one spinlock in a loop: every round they all wake at the same instant.
TIES = """
name = "ties"
[machine]
cpus = 6
ram = "32MiB"
[run]
duration = "200us"
schedule = "{schedule}"
[[process]]
name = "w"
count = 6
builtin = "lockstorm"
params = {{ lock = "l", think = 1000, hold = 300, iterations = 20 }}
"""


def order_log(pct: PctSchedule | None, actors: int = 6, rounds: int = 8) -> list[tuple[int, int]]:
    """(time, actor) of each wake-up when ``actors`` actors sleep 100 ns ``rounds`` times (all tied)."""
    sim = Simulator()
    sim.pct = pct
    log: list[tuple[int, int]] = []

    async def worker(i: int) -> None:
        for _ in range(rounds):
            await sim.sleep(100)
            log.append((sim.now, i))

    async def main(s: Simulator) -> None:
        for i in range(actors):
            s.spawn(Actor(s, f"a{i}"), worker, i)

    trio.run(sim.run, main)
    return log


class TestEngine:
    def test_fifo_is_the_default(self):
        """Without a PctSchedule same-instant wake-ups keep their queueing (spawn) order, round after round."""
        log = order_log(None)
        assert log == [(100 * (r + 1), i) for r in range(8) for i in range(6)]

    def test_pct_reorders_only_within_an_instant(self):
        """Under PCT time still only moves forward; each instant holds the same actors, in another order."""
        log = order_log(PctSchedule(5))
        assert [t for t, _ in log] == sorted(t for t, _ in log)
        for r in range(8):
            assert sorted(i for t, i in log if t == 100 * (r + 1)) == list(range(6))
        assert log != order_log(None)

    def test_pct_is_deterministic_per_seed_and_differs_across_seeds(self):
        """The same seed gives the same order; different seeds give different orders."""
        assert order_log(PctSchedule(3)) == order_log(PctSchedule(3))
        orders = {tuple(order_log(PctSchedule(s))) for s in range(1, 11)}
        assert len(orders) >= 5

    def test_change_points_demote_an_actor(self):
        """At a priority change point the actor being queued drops below every initial priority (PCT)."""
        pct = PctSchedule(1, depth=2, horizon=2)  # the one change point falls on push 1 or 2
        first = Actor(Simulator(), "x")
        pct.key(first, 1)
        pct.key(first, 2)
        assert pct.rank[first.uid] >= PctSchedule.LOWEST - 1
        assert not pct.changes


def run_cli(scenario: Path, seed: int, out: Path) -> bytes:
    """``python -m smpmem run`` in a fresh interpreter; the bytes of the events it wrote."""
    subprocess.run([sys.executable, "-m", "smpmem", "run", str(scenario), "--seed", str(seed), "--dir", str(out),
                    "-q"], check=True, cwd=ROOT, capture_output=True)
    return (out / "events.jsonl").read_bytes()


class TestScenario:
    def test_pct_runs_are_byte_identical_across_processes_and_differ_across_seeds(self, tmp_path):
        """run.schedule = "pct": one seed gives one event log in two processes; other seeds give others."""
        sc = tmp_path / "ties.toml"
        sc.write_text(TIES.format(schedule="pct"))
        a = run_cli(sc, 4, tmp_path / "a")
        b = run_cli(sc, 4, tmp_path / "b")
        assert a == b and len(a.splitlines()) > 200
        others = {run_cli(sc, s, tmp_path / f"s{s}") for s in (5, 6, 7)}
        assert others - {a}

    def test_fifo_runs_do_not_depend_on_pct(self, tmp_path):
        """The default schedule ignores the seed where the scenario has no randomness (lockstorm): one log."""
        sc = tmp_path / "ties.toml"
        sc.write_text(TIES.format(schedule="fifo"))
        assert run_cli(sc, 1, tmp_path / "a") == run_cli(sc, 2, tmp_path / "b")
