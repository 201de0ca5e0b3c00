"""omsctl: the operator's and tester's command line.  A thin layer over the
same Python API the tests use."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from control import journal_tools, model_cli, whatif, whatif_sim
from control import schema as config_schema
from control.config import ConfigError, Dataplane, load_config, load_default_config

BUNDLED_SCENARIO = Path(__file__).resolve().parent.parent / "pcaps" / "scenarios" / "session.jsonl"


def _config(path: str | None):
    return load_config(path) if path else load_default_config()


def cmd_config_check(args) -> int:
    cfg = load_config(args.file)
    print(f"{args.file}: ok ({len(cfg.sessions)} sessions, {len(cfg.venues)} venues, "
          f"{len(cfg.instruments)} instruments, {cfg.tables.orders} order slots)")
    return 0


def cmd_pcap_build(args) -> int:
    if args.itch:
        from control.feed_tools import wrap_itch
        n = wrap_itch(args.scenario, args.out, group=args.group, port=args.port,
                      source=args.source_ip, session=args.session)
        print(f"{args.out}: {n} MoldUDP64 frames to {args.group}:{args.port}")
        return 0
    from pcaps.builder import build_pcap

    cfg = _config(args.config)
    n = build_pcap(args.scenario, args.out, cfg)
    print(f"{args.out}: {n} frames")
    return 0


def cmd_feed_replay(args) -> int:
    from control.feed_tools import CaptureError, replay

    symbols = [s for s in (args.symbols or "").split(",") if s] or None
    try:
        summary = replay(args.capture, args.out, symbols, venue=args.venue)
    except (CaptureError, OSError) as e:
        print(f"omsctl: {e}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2, sort_keys=True))
    return 0


def run_replay(in_pcap, out_pcap, report, cfg, *, venue_sim, verify, timings=None,
               venue_latency_us=20.0, backend="pcap", metrics=None, plot=None,
               progress=None) -> dict:
    from control.replay_view import ProgressBar, plot_latency
    from dataplane import pcap_backend
    from dataplane.replay import Replayer, report_lines, write_report

    rp = Replayer(cfg, venue_sim=venue_sim, verify=verify,
                  timings=bool(timings or metrics or plot),
                  venue_latency_ns=int(venue_latency_us * 1000), backend=backend)
    out, res = rp.run_file(in_pcap, progress=ProgressBar(progress))
    core = rp.core  # the DPDK backend's too, once the run is over
    if metrics:
        # the final counters and histograms, as a scrape would have seen them
        from control.metrics import DataPlaneSource, exposition, make_registry
        Path(metrics).write_bytes(exposition(make_registry(DataPlaneSource(cfg, [core]))))
    if plot:
        for f in plot_latency(core, cfg, plot):
            print(f"omsctl: {f}", file=sys.stderr)
    pcap_backend.write_pcap(out_pcap, out)
    lines = report_lines(cfg, out, res.stats, res.route_decisions)
    if report:
        write_report(report, lines)
    if timings:
        Path(timings).write_text(json.dumps(rp.timings(), indent=2) + "\n")
    summary = lines[-1]["summary"]
    summary["frames_in"] = res.frames_in
    summary["verified_against_reference_model"] = res.verified
    summary["backend"] = backend
    if res.port_stats is not None:
        # proof that the frames went through DPDK ports and a worker lcore:
        # the capture through net_pcap, answers in and frames out by a ring port
        summary["dpdk_ports"] = res.port_stats
        summary["dpdk_replay_loop"] = res.worker_stats
        summary["dpdk_mbufs_in_use_after"] = res.mbufs_in_use
    return summary


def cmd_replay(args) -> int:
    cfg = _config(args.config)
    summary = run_replay(args.pcap, args.out, args.report, cfg, venue_sim=args.venue_sim,
                         verify=args.verify, timings=args.timings,
                         venue_latency_us=args.venue_latency_us, backend=args.backend,
                         metrics=args.metrics, plot=args.plot, progress=args.progress)
    print(json.dumps(summary, indent=2, sort_keys=True))
    return 0


def live_backend(cfg, backend: str | None) -> str | None:
    """Which live backend `omsctl run` starts, or None for the replay job:
    DPDK where dataplane.ports names DPDK ports, the native AF_XDP backend
    where dataplane.afxdp names interfaces (or when asked for by name)."""
    if backend == "afxdp":
        if cfg.dataplane.afxdp is None:
            raise ValueError(f"{cfg.source}: --backend afxdp needs dataplane.afxdp "
                             "(strategy_iface, venue_iface) in the configuration")
        return "afxdp"
    if backend == "pcap":
        return None
    if cfg.dataplane.ports is not None:
        return "dpdk"
    if backend is None and cfg.dataplane.afxdp is not None:
        return "afxdp"
    return None


def cmd_run(args) -> int:
    """With a configuration that names DPDK ports (dataplane.ports) or AF_XDP
    interfaces (dataplane.afxdp): run the appliance live until SIGINT/SIGTERM
    (or --duration).  Otherwise the main job on the embedded default: build
    the bundled scenario, replay it through the core with the venue
    simulator and the reference model beside it."""
    from pcaps.builder import build_pcap

    cfg = _config(args.config)
    live = None if args.scenario else live_backend(cfg, args.backend)
    if live == "dpdk" or (live is None and args.backend in (None, "dpdk")):
        # the replay job starts EAL on its own settings (two lcores, no
        # hugepages), not the configuration's
        if not startup_check(cfg.dataplane if live else Dataplane()):
            return 5
    if live:
        from dataplane.serve import serve
        lo, _, hi = args.dump_ids.partition("-")
        serve(cfg, duration_s=args.duration, ready_file=args.ready_file,
              control_socket=args.control_socket, backend=live,
              orders_file=args.dump_orders, order_ids=range(int(lo), int(hi or lo) + 1),
              watch_config=not args.no_watch)
        return 0
    if args.backend == "afxdp":
        raise ValueError("--backend afxdp runs live; a scenario replays through dpdk or pcap")
    args.backend = args.backend or "dpdk"
    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    scenario = Path(args.scenario) if args.scenario else BUNDLED_SCENARIO
    orders = outdir / "orders.pcap"
    n = build_pcap(scenario, orders, cfg)
    summary = run_replay(orders, outdir / "out.pcap", outdir / "report.jsonl", cfg,
                         venue_sim=True, verify=True, timings=outdir / "timings.json",
                         backend=args.backend)
    print(f"scenario {scenario}: {n} frames -> {orders}")
    where = ("the DPDK data plane (the capture read by a net_pcap port on a worker lcore, "
             "venue answers through a ring port)" if args.backend == "dpdk"
             else "the pcap backend")
    print(f"replayed through the C core on {where}, with the venue simulator and the "
          f"reference model checking every byte: {outdir / 'out.pcap'}, "
          f"{outdir / 'report.jsonl'}, {outdir / 'timings.json'}")
    print(json.dumps(summary, indent=2, sort_keys=True))
    return 0


def startup_check(dataplane) -> bool:
    """The machine against the data plane's settings: errors stop the start
    (the reason and the fix, rather than EAL's error), warnings are told."""
    from dataplane.diagnose import ERROR, WARNING, diagnose

    findings = diagnose(dataplane)
    for f in findings:
        if f.level in (ERROR, WARNING):
            print(f"omsctl: {f}", file=sys.stderr)
    if any(f.level == ERROR for f in findings):
        print("omsctl: not starting: fix the errors above (omsctl doctor --config X.yaml "
              "checks again)", file=sys.stderr)
        return False
    return True


def cmd_doctor(args) -> int:
    """Every check of the machine against the configuration's data plane."""
    from dataplane.diagnose import diagnose, errors

    cfg = _config(args.config)
    findings = diagnose(cfg, root=args.root)
    for f in findings:
        print(f)
    bad = errors(findings)
    print(f"{len(bad)} error(s), "
          f"{sum(f.level == 'warning' for f in findings)} warning(s)")
    return 1 if bad else 0


def cmd_ctl(args) -> int:
    from control.ctl import request

    payload = {"cmd": args.ctl_cmd.replace("-", "_")}
    if args.ctl_cmd == "mass-cancel":
        payload.update(session=args.session, account=args.account)
    if args.ctl_cmd in ("kill", "unkill"):
        payload.update(account=args.account)
    if args.ctl_cmd == "reload" and args.config:
        payload.update(path=os.path.abspath(args.config))
    answer = request(args.socket, payload)
    print(json.dumps(answer, indent=2, sort_keys=True))
    for line in answer.get("errors", []):
        print(line, file=sys.stderr)
    return 0 if answer.get("ok") else 1


def _ask(socket_path: str, payload: dict) -> dict:
    from control.ctl import request

    try:
        answer = request(socket_path, payload)
    except (FileNotFoundError, ConnectionRefusedError) as e:
        raise OSError(f"no appliance answers on {socket_path} ({e.strerror}): is it running "
                      "with --control-socket there?") from e
    if not answer.get("ok"):
        raise ValueError(answer.get("error", "the appliance refused"))
    return answer


def cmd_status(args) -> int:
    from control.status import render_status

    d = _ask(args.socket, {"cmd": "status"})
    print(json.dumps(d, indent=2, sort_keys=True) if args.json else render_status(d))
    return 0


def cmd_top(args) -> int:
    """Live view: the status again every --interval seconds, with rates."""
    import time

    from control.status import render_status

    prev = None
    n = 0
    while args.count is None or n < args.count:
        d = _ask(args.socket, {"cmd": "status"})
        text = render_status(d, prev)
        if sys.stdout.isatty():
            sys.stdout.write("\x1b[H\x1b[2J")  # home, clear
        print(text, flush=True)
        prev = d
        n += 1
        if args.count is None or n < args.count:
            try:
                time.sleep(args.interval)
            except KeyboardInterrupt:
                break
    return 0


def cmd_order_show(args) -> int:
    from control.status import render_order

    if args.venue_token is not None:
        if args.venue is None:
            raise ValueError("--venue-token needs --venue (the venue's id)")
        payload = {"cmd": "order", "venue": args.venue, "venue_token": args.venue_token}
    elif args.session is None or args.cl_ord_id is None:
        raise ValueError("give SESSION CLORDID, or --venue V --venue-token T")
    else:
        payload = {"cmd": "order", "session": args.session, "cl_ord_id": args.cl_ord_id}
    d = _ask(args.socket, payload)
    print(json.dumps(d, indent=2, sort_keys=True) if args.json else render_order(d))
    return 0


KILL_HELP = {
    "kill": "engage the kill switch (every account, or --account): new orders and "
            "modifies are rejected (KILL_SWITCH) and every open order is canceled at "
            "its venue",
    "unkill": "release the kill switch (the global one, or --account's own)",
}


RELOAD_HELP = ("validate the configuration file and apply it live (limits, instruments, "
               "routes, throttles); a bad file is refused with every error and the running "
               "configuration stays")


def _reload_args(p: argparse.ArgumentParser, *, socket: bool) -> None:
    p.add_argument("--config", help="the file to load (default: the one the appliance "
                   "was started with)")
    if socket:
        from control.ctl import DEFAULT_SOCKET
        p.add_argument("--socket", default=DEFAULT_SOCKET)


def _kill_args(p: argparse.ArgumentParser, *, socket: bool) -> None:
    p.add_argument("--account", type=int, default=0,
                   help="one account; without it (or 0): the global switch, every account")
    if socket:
        from control.ctl import DEFAULT_SOCKET
        p.add_argument("--socket", default=DEFAULT_SOCKET)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="omsctl", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    whatif.add_subparser(sub)  # omsctl whatif PCAP --config NEW [--against CUR] [--json FILE]
    journal_tools.add_subparser(sub)  # omsctl journal {info,verify,replay} PATH
    model_cli.add_subparser(sub)  # omsctl model {dataset,train,eval}
    whatif_sim.add_subparser(sub)  # omsctl whatif-sim --model MODEL [--venues ...] [--json FILE]

    r = sub.add_parser("run", help="build and replay the bundled scenario (the default job)")
    r.add_argument("--config")
    r.add_argument("--scenario", help="JSON-lines scenario instead of the bundled one")
    r.add_argument("--outdir", default="out")
    r.add_argument("--duration", type=float, help="live: stop after this many seconds")
    r.add_argument("--ready-file", help="live: write this file once the worker runs")
    r.add_argument("--control-socket", default=None,
                   help="live: serve the control socket here (e.g. /run/oms/control.sock)")
    r.add_argument("--dump-orders", metavar="FILE",
                   help="live: on stopping, write every order's final state here (JSON)")
    r.add_argument("--no-watch", action="store_true",
                   help="live: do not reload when the configuration file changes "
                        "(SIGHUP and omsctl reload still do)")
    r.add_argument("--dump-ids", default="1-100000", metavar="FIRST-LAST",
                   help="live: the cl_ord_ids --dump-orders looks up, per session")
    r.add_argument("--backend", choices=["dpdk", "afxdp", "pcap"], default=None,
                   help="dpdk: the core on a worker lcore behind DPDK ports (the default; "
                        "live with dataplane.ports, else the replay job through a "
                        "net_pcap port); afxdp: live on AF_XDP sockets (dataplane.afxdp), no DPDK; "
                        "pcap: the replay job with the core in this thread, no DPDK")
    r.set_defaults(func=cmd_run)

    dr = sub.add_parser("doctor", help="check this machine against the configuration's data "
                        "plane: hugepages, NIC binding, lcores, NUMA, IOMMU")
    dr.add_argument("--config")
    dr.add_argument("--root", default="/", help=argparse.SUPPRESS)  # tests: a fake /sys, /proc
    dr.set_defaults(func=cmd_doctor)

    ct = sub.add_parser("ctl", help="talk to a running appliance's control socket")
    ct.add_argument("--socket", default="/run/oms/control.sock")
    ctsub = ct.add_subparsers(dest="ctl_cmd", required=True)
    ctsub.add_parser("ping")
    ctsub.add_parser("stats", help="counters, read between two bursts")
    mc = ctsub.add_parser("mass-cancel", help="cancel a session's orders of one account")
    mc.add_argument("--session", type=int, required=True)
    mc.add_argument("--account", type=int, required=True)
    for name in ("kill", "unkill"):
        _kill_args(ctsub.add_parser(name, help=KILL_HELP[name]), socket=False)
    _reload_args(ctsub.add_parser("reload", help=RELOAD_HELP), socket=False)
    ct.set_defaults(func=cmd_ctl)
    rl = sub.add_parser("reload", help=RELOAD_HELP)
    _reload_args(rl, socket=True)
    rl.set_defaults(func=cmd_ctl, ctl_cmd="reload")

    # the kill switch, also at the top level: omsctl kill [--account A]
    for name in ("kill", "unkill"):
        k = sub.add_parser(name, help=KILL_HELP[name])
        _kill_args(k, socket=True)
        k.set_defaults(func=cmd_ctl, ctl_cmd=name)

    from control.ctl import DEFAULT_SOCKET
    st = sub.add_parser("status", help="a running appliance at a glance: ports, queues, "
                        "lcores, orders, rejects, latency percentiles, venues")
    st.add_argument("--socket", default=DEFAULT_SOCKET)
    st.add_argument("--json", action="store_true", help="the answer as JSON")
    st.set_defaults(func=cmd_status)
    tp = sub.add_parser("top", help="status, refreshed, with rates (Ctrl-C to stop)")
    tp.add_argument("--socket", default=DEFAULT_SOCKET)
    tp.add_argument("--interval", type=float, default=1.0, help="seconds between updates")
    tp.add_argument("--count", type=int, help="stop after this many updates")
    tp.set_defaults(func=cmd_top)
    od = sub.add_parser("order", help="orders of a running appliance")
    osub = od.add_subparsers(dest="order_cmd", required=True)
    os_ = osub.add_parser("show", help="an order's state, every transition with its time, "
                          "and its venue messages")
    os_.add_argument("session", type=int, nargs="?")
    os_.add_argument("cl_ord_id", type=int, nargs="?")
    os_.add_argument("--venue", type=int, help="with --venue-token: the venue's id")
    os_.add_argument("--venue-token", type=int,
                     help="the order's token at the venue (OUCH UserRefNum)")
    os_.add_argument("--socket", default=DEFAULT_SOCKET)
    os_.add_argument("--json", action="store_true")
    os_.set_defaults(func=cmd_order_show)

    c = sub.add_parser("config", help="configuration tools")
    csub = c.add_subparsers(dest="config_cmd", required=True)
    config_schema.add_subparser(csub)  # omsctl config schema [-o FILE]
    cc = csub.add_parser("check", aliases=["validate"], help="validate a YAML configuration")
    cc.add_argument("file")
    cc.set_defaults(func=cmd_config_check)

    pc = sub.add_parser("pcap", help="capture tools")
    psub = pc.add_subparsers(dest="pcap_cmd", required=True)
    pb = psub.add_parser("build", help="JSON-lines scenario -> pcap; with --itch, a binary "
                                       "ITCH 5.0 file -> MoldUDP64 multicast pcap")
    pb.add_argument("scenario", help="the scenario (or, with --itch, the ITCH file, "
                                     "possibly gzipped)")
    pb.add_argument("-o", "--out", required=True)
    pb.add_argument("--config")
    pb.add_argument("--itch", action="store_true",
                    help="the input is a length-prefixed binary ITCH 5.0 file")
    pb.add_argument("--group", default="239.1.1.1", help="--itch: multicast group")
    pb.add_argument("--port", type=int, default=26400, help="--itch: UDP port")
    pb.add_argument("--source-ip", default="10.10.2.1", help="--itch: the venue's address")
    pb.add_argument("--session", default="ITCHREPLAY", help="--itch: MoldUDP64 session")
    pb.set_defaults(func=cmd_pcap_build)

    fd = sub.add_parser("feed", help="market-data tools")
    fsub = fd.add_subparsers(dest="feed_cmd", required=True)
    fr = fsub.add_parser("replay", help="run a capture (MoldUDP64 pcap or binary ITCH file) "
                                        "through the C feed handler; top of book after every "
                                        "change, as JSON lines")
    fr.add_argument("capture")
    fr.add_argument("-o", "--out", required=True)
    fr.add_argument("--symbols", help="S1,S2,...: the symbols to follow (default: every "
                                      "symbol of the capture's stock directory)")
    fr.add_argument("--venue", type=int, default=1)
    fr.set_defaults(func=cmd_feed_replay)

    rp = sub.add_parser("replay", help="replay a pcap through the C core")
    rp.add_argument("pcap")
    rp.add_argument("-o", "--out", required=True, help="output pcap")
    rp.add_argument("--report", help="JSON-lines report")
    rp.add_argument("--config")
    rp.add_argument("--venue-sim", action="store_true",
                    help="answer venue messages with the built-in venue simulator")
    rp.add_argument("--venue-latency-us", type=float, default=20.0)
    rp.add_argument("--timings", help="write per-order processing percentiles (JSON)")
    rp.add_argument("--backend", choices=["pcap", "dpdk"], default="pcap",
                    help="pcap: the core in this thread; dpdk: the capture read by a DPDK "
                         "net_pcap port on a worker lcore (same output, byte for byte)")
    rp.add_argument("--metrics", metavar="FILE",
                    help="write the final metrics here, in Prometheus text format")
    rp.add_argument("--plot", metavar="DIR",
                    help="write PNG charts of the latency histograms into DIR")
    rp.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                    help="a progress bar on stderr (default: on a terminal, for captures "
                         f"of {10_000:,} frames or more)")
    rp.add_argument("--verify", action="store_true",
                    help="run the reference model beside the core; fail on any difference")
    rp.set_defaults(func=cmd_replay)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as e:
        print(f"omsctl: {e}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as e:
        print(f"omsctl: {e}", file=sys.stderr)
        return 2
    except AssertionError as e:
        print(f"omsctl: verification failed: {e}", file=sys.stderr)
        return 3
    except RuntimeError as e:  # DpdkError and the core's set-up errors
        print(f"omsctl: {e}", file=sys.stderr)
        return 4


if __name__ == "__main__":
    sys.exit(main())
