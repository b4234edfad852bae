"""script-grow-until-pressure: a Python scenario script (run with `python -m smpmem run` on purpose).

Shows what a TOML program cannot say: a loop whose length depends on what
the machine answers. The script maps 1 MiB chunks and writes them until an
mmap fails or it has taken 48 MiB, forks a child that rewrites half of one
chunk (copy-on-write), then frees everything in reverse order. Watch the
page faults, COW copies and reclaim: 48 MiB do not fit in this machine's
64 MiB of RAM (about 46 MiB usable), so kswapd wakes, scans the anonymous
lists and swaps pages out to the 64 MiB swap area (pgscan_anon,
pgsteal_anon, pswpout), the grower stalls in direct reclaim
(allocstall_movable), and the child's write to the first chunk, long since
swapped out, reads it back in (pswpin, pgmajfault) before copying it.
"""

SCENARIO = """
name = "script-grow-until-pressure"
description = "A Python scenario script: map and write 1 MiB chunks until 48 MiB, fork, COW, free"

[machine]
cpus = 2
ram = "64MiB"

[[machine.disk]]
name = "sda"
preset = "ssd"

[[machine.swap]]
name = "/dev/sda2"
size = "64MiB"

[run]
duration = "200ms"
"""

COMM = "grower"


async def main(sys):
    chunks = []
    while len(chunks) < 48:
        region = await sys.mmap(size="1MiB")
        chunks.append(region)
        await sys.touch(region=region, write=True)
    await sys.fork(program=[
        {"op": "touch", "region": chunks[0], "write": True, "size": 512 * 1024},
        {"op": "exit"},
    ])
    await sys.compute(ns=100_000)
    for region in reversed(chunks):
        await sys.munmap(region=region)
