"""Malformed scenarios through the command line: one line naming file, field and reason, exit 2, no traceback."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

P = '[[process]]\nname = "p"\n'


def prog(*steps: str) -> str:
    return P + "program = [\n" + "".join(f"  {s},\n" for s in steps) + "]\n"


MMAP = '{ op = "mmap", name = "buf", size = "1MiB" }'

# (id, scenario text, fragments the one-line message must contain)
CASES = [
    ("wrong-type", '[machine]\ncpus = "four"\n', ["bad.toml:2:", "machine.cpus", 'expected an integer, got the string "four"']),
    ("wrong-type-in-step", prog(MMAP, '{ op = "touch", region = "buf", write = "yes" }'),
     ["process[0].program[1].write", "expected true or false"]),
    ("unknown-key", '[machine]\nrams = "1GiB"\n', ["bad.toml:2:", "machine.rams", "unknown key 'rams'; did you mean 'ram'?"]),
    ("unknown-step-key", prog('{ op = "mmap", name = "buf", sise = "1MiB" }'),
     ["process[0].program[0].sise", "did you mean 'size'?"]),
    ("negative-size", prog('{ op = "mmap", name = "buf", size = "-1MiB" }'),
     ["process[0].program[0].size", "negative"]),
    ("negative-ram", '[machine]\nram = -4096\n', ["machine.ram", "negative"]),
    ("zone-larger-than-ram", '[machine]\nram = "64MiB"\n[[machine.zone]]\nname = "DMA"\nstart = 0\nsize = "128MiB"\n',
     ["machine.zone[0].size", "ends beyond machine.ram"]),
    ("touch-beyond-mapping", prog(MMAP, '{ op = "touch", region = "buf", offset = "1MiB", size = "4KiB" }'),
     ["process[0].program[1].offset", "touches beyond its mapping"]),
    ("touch-past-end", prog(MMAP, '{ op = "touch", region = "buf", offset = "512KiB", size = "1MiB" }'),
     ["process[0].program[1].size", "exceeds region 'buf'"]),
    ("madvise-beyond-mapping", prog(MMAP, '{ op = "madvise", region = "buf", offset = "2MiB" }'),
     ["process[0].program[1].offset", "advises beyond its mapping"]),
    ("missing-file", prog('{ op = "read", file = "/data/missing" }'),
     ["process[0].program[0].file", "no file '/data/missing' exists"]),
    ("missing-trace-file", prog('{ op = "replay", file = "no-such.lackey" }'),
     ["process[0].program[0].file", "no such trace file"]),
    ("missing-scenario-file", None, ["no-such-scenario.toml", "no such scenario file"]),
    ("unknown-builtin", P + 'builtin = "pagefault1"\n', ["process[0].builtin", "unknown built-in program 'pagefault1'",
                                                         "did you mean 'page_fault1'?"]),
    ("unknown-builtin-param", P + 'builtin = "page_fault1"\nparams = { taks = 2 }\n',
     ["process[0].params.taks", "unknown param 'taks'", "did you mean 'tasks'?"]),
    ("bad-builtin-param", P + 'builtin = "page_fault1"\nparams = { mode = "procs" }\n',
     ["process[0].params.mode", "did you mean 'processes'?"]),
    ("free-of-a-piece", prog('{ op = "malloc", name = "m", size = "64KiB" }',
                             '{ op = "for_each", region = "m", body = [ { op = "free", name = "piece" } ] }'),
     ["for_each", "free takes the whole region"]),
]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "smpmem", *args], capture_output=True, text=True, cwd=cwd,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)


@pytest.mark.parametrize("command", ["run", "validate"])
@pytest.mark.parametrize(("text", "fragments"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_scenario(command: str, text: str | None, fragments: list[str], tmp_path: Path) -> None:
    """`smpmem run/validate bad.toml` prints one line with the file, the field and the reason, and exits 2."""
    if text is None:
        name = "no-such-scenario.toml"
    else:
        name = "bad.toml"
        (tmp_path / name).write_text(text)
    out = run_cli(command, name, "--no-progress", cwd=tmp_path) if command == "run" else run_cli(command, name, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    for frag in fragments:
        assert frag in lines[0], lines[0]
    assert not (tmp_path / "logs").exists(), "a bad scenario must not leave a run directory"


def test_bad_trace_line(tmp_path: Path) -> None:
    """A lackey trace with a line that is not a record fails at load, naming the trace file and the line."""
    (tmp_path / "t.lackey").write_text("==1== Lackey\nI  0401000,3\n L 1fff000,8\nhello world\n")
    (tmp_path / "bad.toml").write_text(prog('{ op = "replay", file = "t.lackey" }'))
    out = run_cli("validate", "bad.toml", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "t.lackey:4: not a lackey record" in out.stderr and "process[0].program[0]" in out.stderr
