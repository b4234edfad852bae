"""The command line: ``python -m smpmem COMMAND``.

Every error in arguments or input is one line on stderr and exit status 2;
a run that fails inside the model exits 1 and says why; Ctrl-C stops a run
cleanly (complete log lines, run.json saying ``interrupted``) with 130.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn, Sequence

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def die(msg: str, code: int = EXIT_USAGE) -> NoReturn:
    print(f"smpmem: {msg}", file=sys.stderr)
    raise SystemExit(code)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="smpmem", description="An executable, concurrent model of Linux memory management.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    r = sub.add_parser("run", help="run a scenario and write its run directory under logs/",
                       description="Run a scenario (TOML) in virtual time; write logs/<name>-<seed>-<stamp>/.")
    r.add_argument("scenario", help="scenario file (.toml), or the name of a shipped scenario")
    r.add_argument("--seed", type=int, help="override run.seed")
    r.add_argument("--events", help='events to log, trace-cmd style globs: "kmem:*,vmscan:*" ("" for none)')
    r.add_argument("--duration", help='override run.duration, e.g. "50ms"')
    r.add_argument("--out", type=Path, help="directory that receives the run directory (default: logs/)")
    r.add_argument("--dir", type=Path, help="exact run directory to write (instead of a stamped one)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument("-q", "--quiet", action="store_true", help="print only the run directory")

    v = sub.add_parser("validate", help="check a scenario without running it")
    v.add_argument("scenario")

    sub.add_parser("list", help="the shipped scenarios and built-in programs")

    e = sub.add_parser("events", help="the event catalog (optionally filtered by globs)")
    e.add_argument("globs", nargs="?", default="*")

    from .analysis.cli import add_commands

    p.set_defaults(_extra=add_commands(sub))
    from .experiments.cli import add_commands as add_experiment_commands  # sweep, explore
    p.set_defaults(_extra={**p.get_default("_extra"), **add_experiment_commands(sub)})
    return p


def main(argv: Sequence[str] | None = None) -> int:
    import signal

    if hasattr(signal, "SIGPIPE"):  # `smpmem list | head` ends quietly, as a Unix tool does
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    args = build_parser().parse_args(argv)
    handlers = {"run": cmd_run, "validate": cmd_validate, "list": cmd_list, "events": cmd_events, **args._extra}
    return handlers[args.command](args)


def scenarios_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "scenarios"


def resolve_scenario_path(name: str) -> Path:
    p = Path(name)
    if p.exists():
        return p
    for cand in (scenarios_dir() / name, scenarios_dir() / f"{name}.toml", scenarios_dir() / f"{name}.py"):
        if cand.exists():
            return cand
    die(f"{name}: no such scenario file (shipped ones: `python -m smpmem list`)")


def load(name: str, overrides: dict | None = None):  # type: ignore[no-untyped-def]
    from .scenario import ScenarioError, load_scenario
    from .workload._builtins import UnknownBuiltin, builtin_program

    path = resolve_scenario_path(name)
    try:
        sc = load_scenario(path, overrides=overrides or None)
    except ScenarioError as e:
        die(str(e))
    for i, proc in enumerate(sc.process):
        if proc.builtin is not None:
            try:
                builtin_program(proc.builtin, proc.params)
            except UnknownBuiltin as e:
                die(f"{path}: process[{i}].builtin: {e}")
            except Exception as e:  # pydantic ValidationError of the generated steps
                die(f"{path}: process[{i}].params: {str(e).splitlines()[0]}")
    return path, sc


def cmd_run(args: argparse.Namespace) -> int:
    from .run import run_scenario
    from .scenario import parse_time

    overrides: dict = {}
    if args.seed is not None:
        overrides["run.seed"] = args.seed
    if args.events is not None:
        overrides["run.events"] = args.events
    if args.duration is not None:
        try:
            overrides["run.duration"] = parse_time(args.duration)
        except ValueError as e:
            die(f"--duration: {e}")
    script = None
    if args.scenario.endswith(".py") or (not Path(args.scenario).exists()
                                         and resolve_scenario_path(args.scenario).suffix == ".py"):
        from .scenario import ScenarioError
        from .workload.script import ScriptError, load_script

        path = resolve_scenario_path(args.scenario)  # a shipped script by name, as `list` shows it
        try:
            script = load_script(path, overrides or None)
        except (ScenarioError, ScriptError) as e:
            die(str(e))
        sc = script.scenario
    else:
        path, sc = load(args.scenario, overrides)
    progress = not args.no_progress and not args.quiet and sys.stderr.isatty()
    from .kernel import BootError
    from .mm.page_alloc import BootError as PageAllocBootError

    try:
        res = run_scenario(sc, out_root=args.out or Path("logs"), out_dir=args.dir, source=str(path),
                           progress=progress, script=script)
    except (BootError, PageAllocBootError) as e:
        die(f"{path}: machine: this machine cannot boot: {e}")
    if args.quiet:
        print(res.dir)
    else:
        print(f"{res.status}: {res.reason}; {res.virtual_ns / 1e6:.3f} ms virtual in {res.wall_s:.2f} s wall, "
              f"{res.events} events")
        if res.error:
            print(f"error: {res.error}")
        print(f"run directory: {res.dir}")
    return res.exit_code


def cmd_validate(args: argparse.Namespace) -> int:
    if args.scenario.endswith(".py") or (not Path(args.scenario).exists()
                                         and resolve_scenario_path(args.scenario).suffix == ".py"):
        # A script: imported (its module-level code runs, as for `run`) and its SCENARIO checked; main is not run.
        from .scenario import ScenarioError
        from .workload.script import ScriptError, load_script

        path = resolve_scenario_path(args.scenario)
        try:
            sc = load_script(path).scenario
        except (ScenarioError, ScriptError) as e:
            die(str(e))
        print(f"{path}: ok (a script; {sc.machine.cpus} CPUs, {sc.machine.layout}, {sc.machine.ram // 2**20} MiB, "
              f"{sum(p.count for p in sc.process)} processes besides the script's own)")
        return 0
    path, sc = load(args.scenario)
    print(f"{path}: ok ({sc.machine.cpus} CPUs, {sc.machine.layout}, {sc.machine.ram // 2**20} MiB, "
          f"{sum(p.count for p in sc.process)} processes)")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    import tomllib

    from .workload._builtins import BUILTINS, builtin_params

    print("Shipped scenarios (scenarios/):")
    for p in sorted([*scenarios_dir().glob("*.toml"), *scenarios_dir().glob("*.py")]):
        if p.suffix == ".py":  # a script: its docstring's first line (not imported: nothing runs)
            import ast

            desc = "(Python script)"
            for node in ast.parse(p.read_text()).body:
                if (isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "SCENARIO" for t in node.targets)
                        and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
                    try:
                        desc += " " + tomllib.loads(node.value.value).get("description", "")
                    except tomllib.TOMLDecodeError:
                        desc += " (SCENARIO is not valid TOML)"
        else:
            try:
                desc = tomllib.loads(p.read_text()).get("description", "")
            except tomllib.TOMLDecodeError:
                desc = "(not valid TOML)"
        print(f"  {p.stem:34s} {desc}")
    print("\nBuilt-in programs (builtin = NAME, params = { … }; see docs/programs.md):")
    for name, (_, doc) in sorted(BUILTINS.items()):
        params = ", ".join(builtin_params(name))
        print(f"  {name:34s} {doc}" + (f" Params: {params}." if params else ""))
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    from .trace.catalog import select

    try:
        evs = select(args.globs)
    except ValueError as e:
        die(str(e))
    for ev in evs:
        print(f"{ev.qualname:45s} {' '.join(ev.fields)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
