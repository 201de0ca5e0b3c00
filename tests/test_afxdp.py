"""The native AF_XDP backend's start-up: an XDP program left behind by a
killed run is detached before the sockets are made (else libxdp cannot
attach its own), and a configuration it cannot run says why.  The live
traffic tests are in test_live_e2e.py and test_control_socket.py."""
from __future__ import annotations

import subprocess

import netns
import pytest
import test_live_e2e as live
import wire
from live_run import LiveRun, report_of, stop, wait_ready

from control.cli import live_backend
from control.config import ConfigError, load_config

why_not = netns.can_make_namespaces()
needs_root = pytest.mark.skipif(why_not is not None, reason=why_not or "")


# one ICMP echo with scapy (the strategy host's kernel resolves us by ARP)
PING = """
import sys
from scapy.all import ICMP, IP, sr1
sys.exit(0 if sr1(IP(dst="{}") / ICMP(), timeout=3, verbose=0) is not None else 1)
"""


def start(run: LiveRun, cfg, ready) -> subprocess.Popen:
    app = run.appliance(cfg, ready, duration=30, args=("--backend", "afxdp"))
    wait_ready(app, ready, timeout=15)
    return app


@needs_root
def test_a_killed_runs_xdp_program_is_detached_at_start(tmp_path):
    with netns.three_hosts() as h, LiveRun(h) as run:
        devs = (h.oms_strategy_if, h.oms_venue_if)
        cfg = tmp_path / "live.yaml"
        cfg.write_text(live.config_text(h, "afxdp"))
        ready = tmp_path / "ready.json"
        killed = start(run, cfg, ready)
        first = {d: live.xdp_prog(h, d)["prog"]["id"] for d in devs}
        killed.kill()  # SIGKILL: no chance to detach anything
        killed.wait(timeout=10)
        # the kernel keeps a netlink-attached program after its owner died
        assert {d: live.xdp_prog(h, d)["prog"]["id"] for d in devs} == first
        app = start(run, cfg, ready)
        second = {d: live.xdp_prog(h, d)["prog"]["id"] for d in devs}
        # the new run answers on its own sockets: an ICMP echo from the
        # strategy host comes back through the poll thread
        ping = subprocess.run(h.exec(h.strategy, live.PY, "-c", PING.format(wire.APPLIANCE.ip)),
                              capture_output=True, text=True, timeout=20)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        out, err = stop(app)
        after = {d: live.xdp_prog(h, d) for d in devs}
    for d in devs:
        assert second[d] != first[d]
        assert f"detached a stale XDP program from {d}" in err
    report = report_of(out)
    assert report["stale_xdp_detached"] == list(devs)
    assert report["link"]["icmp_echo_replies"] == 1
    assert {d: p["xdp_prog_id"] for d, p in report["ports"].items()} == second
    assert after == {d: None for d in devs}  # this run, stopped properly, left nothing


AFXDP_YAML = """
appliance: {mac: "02:00:00:00:00:01", ip: 10.10.0.1, strategy_port: 9000, venue_port: 9100}
routing: {default_venue: 1}
venues: [{id: 1, name: N, session: S, ip: 10.10.2.1, port: 9200, mac: "02:00:00:00:02:01"}]
dataplane:
"""


def write(tmp_path, dataplane: str):
    p = tmp_path / "c.yaml"
    p.write_text(AFXDP_YAML + dataplane)
    return p


def test_run_picks_the_backend_the_configuration_names(tmp_path):
    afxdp = load_config(write(tmp_path, "  afxdp: {strategy_iface: eth1, venue_iface: eth2}\n"))
    assert afxdp.dataplane.afxdp.mode == "copy" and afxdp.dataplane.afxdp.frames == 4096
    assert live_backend(afxdp, None) == "afxdp"
    assert live_backend(afxdp, "afxdp") == "afxdp"
    assert live_backend(afxdp, "pcap") is None  # the replay job
    both = load_config(write(tmp_path, "  afxdp: {strategy_iface: eth1, venue_iface: eth1}\n"
                                       "  ports: {strategy: p0, venue: p0}\n"))
    assert live_backend(both, None) == "dpdk"
    assert live_backend(both, "afxdp") == "afxdp"
    neither = load_config(write(tmp_path, "  idle_sleep_us: 5\n"))
    assert live_backend(neither, None) is None
    with pytest.raises(ValueError, match="needs dataplane.afxdp"):
        live_backend(neither, "afxdp")


@pytest.mark.parametrize("entry, where", [
    ("{strategy_iface: eth1}", "6: dataplane.afxdp.venue_iface: missing required key"),
    ("{strategy_iface: eth1, venue_iface: eth2, frames: 1000}",
     "6: dataplane.afxdp.frames: 1000 is not a power of two"),
    ("{strategy_iface: eth1, venue_iface: eth2, mode: turbo}",
     "6: dataplane.afxdp.mode: 'turbo' is not one of: copy, zerocopy"),
    ("{strategy_iface: an-interface-name-too-long, venue_iface: eth2}",
     "6: dataplane.afxdp.strategy_iface: 'an-interface-name-too-long' is not an interface"),
    ("{strategy_iface: eth1, venue_iface: eth2, rings: 4}",
     "6: dataplane.afxdp.rings: unknown key"),
])
def test_afxdp_settings_errors_name_line_and_key(tmp_path, entry, where):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, f"  afxdp: {entry}\n"))
    assert where in str(e.value)


@needs_root
def test_a_missing_interface_is_a_clear_error(tmp_path):
    cfg = write(tmp_path, "  afxdp: {strategy_iface: omsnone0, venue_iface: omsnone1}\n")
    r = subprocess.run([live.OMSCTL, "run", "--backend", "afxdp", "--config", str(cfg),
                        "--duration", "1"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 4
    assert "AF_XDP on omsnone0, omsnone1: no interface omsnone0" in r.stderr
