"""Loading valid scenarios: defaults, units, resolution and overrides (smpmem/scenario/_load.py)."""

from pathlib import Path

import orjson
import pydantic
import pytest

from smpmem.scenario import (
    Fork,
    Loop,
    Mmap,
    Scenario,
    ScenarioError,
    Touch,
    load_scenario,
    parse_scenario,
)
from smpmem.sim.costs import DEFAULT_COSTS, CostModel

DATA = Path(__file__).parent / "data"
KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


class TestMinimal:
    def test_empty_text_is_all_defaults(self):
        """An empty scenario is a 4-CPU x86_64 machine with 1 GiB and the kernel's default sysctls."""
        sc = parse_scenario("")
        assert sc.name == "scenario"
        assert (sc.machine.cpus, sc.machine.layout, sc.machine.ram, sc.machine.nodes) == (4, "x86_64", GiB, 1)
        t = sc.tunables
        assert (t.swappiness, t.dirty_ratio, t.dirty_background_ratio, t.watermark_scale_factor) == (60, 20, 10, 10)
        assert (t.dirty_expire_centisecs, t.dirty_writeback_centisecs, t.vfs_cache_pressure) == (3000, 500, 100)
        assert t.lowmem_reserve_ratio == [256, 256, 32, 0]
        assert t.min_free_kbytes is None and t.pcp_batch is None and t.pcp_high is None
        assert (t.overcommit_memory, t.page_cluster, t.oom_kill_allocating_task) == (0, 3, 0)
        assert (sc.run.duration, sc.run.seed, sc.run.events, sc.run.debug_vm) == (100_000_000, 1, ["*"], True)
        assert sc.costs.cost_model() == DEFAULT_COSTS
        assert sc.process == []

    def test_name_defaults_to_file_stem(self, tmp_path):
        """Without a name key the scenario is named after its file."""
        f = tmp_path / "my-test.toml"
        f.write_text('[[process]]\nname = "a"\nprogram = [{ op = "exit" }]\n')
        assert load_scenario(f).name == "my-test"
        assert load_scenario(str(f)).name == "my-test"

    def test_stem_with_spaces_is_made_safe(self, tmp_path):
        """A file stem that would make a bad run directory name is cleaned, not refused."""
        f = tmp_path / "my test (2).toml"
        f.write_text("")
        assert load_scenario(f).name == "my-test-2"

    def test_small_process(self):
        """A minimal process with an inline program parses into typed steps."""
        sc = parse_scenario(
            '[[process]]\nname = "w"\nprogram = [\n'
            '  { op = "mmap", name = "buf", size = "1MiB" },\n'
            '  { op = "touch", region = "buf", write = true },\n]\n'
        )
        (p,) = sc.process
        mmap, touch = p.program
        assert isinstance(mmap, Mmap) and isinstance(touch, Touch)
        assert (mmap.size, mmap.prot, mmap.flags, mmap.file) == (MiB, "rw", "private|anonymous", None)
        assert (touch.region, touch.pattern, touch.write, touch.count, touch.size) == ("buf", "sequential", True, None, None)


@pytest.fixture(scope="module")
def full() -> Scenario:
    return load_scenario(DATA / "full.toml")


class TestFull:
    @pytest.fixture
    def sc(self, full: Scenario) -> Scenario:
        return full

    def test_machine(self, sc):
        """Machine sizes in every spelling become bytes, and disk presets fill what was not given."""
        m = sc.machine
        assert (m.cpus, m.layout, m.ram) == (8, "i386", 2 * GiB)
        assert [(z.name, z.start, z.size) for z in m.zone] == [
            ("DMA", 0, 16 * MiB), ("Normal", 16 * MiB, 880 * MiB), ("HighMem", 896 * MiB, 1152 * MiB)]
        sda, nvme = m.disk
        assert (sda.latency, sda.bandwidth, sda.queue_depth, sda.size) == (8_000_000, 150 * MiB, 1, 100 * GiB)
        assert (sda.error_sectors, sda.error_rate) == ([7, 4096], 0.001)
        assert (nvme.latency, nvme.bandwidth, nvme.queue_depth, nvme.size) == (20_000, 2 * GiB, 128, None)
        assert [s.size for s in m.swap] == [4 * GiB, GiB]
        assert m.swap_priorities() == [-2, 10]
        assert m.file[0].size == 3 * GiB // 2

    def test_tunables(self, sc):
        """Tunables keep the kernel's units; a background byte limit reads the background ratio as 0."""
        t = sc.tunables
        assert (t.min_free_kbytes, t.watermark_scale_factor, t.swappiness) == (8192, 150, 100)
        assert (t.dirty_background_bytes, t.dirty_background_ratio, t.dirty_ratio) == (64 * MiB, 0, 20)
        assert (t.pcp_batch, t.pcp_high, t.tlb_entries, t.split_ptlock, t.per_vma_lock) == (31, 186, 1536, False, True)
        assert (t.overcommit_memory, t.page_cluster, t.oom_kill_allocating_task) == (2, 0, 1)

    def test_costs(self, sc):
        """Cost overrides accept times and ints; the rest keep CostModel's defaults."""
        assert sc.costs.overrides() == {"clear_page": 500, "copy_page": 900, "fault_entry": 1000}
        cm = sc.costs.cost_model()
        assert isinstance(cm, CostModel)
        assert cm == DEFAULT_COSTS.with_overrides(sc.costs.overrides())

    def test_run(self, sc):
        """Run times become ns and a comma-separated event string becomes a list of globs."""
        r = sc.run
        assert (r.duration, r.seed, r.snapshot_interval, r.debug_vm, r.max_events) == (
            1_500_000_000, 42, 10_000_000, False, 1_000_000)
        assert r.events == ["lock:*", "!lock:lock_release"]
        names = [e.name for e in r.selected_events()]
        assert "lock_release" not in names and "contention_begin" in names

    def test_processes(self, sc):
        """Processes keep their steps in order, nested programs included."""
        db, stream = sc.process
        assert (db.count, db.threads, db.cpus, db.start, db.oom_score_adj) == (2, 4, [0, 1, 2, 3], 5_000_000, -500)
        assert [s.op for s in db.program] == [
            "mmap", "mmap", "malloc", "malloc", "touch", "touch", "touch", "mprotect", "brk", "free", "loop",
            "write", "fsync", "open", "read", "fork", "spawn_threads", "munmap", "munmap", "exit"]
        assert db.program[1].flags == "private"  # a file mapping defaults to MAP_PRIVATE
        assert db.program[8].delta == -64 * KiB
        loop = db.program[10]
        assert isinstance(loop, Loop) and [s.op for s in loop.body] == ["compute", "lock", "read", "sleep"]
        assert loop.body[0].ns == 200_000
        fork = db.program[15]
        assert isinstance(fork, Fork) and fork.program[1].code == 3
        assert (stream.builtin, stream.params, stream.program) == ("stream", {"array_size": "64MiB", "iterations": 10}, None)

    def test_frozen(self, sc):
        """A loaded scenario cannot be changed in place."""
        with pytest.raises(pydantic.ValidationError):
            sc.machine.cpus = 2  # type: ignore[misc]

    def test_resolved_is_json_and_round_trips(self, sc):
        """resolved() is JSON-ready, has every default and unit resolved, and loads back to the same scenario."""
        data = sc.resolved()
        assert orjson.loads(orjson.dumps(data)) == data
        assert data["machine"]["swap"][0]["priority"] == -2
        assert data["tunables"]["swappiness"] == 100
        assert data["costs"]["clear_page"] == 500 and data["costs"]["ipi_send"] == DEFAULT_COSTS.ipi_send
        assert Scenario.model_validate(data).resolved() == data


class TestResolution:
    def test_x86_64_default_zones(self):
        """x86_64 with 8 GiB gets DMA below 16 MiB, DMA32 to 4 GiB and Normal above."""
        sc = parse_scenario('[machine]\nram = "8GiB"\n')
        assert [(z.name, z.start, z.size) for z in sc.machine.zone_layout()] == [
            ("DMA", 0, 16 * MiB), ("DMA32", 16 * MiB, 4 * GiB - 16 * MiB), ("Normal", 4 * GiB, 4 * GiB)]

    def test_i386_default_zones(self):
        """i386 with 2 GiB gets DMA, Normal to 896 MiB (lowmem) and HighMem above."""
        sc = parse_scenario('[machine]\nlayout = "i386"\nram = "2GiB"\n')
        assert [(z.name, z.start, z.end) for z in sc.machine.zone_layout()] == [
            ("DMA", 0, 16 * MiB), ("Normal", 16 * MiB, 896 * MiB), ("HighMem", 896 * MiB, 2 * GiB)]

    def test_numa_default_zones(self):
        """Two nodes split RAM in half: node 0 has the low zones, node 1 only what lies above."""
        sc = parse_scenario('[machine]\nram = "8GiB"\nnodes = 2\n')
        assert [(z.node, z.name, z.start, z.end) for z in sc.machine.zone_layout()] == [
            (0, "DMA", 0, 16 * MiB), (0, "DMA32", 16 * MiB, 4 * GiB), (1, "Normal", 4 * GiB, 8 * GiB)]
        assert Scenario.model_validate(sc.resolved()) == sc.model_copy(
            update={"machine": sc.machine.model_copy(update={"zone": sc.machine.zone_layout()})})

    def test_small_ram_has_only_dma(self):
        """A machine smaller than 16 MiB has just a DMA zone."""
        sc = parse_scenario('[machine]\nram = "8MiB"\n')
        assert [(z.name, z.size) for z in sc.machine.zone_layout()] == [("DMA", 8 * MiB)]

    def test_dirty_bytes_zeroes_ratio(self):
        """Setting dirty_bytes reads dirty_ratio back as 0, as the sysctl does."""
        sc = parse_scenario('[tunables]\ndirty_bytes = "32MiB"\n')
        assert (sc.tunables.dirty_bytes, sc.tunables.dirty_ratio) == (32 * MiB, 0)

    def test_no_events(self):
        """events = [] selects no event at all (not every event)."""
        sc = parse_scenario("[run]\nevents = []\n")
        assert sc.run.events == [] and sc.run.selected_events() == []

    def test_prot_and_flags_are_canonical(self):
        """prot and flags are stored in one spelling whatever order the file used."""
        sc = parse_scenario('[[process]]\nname = "p"\nprogram = [{ op = "mmap", name = "a", size = 4096, '
                            'prot = "r-x", flags = "MAP_ANONYMOUS | map_private|populate" }]\n')
        step = sc.process[0].program[0]
        assert (step.prot, step.flags) == ("rx", "private|anonymous|populate")

    def test_swap_and_file_default_to_first_disk(self):
        """A swap area or file without disk lives on the first declared disk."""
        sc = parse_scenario('[[machine.disk]]\nname = "vda"\n[[machine.disk]]\nname = "vdb"\n'
                            '[[machine.swap]]\nname = "/swap"\nsize = "64MiB"\n'
                            '[[machine.file]]\npath = "/f"\nsize = 10\n')
        assert sc.machine.disk_of(sc.machine.swap[0].disk).name == "vda"
        data = sc.resolved()
        assert data["machine"]["swap"][0]["disk"] == "vda" and data["machine"]["file"][0]["disk"] == "vda"

    def test_array_of_tables_program(self):
        """Steps may be written as [[process.program]] tables, nested bodies as [[process.program.body]]."""
        sc = parse_scenario(
            '[[process]]\nname = "p"\n'
            '[[process.program]]\nop = "mmap"\nname = "a"\nsize = "64KiB"\n'
            '[[process.program]]\nop = "loop"\ncount = 2\n'
            '[[process.program.body]]\nop = "touch"\nregion = "a"\n'
        )
        loop = sc.process[0].program[1]
        assert loop.count == 2 and loop.body[0].region == "a"


class TestOverrides:
    def test_dotted_and_nested(self, tmp_path):
        """Overrides replace values by dotted path or nested table before validation."""
        f = tmp_path / "s.toml"
        f.write_text('[run]\nseed = 1\n[[process]]\nname = "p"\nprogram = [{ op = "exit" }]\n')
        sc = load_scenario(f, {"run.seed": 9, "process[0].count": 3, "tunables": {"swappiness": 10},
                               "run": {"events": "lock:*"}})
        assert (sc.run.seed, sc.process[0].count, sc.tunables.swappiness, sc.run.events) == (9, 3, 10, ["lock:*"])

    def test_bad_override_is_blamed_on_the_override(self, tmp_path):
        """A bad value from an override says so instead of pointing at a line of the file."""
        f = tmp_path / "s.toml"
        f.write_text("[run]\nseed = 1\n")
        with pytest.raises(ScenarioError) as info:
            load_scenario(f, {"run.seed": -4})
        assert str(info.value) == f"{f} (override): run.seed: must be between 0 and 18446744073709551615, got -4"

    def test_override_of_missing_entry(self):
        """An override of a process that does not exist is refused, naming the index."""
        with pytest.raises(ScenarioError) as info:
            parse_scenario("", "s.toml", {"process[2].count": 1})
        assert "process[2]" in str(info.value) and "override" in str(info.value)


class TestFiles:
    def test_missing_file(self, tmp_path):
        """A scenario path that does not exist is one line naming it."""
        with pytest.raises(ScenarioError) as info:
            load_scenario(tmp_path / "nope.toml")
        assert str(info.value) == f"{tmp_path / 'nope.toml'}: no such file"

    def test_directory(self, tmp_path):
        """A directory given as the scenario is refused clearly."""
        with pytest.raises(ScenarioError, match="is a directory"):
            load_scenario(tmp_path)

    def test_not_utf8(self, tmp_path):
        """A binary file is refused as not being UTF-8 TOML."""
        f = tmp_path / "bin.toml"
        f.write_bytes(b"\xff\xfe\x00")
        with pytest.raises(ScenarioError, match="not UTF-8"):
            load_scenario(f)

    def test_syntax_error_has_line_and_column(self, tmp_path):
        """A TOML syntax error names the file, line and column."""
        f = tmp_path / "bad.toml"
        f.write_text('[run]\nseed = 1\nduration = \n')
        with pytest.raises(ScenarioError) as info:
            load_scenario(f)
        assert str(info.value) == f"{f}:3: not valid TOML: invalid value (column 12)"
