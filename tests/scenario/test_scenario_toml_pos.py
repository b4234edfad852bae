"""Lines of keys and array elements in TOML text (smpmem/scenario/_toml_pos.py)."""

import tomllib

from smpmem.scenario._toml_pos import key_lines, line_of

TEXT = '''\
name = "x"  # a comment with [brackets] and = signs
run.seed = 2

[machine]
ram = "1GiB"

[[machine.zone]]
name = "DMA"

[[machine.zone]]
name = "Normal"
"quoted key" = "it's \\\" # not a comment"

[[process]]
name = "a"
program = [
  { op = "mmap", name = "buf", size = "1MiB" },  # ] } tricky
  { op = "loop", count = 2, body = [
      { op = "touch", region = "buf" },
  ] },
]
note = """
multi-line with ] and [[x]] inside
"""

[[process]]
name = "b"

[[process.program]]
op = "exit"

[[process.program]]
op = "loop"

[[process.program.body]]
op = "compute"
'''


class TestKeyLines:
    def test_text_is_valid_toml(self):
        """The fixture itself parses, so the scanner sees what tomllib sees."""
        assert tomllib.loads(TEXT)["process"][1]["program"][1]["body"][0]["op"] == "compute"

    def test_keys_and_tables(self):
        """Plain keys, dotted keys and table headers get their own line."""
        lines = key_lines(TEXT)
        assert lines[("name",)] == 1
        assert lines[("run", "seed")] == 2
        assert lines[("machine", "ram")] == 5

    def test_array_of_tables_indices(self):
        """[[a.b]] headers are numbered as TOML numbers them, nested ones within their parent."""
        lines = key_lines(TEXT)
        assert lines[("machine", "zone", 0)] == 7
        assert lines[("machine", "zone", 1, "name")] == 11
        assert lines[("machine", "zone", 1, "quoted key")] == 12
        assert lines[("process", 1, "program", 0, "op")] == 30
        assert lines[("process", 1, "program", 1, "body", 0, "op")] == 36

    def test_inline_arrays_and_tables(self):
        """Elements of multi-line arrays and keys of inline tables get the line they are written on."""
        lines = key_lines(TEXT)
        assert lines[("process", 0, "program", 0, "size")] == 17
        assert lines[("process", 0, "program", 1)] == 18
        assert lines[("process", 0, "program", 1, "body", 0, "region")] == 19
        assert lines[("process", 0, "note")] == 22
        assert lines[("process", 1, "name")] == 27

    def test_nearest_ancestor(self):
        """A path that is not written (a missing key) gets the line of its nearest written ancestor."""
        lines = key_lines(TEXT)
        assert line_of(lines, ("process", 0, "program", 0, "prot")) == 17
        assert line_of(lines, ("tunables", "swappiness")) is None

    def test_never_raises(self):
        """Text the scanner cannot follow gives what it found so far, never an exception."""
        assert key_lines('a = 1\n[[[') == {("a",): 1}
