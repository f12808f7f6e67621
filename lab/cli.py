"""The ``halab`` command.

    sudo halab run SCENARIO.toml     build, load, break, watch, report
    halab check SCENARIO.toml        validate a scenario without building anything
    sudo halab cli TOPOLOGY          Mininet CLI with lab verbs (fail, heal, crash, pause, ...)
    sudo halab clean                 remove exactly what a crashed lab left behind
    halab topos                      the topologies, with their drawings
    halab report RUN_DIR             rebuild a run's report from its events
    halab path RUN_DIR [ID ...]      the hops of one request, from its events
    halab wire RUN_DIR               L4 against L7 from a run's captures (clients' and origins' pcaps)
    sudo halab grade EXERCISE        a student's own code: unit checks, then on the network, scored
    sudo halab sniff NODE [BPF]      annotated live packet trace inside a node
    sudo halab doctor                what this machine and its kernel can do, lesson by lesson
    sudo halab doctor --cluster lab2 what another server lacks for a lab over several machines
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from lab.core.schema import ConfigError

EXIT_OK, EXIT_EXPECTATION, EXIT_USAGE, EXIT_LAB = 0, 1, 2, 3


def need_root(what: str) -> None:
    if os.geteuid() != 0:
        sys.exit(f"halab {what} builds or enters network namespaces and needs root: run it as 'sudo halab {what} ...'")


def cmd_run(args: argparse.Namespace) -> int:
    from lab.analysis import report
    from lab.runner import load_scenario, new_run_dir, run

    scenario = load_scenario(args.scenario)
    need_root("run")
    if args.bond_impl:
        scenario = dataclasses.replace(scenario, bond=dataclasses.replace(scenario.bond, impl=args.bond_impl))
    run_dir = Path(args.run_dir).resolve() if args.run_dir else new_run_dir(scenario, Path(args.runs))
    print(f"halab: running {scenario.name!r} ({scenario.duration:g} s of load); run directory {run_dir}")
    run(scenario, run_dir, live=not args.quiet)
    metrics = report.build(run_dir)
    paths = report.write(metrics, run_dir, plot=not args.no_plot)
    report.print_report(metrics)
    print("written: " + ", ".join(str(p) for p in paths))
    failed = [c for c in metrics.checks if not c.passed]
    return EXIT_EXPECTATION if failed else EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from lab.runner import load_scenario

    s = load_scenario(args.scenario)
    print(f"{args.scenario}: ok — topology {s.topology} ({', '.join(f'{k}={v}' for k, v in s.topology_params.items())}), "
          f"{s.duration:g} s of load at {s.load.rate:g} req/s from {len(s.load.clients)} clients, {len(s.faults)} faults")
    for f in s.faults:
        print(f"  at {f.at:6.2f} s  {f.action} {f.target or ''}")
    if s.cluster is not None:  # where each node will run, and which links become tunnels: decided before anything is built
        from lab.core.cluster import describe

        for line in describe(s.cluster, s.layout.nodes, s.layout.links):
            print(f"  {line}")
    return EXIT_OK


def topology_params(items: list[str]) -> dict[str, object]:
    """``--param gateways=3`` options as a topology table (numbers, true/false as such; the topology checks them)."""
    params: dict[str, object] = {}
    for item in items:
        key, _, value = item.partition("=")
        params[key] = int(value) if value.isdigit() else {"true": True, "false": False}.get(value.lower(), value)
    return params


def cmd_cli(args: argparse.Namespace) -> int:
    import topologies
    from lab.core.scenario import parse_scenario
    from lab.labcli import LabCLI
    from lab.net.lab import Lab
    from lab.net.roles import plan_services
    from lab.runner import new_run_dir, write_meta

    if args.scenario:  # its network and every service setting ([proxy] rules, TLS ...), without its load or faults
        from lab.runner import load_scenario

        if args.topology or args.param:
            print("halab cli: give a topology (with --param) or --scenario FILE, not both", file=sys.stderr)
            return EXIT_USAGE
        scenario = dataclasses.replace(load_scenario(args.scenario), faults=())
        args.topology = scenario.topology
    elif args.topology:
        params = topology_params(args.param)
        scenario = parse_scenario({"name": f"cli-{args.topology}", "duration": 3600,
                                   "topology": {"name": args.topology, "switch": args.switch, **params}}, "halab cli", topologies.lookup)
    else:
        print("halab cli: name a topology (halab topos lists them) or --scenario FILE", file=sys.stderr)
        return EXIT_USAGE
    need_root("cli")
    from lab.net import features

    if args.bond_impl:
        scenario = dataclasses.replace(scenario, bond=dataclasses.replace(scenario.bond, impl=args.bond_impl))
    scenario = features.resolve(scenario)
    run_dir = new_run_dir(scenario, Path(args.runs))
    run_dir.mkdir(parents=True)
    write_meta(scenario, run_dir)
    with Lab(scenario, run_dir) as lab:
        lab.start_all(plan_services(scenario, lab.addresses, run_dir))
        print(f"halab: {args.topology} is up; services: {', '.join(sorted(lab.services))}. Events go to {run_dir}.")
        if (run_dir / "tls" / "ca.pem").exists():
            print(f"TLS: the run's own CA is {run_dir / 'tls' / 'ca.pem'} (curl --cacert it; --proxy-cacert for an HTTPS proxy)")
        from lab.core.faults import ACTIONS

        print(f"Lab verbs: {', '.join(a.verb for a in ACTIONS.values())}, broken, stats, events, load, drain, undrain. 'help VERB' explains.")
        LabCLI(lab)
    return EXIT_OK


def cmd_clean(args: argparse.Namespace) -> int:
    from lab.net.state import clean

    need_root("clean")
    removed = clean()
    print("removed: " + ", ".join(removed) if removed else "nothing to clean: no crashed lab left anything behind")
    return EXIT_OK


def cmd_spof(args: argparse.Namespace) -> int:
    import topologies
    from lab.analysis.spof import DEFAULT_AVAILABILITY, HOST, LINK, SWITCH, ServiceGraph, availability_of, report

    params = topology_params(args.param)
    try:
        topo, _ = topologies.make(args.topology, params, "halab spof")
    except ConfigError as e:
        print(e, file=sys.stderr)
        return EXIT_USAGE
    service = ServiceGraph(topologies.layout_of(topo))
    defaults = {HOST: args.host, SWITCH: args.switch, LINK: args.link}
    overrides = {}
    for item in args.set:
        part, sep, value = item.partition("=")
        if not sep or part not in service.parts:
            known = ", ".join(service.parts)
            print(f"--set {item!r}: expected PART=AVAILABILITY with PART one of: {known}", file=sys.stderr)
            return EXIT_USAGE
        try:
            overrides[part] = float(value)
        except ValueError:
            print(f"--set {item!r}: {value!r} is not a number", file=sys.stderr)
            return EXIT_USAGE
    try:
        availability = availability_of(defaults, overrides)
    except ValueError as e:
        print(e, file=sys.stderr)
        return EXIT_USAGE
    described = f"host {args.host:g}, switch {args.switch:g}, link {args.link:g}" + \
        "".join(f", {k} {v:g}" for k, v in overrides.items())
    print("\n".join(report(args.topology, service, availability, described)))
    if defaults == DEFAULT_AVAILABILITY and not overrides:
        print("\n(the availabilities are teaching defaults: set your own with --host/--switch/--link/--set)")
    return EXIT_OK


def cmd_nines(args: argparse.Namespace) -> int:
    from lab.core import availability as av

    values = list(args.values)
    for v in values:
        if not 0 <= v <= 1:
            print(f"halab nines: {v:g} is not an availability (a fraction between 0 and 1, e.g. 0.999)", file=sys.stderr)
            return EXIT_USAGE
    lines = []
    if args.mtbf is not None or args.mttr is not None:
        if values or args.series or args.parallel:
            print("halab nines: --mtbf/--mttr compute one availability; give them without other values", file=sys.stderr)
            return EXIT_USAGE
        if args.mtbf is None or args.mttr is None or args.mtbf < 0 or args.mttr < 0 or args.mtbf + args.mttr == 0:
            print("halab nines: give both --mtbf and --mttr, in the same unit (e.g. hours), not both 0", file=sys.stderr)
            return EXIT_USAGE
        a = av.from_mtbf(args.mtbf, args.mttr)
        lines.append(f"MTBF {args.mtbf:g} / (MTBF {args.mtbf:g} + MTTR {args.mttr:g}) = {av.format_percent(a)}")
        values = [a]
    elif args.series or args.parallel:
        if len(values) < 2:
            print("halab nines: --series and --parallel combine two or more availabilities", file=sys.stderr)
            return EXIT_USAGE
        a = av.series(values) if args.series else av.parallel(values)
        how = "all must work: multiply" if args.series else "any one is enough: 1 - product of (1 - A)"
        lines.append(f"{'series' if args.series else 'parallel'} of {', '.join(f'{v:g}' for v in values)} ({how}) = {av.format_percent(a)}")
        values = [a]
    lines.append(f"{'availability':>14}{'nines':>8}{'down per year':>16}{'down per month':>16}")
    for percent, nines, year, month in av.nines_table(values or (0.9, 0.99, 0.999, 0.9999, 0.99999)):
        lines.append(f"{percent:>14}{nines:>8}{year:>16}{month:>16}")
    lines.append("(a year is 365.25 days and a month a twelfth of that, as in the usual uptime tables)")
    print("\n".join(lines))
    return EXIT_OK


def cmd_topos(args: argparse.Namespace) -> int:
    import topologies

    for name in topologies.names():
        print(f"== {name} ==\n{topologies.describe(name)}\n")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from lab.analysis import report

    metrics = report.build(Path(args.run_dir))
    paths = report.write(metrics, Path(args.run_dir), plot=not args.no_plot)
    report.print_report(metrics)
    print("written: " + ", ".join(str(p) for p in paths))
    return EXIT_EXPECTATION if any(not c.passed for c in metrics.checks) else EXIT_OK


def cmd_path(args: argparse.Namespace) -> int:
    from lab.analysis import path
    from lab.events import read_events

    events = read_events(Path(args.run_dir))
    ids = args.ids or path.samples(events)
    if not ids:
        print("no request went through a proxy in this run: name one, e.g. halab path RUN_DIR c1-42", file=sys.stderr)
        return EXIT_USAGE
    for rid in ids:
        print("\n".join(path.hops(events, rid)))
    return EXIT_OK


def cmd_wire(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from lab.packets import l4wire

    try:
        verdicts = l4wire.analyse(Path(args.run_dir))
    except (ValueError, OSError) as e:
        print(f"halab wire: {e}", file=sys.stderr)
        return EXIT_USAGE
    head, *body = l4wire.rows(verdicts)
    table = Table(title="Each balancer, as the packets at the clients and at the origins show it")
    for column in head:
        table.add_column(column or "question")
    for row in body:
        table.add_row(*row)
    Console().print(table)
    return EXIT_OK


def cmd_grade(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from lab import grade

    if args.pack or args.class_:
        return _grade_pack(args)
    if not args.exercise:
        print("halab grade: name an exercise (halab grade 02), or an instructor's --pack DIR with --class DIR_OR_CSV", file=sys.stderr)
        return EXIT_USAGE
    try:
        exercise = grade.find(args.exercise)
    except ValueError as e:
        print(f"halab grade: {e}", file=sys.stderr)
        return EXIT_USAGE
    student = Path(args.student).resolve() if args.student else None
    if student is not None and not (student / exercise.file).is_file():
        print(f"halab grade: no {exercise.file} in {student}", file=sys.stderr)
        return EXIT_USAGE
    results = grade.grade(exercise, student, Path(args.runs).resolve())
    head, rows, score = grade.table(results)
    out = Table(title=f"{exercise.folder}: {(student or Path('starter')) / exercise.file}")
    for column in head:
        out.add_column(column)
    for row in rows:
        out.add_row(*row)
    Console().print(out)
    print(score)
    return EXIT_OK if all(r.earned == r.points for r in results) else EXIT_EXPECTATION


def _grade_pack(args: argparse.Namespace) -> int:
    from lab import grade_pack

    if not (args.pack and args.class_):
        print("halab grade: --pack DIR and --class DIR_OR_CSV go together", file=sys.stderr)
        return EXIT_USAGE
    need_root("grade --pack")
    try:
        pack = grade_pack.load_pack(Path(args.pack))
        students = grade_pack.load_class(Path(args.class_))
    except (ValueError, OSError) as e:
        print(f"halab grade: {e}", file=sys.stderr)
        return EXIT_USAGE
    if not students:
        print(f"halab grade: no students in {args.class_}", file=sys.stderr)
        return EXIT_USAGE
    out = Path(args.runs).resolve() / f"{time.strftime('%Y%m%d-%H%M%S')}-grade-{Path(args.pack).name}"
    rows = grade_pack.grade_class(pack, students, out)
    (out / "grades.csv").write_text(grade_pack.sheet_csv(rows))
    markdown = grade_pack.sheet_markdown(pack, rows, grade_pack.written_answers(pack, students))
    (out / "grades.md").write_text(markdown)
    print(markdown)
    print(f"written: {out / 'grades.csv'}, {out / 'grades.md'} (and every run directory under {out})")
    return EXIT_OK


def cmd_sniff(args: argparse.Namespace) -> int:
    from lab.events import node_names
    from lab.net.state import STATE_DIR, Ledger

    need_root("sniff")
    ledger = Ledger.open(STATE_DIR / "ledger.json")
    shells = {p["what"].split()[0]: p["pid"] for p in ledger.data["processes"] if p["what"].endswith(" shell")}
    elsewhere = {p["what"].split()[0]: p["what"].split("ssh to ")[1].rstrip(")") for p in ledger.data["processes"]
                 if p["what"].endswith(")") and " shell (ssh to " in p["what"]}
    if args.node in elsewhere:  # a cluster lab's node on another server: its namespace is there, not here
        print(f"{args.node} runs on server {elsewhere[args.node]}: sniff is for nodes of this machine (on {elsewhere[args.node]}, "
              f"tcpdump inside that node's namespace sees the same packets)", file=sys.stderr)
        return EXIT_USAGE
    if args.node not in shells:
        known = ", ".join(sorted(shells)) or "none: is a lab running? start one with 'sudo halab cli single_lb'"
        print(f"no node {args.node!r} in the running lab (nodes: {known})", file=sys.stderr)
        return EXIT_USAGE
    names: dict[str, str] = {}
    roles: dict[str, str] = {}
    try:
        owner = json.loads((STATE_DIR / "owner.json").read_text())
        built = [json.loads(line) for line in (Path(owner["run_dir"]) / "events" / "lab-lab.jsonl").read_text().splitlines()]
        for e in built:
            if e["kind"] == "lab_built":
                names.update(node_names(e))
                roles.update(e["nodes"])
    except (OSError, ValueError, KeyError):
        pass
    cmd = ["nsenter", f"--net=/proc/{shells[args.node]}/ns/net", sys.executable, "-m", "lab.packets.sniff",
           "--filter", " ".join(args.bpf), "--names", json.dumps(names), "--roles", json.dumps(roles), "--count", str(args.count)]
    return subprocess.call(cmd)


def cmd_doctor(args: argparse.Namespace) -> int:
    from lab.net import features
    from lab.net.commands import missing

    need_root("doctor")

    def show(found: list[features.Feature]) -> None:
        for f in found:
            print(f"{f.name:<30} {'yes' if f.available else 'no ':<4} {f.detail}")

    if args.cluster:  # another server, for a lab over several machines
        from lab.net.cluster_check import check_all, settings_from

        return EXIT_OK if check_all(settings_from(args.cluster, args.scenario), show) else EXIT_LAB

    print("== this machine")
    env = features.environment()
    show(env)
    print("== programs")
    absent = missing()
    for cmd, pkg, why in absent:
        print(f"{cmd:<30} no   not installed: apt install {pkg} ({why})")
    if not absent:
        print(f"{'programs':<30} yes  every program halab, Mininet and the tests run is installed")
    print("== the kernel")
    kernel = features.report()
    show(kernel)
    print("== the lessons")
    ready = features.lessons(kernel)
    show(ready)
    return EXIT_OK if all(f.available for f in env + ready) and not absent else EXIT_LAB


def _intervals(text: str) -> str:
    """--interval 1,0.1,0.03: checked here, so a typo is a usage error and not a traceback."""
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of seconds such as 1,0.1,0.03") from None
    if not values or any(not 0.01 <= v <= 40.95 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: each advert interval must be from 0.01 to 40.95 s (RFC 5798)")
    return text


def cmd_bench(args: argparse.Namespace) -> int:
    from lab.bench import failover_summary, run_bench, run_failover_bench, summary

    need_root("bench")
    run_dir = Path(args.runs).resolve() / f"{time.strftime('%Y%m%d-%H%M%S')}-bench-{args.what}"
    run_dir.mkdir(parents=True)
    if args.what == "balancer":
        lines = summary(run_bench(run_dir, args.seconds, args.connections, args.rounds))
    elif args.what == "cache":
        from lab.bench_cache import cache_summary, run_cache_bench

        lines = cache_summary(run_cache_bench(run_dir, args.seconds, args.connections, args.rounds))
    elif args.what == "proxy":
        from lab.bench_proxy import proxy_summary, run_proxy_bench

        lines = proxy_summary(run_proxy_bench(run_dir, args.seconds, args.connections, args.rounds))
    elif args.what == "scale":
        from lab.bench_scale import run_scale_bench, scale_summary

        lines = scale_summary(run_scale_bench(run_dir, tuple(int(x) for x in args.sizes.split(",") if x.strip()), split=args.split))
    elif args.what == "l4":
        from lab.bench_l4 import l4_summary, run_l4_bench

        lines = l4_summary(run_l4_bench(run_dir, args.seconds, args.connections, args.rounds))
    else:
        intervals = [float(x) for x in args.interval.split(",") if x.strip()]
        lines = failover_summary({i: run_failover_bench(run_dir, args.trials, i, loss=args.loss) for i in intervals})
    print("\n".join(lines))
    (run_dir / "bench.txt").write_text("\n".join(lines) + "\n")
    return EXIT_OK


def cmd_conformance(args: argparse.Namespace) -> int:
    from lab.conformance import run_cache_conformance, table

    run_dir = Path(args.runs).resolve() / f"{time.strftime('%Y%m%d-%H%M%S')}-conformance-cache-{args.impl}"
    run_dir.mkdir(parents=True)
    lines = table(run_cache_conformance(run_dir, impl=args.impl), args.impl)
    print("\n".join(lines))
    (run_dir / "conformance.txt").write_text("\n".join(lines) + "\n")
    print(f"results: {run_dir / 'cache-tests.json'}; the suite's own output: {run_dir / 'cache-tests.txt'}")
    return EXIT_OK


def cmd_hostile(args: argparse.Namespace) -> int:
    from lab.hostile import run_hostile, table

    need_root("hostile")
    run_dir = Path(args.runs).resolve() / f"{time.strftime('%Y%m%d-%H%M%S')}-hostile-http"
    run_dir.mkdir(parents=True)
    run = run_hostile(run_dir, tuple(args.impl or ("halab", "haproxy", "nginx")))
    lines = table(run)
    print("\n".join(lines))
    (run_dir / "hostile.txt").write_text("\n".join(lines) + "\n")
    return EXIT_EXPECTATION if run.problems else EXIT_OK


def cmd_chaos(args: argparse.Namespace) -> int:
    from lab.chaos import replay_text, run_chaos, settings_of, summary, with_timeline
    from lab.runner import load_scenario

    scenario = load_scenario(args.scenario)
    seeds = list(range(args.seed, args.seed + args.runs))
    if args.print:
        for seed in seeds:
            _, entries = with_timeline(scenario, seed, settings_of(scenario, args.faults))
            print(replay_text(scenario, entries, seed))
        return EXIT_OK
    need_root("chaos")
    base = Path(args.runs_dir).resolve() / f"{time.strftime('%Y%m%d-%H%M%S')}-chaos-{scenario.name}"
    impls = [None] if not args.compare else ["halab", args.compare]
    if args.compare and not scenario.layout.vrrp:
        print(f"halab: --compare {args.compare} needs a topology with VRRP gateways", file=sys.stderr)
        return EXIT_USAGE
    runs = [r for impl in impls for r in run_chaos(scenario, seeds, base, args.faults, impl)]
    lines = summary(runs)
    print("\n".join(lines))
    (base / "chaos.txt").write_text("\n".join(lines) + "\n")
    return EXIT_EXPECTATION if any(r.violations for r in runs) else EXIT_OK


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="halab", description="An educational high-availability lab on Mininet.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a scenario: build, load, break, watch, report")
    r.add_argument("scenario")
    r.add_argument("--runs", default="runs", help="where run directories go (default ./runs)")
    r.add_argument("--run-dir", help="exact run directory to use")
    r.add_argument("--quiet", action="store_true", help="no live view")
    r.add_argument("--no-plot", action="store_true", help="skip the PNG timeline")
    r.add_argument("--bond-impl", choices=("auto", "kernel", "userspace"), help="override [bond] impl")
    r.set_defaults(func=cmd_run)
    c = sub.add_parser("check", help="validate a scenario file without building anything")
    c.add_argument("scenario")
    c.set_defaults(func=cmd_check)
    cl = sub.add_parser("cli", help="interactive Mininet CLI with lab verbs")
    cl.add_argument("topology", nargs="?")
    cl.add_argument("--scenario", help="build this scenario's network and services (its settings, not its load or faults)")
    cl.add_argument("--param", action="append", default=[], help="topology parameter, e.g. --param origins=4")
    cl.add_argument("--switch", default="lxbr", choices=("lxbr", "ovsbr"))
    cl.add_argument("--bond-impl", choices=("auto", "kernel", "userspace"), help="bonding topologies: which bond")
    cl.add_argument("--runs", default="runs")
    cl.set_defaults(func=cmd_cli)
    sub.add_parser("clean", help="remove what a crashed lab left behind").set_defaults(func=cmd_clean)
    sub.add_parser("topos", help="list topologies with their drawings").set_defaults(func=cmd_topos)
    rep = sub.add_parser("report", help="rebuild a run's report from its events")
    rep.add_argument("run_dir")
    rep.add_argument("--no-plot", action="store_true")
    rep.set_defaults(func=cmd_report)
    pa = sub.add_parser("path", help="the hops of one request (client, proxy, gateway, origin) from a run's events")
    pa.add_argument("run_dir")
    pa.add_argument("ids", nargs="*", help="request ids such as c1-42 (default: one through a proxy and one direct)")
    pa.set_defaults(func=cmd_path)
    wi = sub.add_parser("wire", help="L4 against L7 on the wire: each balancer as the clients' and origins' captures show it")
    wi.add_argument("run_dir")
    wi.set_defaults(func=cmd_wire)
    gr = sub.add_parser("grade", help="check a student's own code for an exercise: unit checks, then on the network (root)")
    gr.add_argument("exercise", nargs="?", help="e.g. 02-balancing-algorithms (or just 02)")
    gr.add_argument("--student", help="the folder holding the student's file (default: the exercise's starter/)")
    gr.add_argument("--pack", help="an instructor's folder of hidden scenarios (pack.toml), run against every student of --class")
    gr.add_argument("--class", dest="class_", help="a folder of student folders, or a CSV of name,folder")
    gr.add_argument("--runs", default="runs")
    gr.set_defaults(func=cmd_grade)
    sn = sub.add_parser("sniff", help="annotated live packet trace inside a node of the running lab")
    sn.add_argument("node")
    sn.add_argument("bpf", nargs="*", help="BPF filter words, e.g. tcp port 80")
    sn.add_argument("--count", type=int, default=0)
    sn.set_defaults(func=cmd_sniff)
    dr = sub.add_parser("doctor", help="what this machine's kernel can do (and, with --cluster, another server's)")
    dr.add_argument("--cluster", metavar="SERVERS", help="check these servers for a lab over several machines, e.g. lab2 "
                    "(with --scenario: its [cluster] settings; 'all': every server it names)")
    dr.add_argument("--scenario", help="a scenario whose [cluster] table says how to reach the servers")
    dr.set_defaults(func=cmd_doctor)
    nn = sub.add_parser("nines", help="availability arithmetic: the nines, downtime budgets, series and parallel")
    nn.add_argument("values", nargs="*", type=float, help="availabilities as fractions, e.g. 0.999")
    mode = nn.add_mutually_exclusive_group()
    mode.add_argument("--series", action="store_true", help="the values are parts that must all work")
    mode.add_argument("--parallel", action="store_true", help="the values are redundant copies: any one is enough")
    nn.add_argument("--mtbf", type=float, help="mean time between failures (with --mttr, same unit)")
    nn.add_argument("--mttr", type=float, help="mean time to repair")
    nn.set_defaults(func=cmd_nines)
    sp = sub.add_parser("spof", help="single points of failure and predicted availability of a topology (no root)")
    sp.add_argument("topology")
    sp.add_argument("--param", action="append", default=[], help="topology parameter, e.g. --param gateways=3")
    sp.add_argument("--host", type=float, default=0.999, help="availability of each host (default 0.999)")
    sp.add_argument("--switch", type=float, default=0.9999, help="availability of each switch (default 0.9999)")
    sp.add_argument("--link", type=float, default=0.9999, help="availability of each link (default 0.9999)")
    sp.add_argument("--set", action="append", default=[], metavar="PART=A", help="one part's availability, e.g. --set lb1=0.99")
    sp.set_defaults(func=cmd_spof)
    b = sub.add_parser("bench", help="benchmarks against the real systems (HAProxy, nginx, keepalived, Squid, Varnish), "
                                     "and how big a lab this machine holds (scale)")
    b.add_argument("what", choices=["balancer", "failover", "proxy", "cache", "l4", "scale"])
    b.add_argument("--sizes", default="10,50,100,200", help="scale: numbers of origins, one lab each (single_lb holds up to 200)")
    b.add_argument("--split", action="store_true", help="scale: half the origins on a second server (a namespace of this machine "
                   "running sshd, reached over ssh and VXLAN as a second VM would be)")
    b.add_argument("--trials", type=int, default=5, help="failover: master power cuts per speaker")
    b.add_argument("--loss", type=int, default=0, choices=range(0, 100), metavar="PERCENT",
                   help="failover: then drop this share of the adverts reaching the backup for 20 s and count false failovers")
    b.add_argument("--interval", type=_intervals, default="0.1",
                   help="failover: VRRP advert interval(s), seconds; a list sweeps them, e.g. 1,0.1,0.03")
    b.add_argument("--seconds", type=float, default=3.0, help="balancer, proxy, cache, l4: seconds of saturated load per measurement")
    b.add_argument("--connections", type=int, default=32, help="balancer, proxy, l4: wrk connections for the throughput measurement")
    b.add_argument("--rounds", type=int, default=3, help="balancer, proxy, l4: rounds over all targets (the order rotates)")
    b.add_argument("--runs", default="runs")
    b.set_defaults(func=cmd_bench)
    co = sub.add_parser("conformance", help="a public conformance suite against halab (cache: cache-tests, RFC 9111)")
    co.add_argument("what", choices=["cache"])
    co.add_argument("--impl", choices=["halab", "varnish", "nginx"], default="halab",
                    help="whose gateway cache: halab's, or Varnish's or nginx's as halab renders them from the same settings")
    co.add_argument("--runs", default="runs")
    co.set_defaults(func=cmd_conformance)
    ch = sub.add_parser("chaos", help="seeded random faults, every one repaired; checks that the lab heals each time")
    ch.add_argument("scenario")
    ch.add_argument("--seed", type=int, default=1, help="the first seed (runs use seed, seed+1, ...)")
    ch.add_argument("--runs", type=int, default=1, help="how many seeds to run")
    ch.add_argument("--faults", type=int, help="fault-and-repair pairs per run (default: the scenario's [chaos] faults, 3)")
    ch.add_argument("--print", action="store_true", help="print the drawn timelines as scenario files; run nothing (no root)")
    ch.add_argument("--compare", choices=["keepalived"], help="run every seed with halab's VRRP speaker and with this one")
    ch.add_argument("--runs-dir", default="runs", help="where run directories go")
    ch.set_defaults(func=cmd_chaos)
    h = sub.add_parser("hostile", help="send a corpus of hostile HTTP requests to halab's gateway, HAProxy and nginx; compare")
    h.add_argument("--impl", action="append", choices=["halab", "haproxy", "nginx"], help="only these gateways (repeatable)")
    h.add_argument("--runs", default="runs")
    h.set_defaults(func=cmd_hostile)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from lab.net.lab import LabError
    from lab.net.state import LabBusy

    try:
        return args.func(args)
    except ConfigError as e:
        print(f"halab: scenario error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (LabBusy, LabError) as e:
        print(f"halab: {e}", file=sys.stderr)
        return EXIT_LAB
    except KeyboardInterrupt:
        print("halab: interrupted; the lab was cleaned up", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
