"""Malformed scenarios: one clear message with file, line, field path and reason (smpmem/scenario/_load.py)."""

import pytest

from smpmem.scenario import ScenarioError, parse_scenario

SRC = "scenarios/bad.toml"

P = '[[process]]\nname = "p"\n'  # a process header; its program follows on line 3


def prog(*steps: str) -> str:
    """A process whose program has one step per line, the first on line 4."""
    return P + "program = [\n" + "".join(f"  {s},\n" for s in steps) + "]\n"


DISK = '[[machine.disk]]\nname = "sda"\n'  # lines 1-2

# (id, scenario text, line, dotted path, a fragment of the reason)
CASES = [
    # --- wrong types --------------------------------------------------------------
    ("int-as-string", '[machine]\ncpus = "4"\n', 2, "machine.cpus", 'expected an integer, got the string "4" (write it without quotes)'),
    ("bool-as-int", "[tunables]\nsplit_ptlock = 1\n", 2, "tunables.split_ptlock", "expected true or false, got 1"),
    ("bool-as-literal", "[tunables]\novercommit_memory = true\n", 2, "tunables.overcommit_memory", "got the boolean true"),
    ("string-as-int", "description = 5\n", 1, "description", "expected a string (in quotes), got 5"),
    ("size-as-bool", "[machine]\nram = true\n", 2, "machine.ram", "expected a size"),
    ("size-float", "[machine]\nram = 1.5\n", 2, "machine.ram", "got the float 1.5"),
    ("time-bad-unit", '[run]\nduration = "10 parsecs"\n', 2, "run.duration", "unknown time unit 'parsecs'"),
    ("time-no-unit", '[run]\nduration = "10"\n', 2, "run.duration", "has no unit"),
    ("table-not-array", '[process]\nname = "x"\n', 1, "process", "write [[process]] with double brackets"),
    ("array-not-table", "machine = [1]\n", 1, "machine", "expected a table, got a list"),
    ("step-wrong-type", prog('{ op = "mmap", name = "a", size = "1MiB" }', '{ op = "touch", region = "a", write = "yes" }'),
     5, "process[0].program[1].write", 'expected true or false, got the string "yes"'),
    ("literal", '[machine]\nlayout = "x86-64"\n', 2, "machine.layout", 'got "x86-64"; did you mean "x86_64"? (allowed: "x86_64", "i386")'),
    ("pattern", prog('{ op = "mmap", name = "a", size = 4096 }', '{ op = "touch", region = "a", pattern = "zipff" }'),
     5, "process[0].program[1].pattern", 'did you mean "zipf"?'),
    ("list-length", "[tunables]\nlowmem_reserve_ratio = [1, 2, 3]\n", 2, "tunables.lowmem_reserve_ratio", "needs exactly 4 entries, got 3"),
    # --- unknown keys, with did-you-mean ----------------------------------------------
    ("unknown-key", '[machine]\ncpus = 2\nrams = "2GiB"\n', 3, "machine.rams", "unknown key 'rams'; did you mean 'ram'?"),
    ("unknown-section", "[tunable]\nswappiness = 1\n", 1, "tunable", "unknown section 'tunable'; did you mean 'tunables'?"),
    ("unknown-tunable", "[tunables]\nswapiness = 1\n", 2, "tunables.swapiness", "did you mean 'swappiness'?"),
    ("unknown-cost", "[costs]\nclear_pag = 10\n", 2, "costs.clear_pag", "did you mean 'clear_page'?"),
    ("unknown-step-key", prog('{ op = "mmap", name = "a", size = 4096 }', '{ op = "touch", regon = "a" }'),
     5, "process[0].program[1].regon", "unknown key 'regon'; did you mean 'region'?"),
    ("unknown-op", prog('{ op = "mmmap", name = "a", size = 4096 }'), 4, "process[0].program[0].op",
     'unknown op "mmmap"; did you mean "mmap"?'),
    ("missing-op", prog("{ size = 1 }"), 4, "process[0].program[0]", "a step needs an op"),
    ("missing-key", prog('{ op = "compute" }'), 4, "process[0].program[0].ns", "is required but missing: CPU time to spend"),
    ("missing-name", "[[process]]\nbuiltin = \"stream\"\n", 1, "process[0].name", "is required but missing"),
    # --- ranges and units -------------------------------------------------------------
    ("negative-size", prog('{ op = "mmap", name = "a", size = "-1MiB" }'), 4, "process[0].program[0].size",
     'a size must not be negative, got "-1MiB"'),
    ("negative-int-size", "[machine]\nram = -4096\n", 2, "machine.ram", "a size must not be negative, got -4096"),
    ("ambiguous-MB", '[machine]\nram = "512MB"\n', 2, "machine.ram", '"512MB" is ambiguous'),
    ("ram-too-big", '[machine]\nram = "2TiB"\n', 2, "machine.ram", "must be at most 1TiB, got \"2TiB\""),
    ("ram-unaligned", "[machine]\nram = 1048577\n", 2, "machine.ram", "must be a multiple of 4KiB (page-aligned)"),
    ("out-of-range", "[tunables]\nswappiness = 300\n", 2, "tunables.swappiness", "must be between 0 and 200, got 300"),
    ("comm-too-long", '[[process]]\nname = "averyveryverylongname"\nbuiltin = "x"\n', 2, "process[0].name",
     "is 21 characters; a comm is at most 15"),
    ("oom-score-adj", '[[process]]\nname = "p"\noom_score_adj = -1001\nbuiltin = "x"\n', 3, "process[0].oom_score_adj",
     "must be between -1000 and 1000"),
    ("bad-glob", '[run]\nevents = ["lock:*", "kmemm:*"]\n', 2, "run.events[1]", "event glob 'kmemm:*' matches no event"),
    ("bad-prot", prog('{ op = "mmap", name = "a", size = 4096, prot = "rwz" }'), 4, "process[0].program[0].prot",
     'expected a protection'),
    ("bad-flag", prog('{ op = "mmap", name = "a", size = 4096, flags = "privat|anonymous" }'), 4,
     "process[0].program[0].flags", "unknown mmap flag 'privat'; did you mean 'private'?"),
    ("scenario-name", 'name = "my scenario"\n', 1, "name", 'got "my scenario"'),
    # --- machine cross-checks ------------------------------------------------------------
    ("zone-beyond-ram", '[machine]\nram = "1GiB"\n[[machine.zone]]\nname = "DMA32"\nstart = 0\nsize = "2GiB"\n', 6,
     "machine.zone[0].size", "ends beyond machine.ram (1GiB)"),
    ("zones-overlap", '[[machine.zone]]\nname = "DMA"\nstart = 0\nsize = "16MiB"\n'
                      '[[machine.zone]]\nname = "DMA32"\nstart = "8MiB"\nsize = "64MiB"\n', 7,
     "machine.zone[1].start", "overlaps machine.zone[0] (DMA [0, 16MiB))"),
    ("zone-unaligned", '[[machine.zone]]\nname = "DMA"\nstart = 100\nsize = "16MiB"\n', 3,
     "machine.zone[0].start", "must be a multiple of 4KiB (page-aligned), got 100 bytes"),
    ("zone-not-in-layout", '[machine]\nlayout = "i386"\n[[machine.zone]]\nname = "DMA32"\nstart = 0\nsize = "16MiB"\n', 4,
     "machine.zone[0].name", "zone 'DMA32' does not exist with layout 'i386' (allowed: DMA, Normal, HighMem)"),
    ("highmem-on-x86_64", '[[machine.zone]]\nname = "DMA"\nstart = 0\nsize = "16MiB"\n'
                          '[[machine.zone]]\nname = "HighMem"\nstart = "16MiB"\nsize = "16MiB"\n', 6,
     "machine.zone[1].name", "does not exist with layout 'x86_64'"),
    ("zone-order", '[[machine.zone]]\nname = "Normal"\nstart = 0\nsize = "16MiB"\n'
                   '[[machine.zone]]\nname = "DMA"\nstart = "16MiB"\nsize = "16MiB"\n', 6,
     "machine.zone[1].name", "zones must follow the order DMA, DMA32, Normal"),
    ("zone-twice", '[[machine.zone]]\nname = "DMA"\nstart = 0\nsize = "16MiB"\n'
                   '[[machine.zone]]\nname = "DMA"\nstart = "16MiB"\nsize = "16MiB"\n', 6,
     "machine.zone[1].name", "node 0 already has a DMA zone"),
    ("i386-ram", '[machine]\nlayout = "i386"\nram = "128GiB"\n', 3, "machine.ram", "must be at most 64GiB with layout \"i386\""),
    ("swap-unknown-disk", DISK + '[[machine.swap]]\nname = "/swap"\nsize = "1GiB"\ndisk = "sdb"\n', 6,
     "machine.swap[0].disk", "no disk named 'sdb'; did you mean 'sda'?"),
    ("swap-no-disk", '[[machine.swap]]\nname = "/swap"\nsize = "1GiB"\n', 1, "machine.swap[0].disk", "no disk is declared"),
    ("swap-too-small", DISK + '[[machine.swap]]\nname = "/swap"\nsize = "4KiB"\n', 5, "machine.swap[0].size",
     "must be at least 40KiB"),
    ("disk-full", DISK + 'size = "1GiB"\n[[machine.file]]\npath = "/f"\nsize = "2GiB"\n', 6, "machine.file[0].size",
     "does not fit on disk 'sda'"),
    ("disk-name", '[[machine.disk]]\nname = "SDA 1"\n', 2, "machine.disk[0].name", "expected a device name"),
    # --- tunables cross-checks ------------------------------------------------------------
    ("dirty-both", '[tunables]\ndirty_ratio = 30\ndirty_bytes = "64MiB"\n', 3, "tunables.dirty_bytes",
     "set dirty_bytes or dirty_ratio, not both"),
    ("pcp-high-low", "[tunables]\npcp_batch = 63\npcp_high = 10\n", 3, "tunables.pcp_high", "must be at least pcp_batch (63)"),
    # --- process cross-checks ----------------------------------------------------------------
    ("touch-beyond-mapping", prog('{ op = "mmap", name = "buf", size = "1MiB" }',
                                  '{ op = "touch", region = "buf", offset = "512KiB", size = "1MiB" }'), 5,
     "process[0].program[1].size", "touches beyond its mapping: offset 512KiB + size 1MiB = 1536KiB exceeds region 'buf' (1MiB"),
    ("touch-offset-beyond", prog('{ op = "mmap", name = "buf", size = "1MiB" }', '{ op = "touch", region = "buf", offset = "1MiB" }'),
     5, "process[0].program[1].offset", "touches beyond its mapping"),
    ("munmap-beyond", prog('{ op = "mmap", name = "buf", size = "1MiB" }', '{ op = "munmap", region = "buf", size = "2MiB" }'),
     5, "process[0].program[1].size", "unmaps beyond its mapping"),
    ("missing-file", prog('{ op = "read", file = "/data/dv" }'), 4, "process[0].program[0].file",
     "no file '/data/dv' exists at this point"),
    ("missing-file-dym", '[[machine.disk]]\nname = "sda"\n[[machine.file]]\npath = "/data/db"\nsize = 10\n'
                         + prog('{ op = "fsync", file = "/data/dv" }'), 9, "process[0].program[0].file",
     "did you mean '/data/db'?"),
    ("mmap-missing-file", prog('{ op = "mmap", name = "m", size = 4096, file = "/nope" }'), 4,
     "process[0].program[0].file", "no file '/nope' exists"),
    ("unknown-region", prog('{ op = "mmap", name = "buf", size = 4096 }', '{ op = "touch", region = "bfu" }'), 5,
     "process[0].program[1].region", "no region named 'bfu' is mapped at this point; did you mean 'buf'?"),
    ("region-before-mmap", prog('{ op = "touch", region = "buf" }', '{ op = "mmap", name = "buf", size = 4096 }'), 4,
     "process[0].program[0].region", "no region is mapped here"),
    ("region-after-munmap", prog('{ op = "mmap", name = "b", size = 4096 }', '{ op = "munmap", region = "b" }',
                                 '{ op = "touch", region = "b" }'), 6,
     "process[0].program[2].region", "which was unmapped at process[0].program[1]"),
    ("use-after-free", prog('{ op = "malloc", name = "m", size = 64 }', '{ op = "free", name = "m" }',
                            '{ op = "touch", region = "m" }'), 6, "process[0].program[2].region", "which was freed"),
    ("free-of-mmap", prog('{ op = "mmap", name = "b", size = 4096 }', '{ op = "free", name = "b" }'), 5,
     "process[0].program[1].name", "release it with munmap"),
    ("loop-unmaps", prog('{ op = "mmap", name = "b", size = 4096 }',
                         '{ op = "loop", count = 2, body = [{ op = "touch", region = "b" }, { op = "munmap", region = "b" }] }'),
     5, "process[0].program[1].body[0].region", "(in the loop's second iteration)"),
    ("child-region-not-in-parent", prog('{ op = "fork", program = [{ op = "mmap", name = "c", size = 4096 }] }',
                                        '{ op = "touch", region = "c" }'), 5, "process[0].program[1].region", "no region named 'c'"),
    ("write-read-only", prog('{ op = "mmap", name = "r", size = 4096, prot = "r" }', '{ op = "touch", region = "r", write = true }'),
     5, "process[0].program[1].write", "whose protection is 'r'"),
    ("stride-not-strided", prog('{ op = "mmap", name = "b", size = 4096 }', '{ op = "touch", region = "b", stride = 8192 }'),
     5, "process[0].program[1].stride", "applies only to pattern 'strided'"),
    ("anon-with-file", '[[machine.disk]]\nname = "sda"\n[[machine.file]]\npath = "/f"\nsize = 4096\n'
                       + prog('{ op = "mmap", name = "m", size = 4096, file = "/f", flags = "private|anonymous" }'), 9,
     "process[0].program[0].flags", "'anonymous' and file '/f' exclude each other"),
    ("after-exit", prog('{ op = "exit" }', '{ op = "compute", ns = 5 }'), 5, "process[0].program[1]", "is never reached"),
    ("affinity-cpu", '[machine]\ncpus = 4\n[[process]]\nname = "p"\ncpus = [0, 7]\nbuiltin = "x"\n', 5,
     "process[0].cpus[1]", "CPU 7 does not exist: machine.cpus is 4 (CPUs 0 … 3)"),
    ("program-and-builtin", P + 'builtin = "stream"\nprogram = [{ op = "exit" }]\n', 3, "process[0].builtin",
     "give either program or builtin, not both"),
    ("neither-program-nor-builtin", P, 1, "process[0]", "needs a program (a list of steps) or a builtin"),
    ("params-without-builtin", P + 'params = { n = 1 }\nprogram = []\n', 3, "process[0].params", "only for a builtin"),
]


@pytest.mark.parametrize("text, line, path, reason", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed(text, line, path, reason):
    """Each malformed scenario gives a message with the line, the field path and the reason."""
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, SRC)
    message = str(info.value)
    lines = message.splitlines()
    wanted = f"{SRC}:{line}: {path}: "
    hit = [ln for ln in lines if ln.strip().startswith(wanted)]
    assert hit, f"no line starts with {wanted!r} in:\n{message}"
    assert any(reason in ln for ln in hit), f"{reason!r} not in:\n{message}"
    assert "Traceback" not in message and "pydantic" not in message and "https://" not in message


class TestMessageShape:
    def test_one_problem_is_one_line(self):
        """A single problem is reported on one line: file:line: path: reason."""
        with pytest.raises(ScenarioError) as info:
            parse_scenario("[tunables]\nswappiness = 300\n", SRC)
        assert str(info.value) == f"{SRC}:2: tunables.swappiness: must be between 0 and 200, got 300"
        (p,) = info.value.problems
        assert (p.path, p.line, p.loc) == ("tunables.swappiness", 2, ("tunables", "swappiness"))

    def test_many_problems_summary_first(self):
        """Several problems give a summary line, then one indented line each, in file order."""
        text = '[machine]\ncpus = 0\nrams = 1\n[run]\nseed = -1\n'
        with pytest.raises(ScenarioError) as info:
            parse_scenario(text, SRC)
        lines = str(info.value).splitlines()
        assert lines[0] == f"{SRC}: 3 errors in the scenario"
        assert [ln.split(": ")[0].strip() for ln in lines[1:]] == [f"{SRC}:2", f"{SRC}:3", f"{SRC}:5"]
        assert all(ln.startswith("  ") for ln in lines[1:])

    def test_misspelt_required_key_is_reported_once(self):
        """A misspelt required key gives the did-you-mean, not also a 'missing' for the key it meant."""
        with pytest.raises(ScenarioError) as info:
            parse_scenario(prog('{ op = "mmap", name = "a", size = 4096 }', '{ op = "touch", regon = "a" }'), SRC)
        assert len(info.value.problems) == 1

    def test_is_an_exception_with_problems(self):
        """ScenarioError is a plain Exception carrying its problems and source."""
        with pytest.raises(Exception) as info:
            parse_scenario("[machine]\ncpus = 0\n", SRC)
        assert isinstance(info.value, ScenarioError)
        assert info.value.source == SRC and info.value.problems[0].line == 2

    def test_no_pydantic_noise_anywhere(self):
        """No case of the table leaks pydantic's URLs, class names or a traceback."""
        for _, text, *_ in CASES:
            with pytest.raises(ScenarioError) as info:
                parse_scenario(text, SRC)
            message = str(info.value)
            assert "errors.pydantic.dev" not in message and "Traceback" not in message
            assert "Input should" not in message and "[type=" not in message

    def test_pickles_with_its_problems(self):
        """A ScenarioError survives pickling (to a sweep's parent process) with every problem intact."""
        import pickle

        with pytest.raises(ScenarioError) as info:
            parse_scenario("[machine]\ncpus = 0\nram = 7\n", SRC)
        again = pickle.loads(pickle.dumps(info.value))
        assert str(again) == str(info.value) and again.problems == info.value.problems
