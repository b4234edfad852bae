"""Python scenario scripts: SCENARIO + async main(sys) run through the same system-call layer."""

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from smpmem.run import run_scenario
from smpmem.workload.script import ScriptError, load_script

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = '''
SCENARIO = """
[machine]
cpus = 2
ram = "128MiB"
[run]
duration = "50ms"
events = ["exceptions:page_fault_user"]
"""
COMM = "scripted"

async def main(sys):
    n = 0
    while n < 5:                       # a loop TOML cannot say: bound by a result
        r = await sys.mmap(size="64KiB")
        await sys.touch(region=r, write=True)
        n += 1
    await sys.munmap(region="r1")
'''


def test_script_runs_its_main_as_a_process(tmp_path):
    """main(sys) maps and writes five 64 KiB regions: 80 user page faults from pid comm 'scripted'."""
    p = tmp_path / "s.py"
    p.write_text(SCRIPT)
    script = load_script(p)
    assert script.scenario.name == "s" and script.comm == "scripted"
    res = run_scenario(script.scenario, out_dir=tmp_path / "run", script=script)
    assert res.status == "completed", res.error
    recs = [orjson.loads(x) for x in (tmp_path / "run" / "events.jsonl").read_bytes().splitlines()]
    faults = [r for r in recs if r["event"] == "page_fault_user" and r["comm"] == "scripted"]
    assert len(faults) == 5 * 16


def test_a_bad_call_is_a_program_error_naming_the_field(tmp_path):
    """sys.mmap(size=-1) stops the script's process with a message naming the call and field."""
    p = tmp_path / "bad.py"
    p.write_text(SCRIPT.replace('size="64KiB"', "size=-1"))
    script = load_script(p)
    res = run_scenario(script.scenario, out_dir=tmp_path / "run", script=script)
    assert res.status == "failed"
    assert "sys.mmap(): size" in res.error


@pytest.mark.parametrize("text, needle", [
    ("x = 1\n", "defines SCENARIO"),
    ("SCENARIO = ''\n", "async def main(sys)"),
    ("raise RuntimeError('boom')\n", "importing the script failed: RuntimeError: boom"),
])
def test_unusable_scripts_say_why(tmp_path, text, needle):
    """A script without SCENARIO or main, or one that fails to import, is one clear message."""
    p = tmp_path / "x.py"
    p.write_text(text)
    with pytest.raises(ScriptError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        load_script(p)


def test_cli_runs_the_shipped_script_and_rejects_a_bad_one(tmp_path):
    """`smpmem run scenarios/x.py` completes; a script with bad TOML exits 2 with one line, no traceback."""
    ok = subprocess.run([sys.executable, "-m", "smpmem", "run", str(ROOT / "scenarios/script-grow-until-pressure.py"),
                         "--duration", "5ms", "--out", str(tmp_path), "-q"], capture_output=True, text=True, cwd=ROOT)
    assert ok.returncode == 0, ok.stderr
    bad = tmp_path / "bad.py"
    bad.write_text('SCENARIO = "[machine]\\ncpus = -3"\nasync def main(sys):\n    pass\n')
    r = subprocess.run([sys.executable, "-m", "smpmem", "run", str(bad)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "cpus" in r.stderr


def test_cli_finds_a_shipped_script_by_name_and_validates_scripts(tmp_path):
    """`smpmem run NAME` and `smpmem validate NAME` find a shipped script by the name `list` shows; validate
    checks a script's SCENARIO without running its main (a bad one: exit 2, one line)."""
    def cli(*a: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "smpmem", *a], capture_output=True, text=True, cwd=ROOT)

    ok = cli("run", "script-grow-until-pressure", "--duration", "5ms", "--out", str(tmp_path), "-q")
    assert ok.returncode == 0, ok.stderr
    v = cli("validate", "script-grow-until-pressure")
    assert v.returncode == 0 and "ok (a script;" in v.stdout, v.stderr
    bad = tmp_path / "bad.py"
    bad.write_text('SCENARIO = "[machine]\\ncpus = -3"\nasync def main(sys):\n    raise SystemExit(9)\n')
    r = cli("validate", str(bad))
    assert r.returncode == 2 and "Traceback" not in r.stderr and "cpus" in r.stderr
