#!/usr/bin/env python3
"""Draws the fleet lab (examples/fleet/topology.json) as SVG: docs/fleet.svg.

    python3 examples/fleet/render_svg.py [TOPOLOGY.json] [OUT.svg]

Plain Python, no packages: every name, address, AS number and timer in the picture comes
from the topology file that fleet.py and test/fleet/test_fleet.py use, so the picture
cannot drift from the lab. Re-run it after editing the topology.
"""
import json
import sys
from pathlib import Path
from xml.sax.saxutils import escape

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

W, H = 1100, 700
FONT = "font-family='DejaVu Sans, Helvetica, Arial, sans-serif'"
COLORS = {"edge": "#5b6770", "pump": "#5b6770", "client": "#e8f1fb", "server": "#e8f1fb", "router": "#fff4e0",
          "pumpbox": "#e9f7ec", "nva": "#fdecec", "ingress": "#d9822b", "relay": "#2b6cd9", "egress": "#2f9e44",
          "bgp": "#8a5cd6"}


class Svg:
    def __init__(self):
        self.parts = []

    def add(self, s):
        self.parts.append(s)

    def text(self, x, y, s, size=13, weight="normal", anchor="start", color="#222", italic=False):
        style = " font-style='italic'" if italic else ""
        self.add(f"<text x='{x}' y='{y}' {FONT} font-size='{size}' font-weight='{weight}' text-anchor='{anchor}' fill='{color}'{style}>{escape(s)}</text>")

    def box(self, x, y, w, h, fill, title, lines, stroke="#444"):
        self.add(f"<rect x='{x}' y='{y}' width='{w}' height='{h}' rx='8' fill='{fill}' stroke='{stroke}' stroke-width='1.5'/>")
        self.text(x + 10, y + 20, title, size=14, weight="bold")
        for i, line in enumerate(lines):
            self.text(x + 10, y + 39 + 16 * i, line, size=12)

    def line(self, x1, y1, x2, y2, color="#444", width=2, dash=None, arrow=None):
        d = f" stroke-dasharray='{dash}'" if dash else ""
        m = f" marker-end='url(#arrow-{arrow})'" if arrow else ""
        self.add(f"<line x1='{x1}' y1='{y1}' x2='{x2}' y2='{y2}' stroke='{color}' stroke-width='{width}'{d}{m}/>")

    def path(self, d, color, width=2.5, dash=None, arrow=None):
        ds = f" stroke-dasharray='{dash}'" if dash else ""
        m = f" marker-end='url(#arrow-{arrow})'" if arrow else ""
        self.add(f"<path d='{d}' fill='none' stroke='{color}' stroke-width='{width}'{ds}{m}/>")

    def render(self):
        markers = "".join(
            f"<marker id='arrow-{k}' viewBox='0 0 10 10' refX='9' refY='5' markerWidth='7' markerHeight='7' orient='auto-start-reverse'>"
            f"<path d='M 0 0 L 10 5 L 0 10 z' fill='{COLORS[k]}'/></marker>" for k in ("ingress", "relay", "egress", "bgp"))
        return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{W}' height='{H}' viewBox='0 0 {W} {H}'>\n"
                f"<defs>{markers}</defs>\n<rect width='{W}' height='{H}' fill='white'/>\n" + "\n".join(self.parts) + "\n</svg>\n")


def render(t):
    s = Svg()
    tun, bgp, bfd, r = t["tunnel"], t["bgp"], t["bfd"], t["router"]
    anycast = t["anycast"]
    s.text(20, 30, "haports fleet: pump instances behind BGP/ECMP, no shared state", size=18, weight="bold")
    s.text(20, 50, f"examples/fleet/topology.json · tunnel {tun['protocol'].upper()} VNI {tun['vni']}, UDP {tun['port']} · "
                   f"every instance: the same pump.json (same hashKey, appliances, probes) and the same bird.conf", size=12, color="#555")

    # The edge LAN: VTEPs, appliances, the router's edge port.
    edge_y = 205
    s.line(30, edge_y, W - 30, edge_y, COLORS["edge"], 5)
    s.text(W - 34, edge_y - 8, f"edge LAN {t['edge']['network']}", size=12, anchor="end", color=COLORS["edge"], weight="bold")
    c, sv = t["client"], t["server"]
    s.box(40, 70, 250, 100, COLORS["client"], "client (VTEP)", [f"{c['vtep']} → remote {anycast.split('/')[0]}",
                                                                 f"inner {c['inner4']}, {c['inner6']}", f"{tun['device']} MTU {tun['mtu']}, nolearning"])
    s.line(165, 170, 165, edge_y)
    s.box(330, 70, 250, 100, COLORS["server"], "server (VTEP)", [f"{sv['vtep']} → remote {anycast.split('/')[0]}",
                                                                  f"inner {sv['inner4']}, {sv['inner6']}", "http, iperf3, echo"])
    s.line(455, 170, 455, edge_y)
    nvas = t["appliances"]["members"]
    for i, n in enumerate(nvas):
        x = 40 + i * 210
        s.box(x, 250, 195, 100, COLORS["nva"], f"{n['name']} (firewall)", [n["address"], f"MAC {t['appliances']['mac']}",
                                                                           "conntrack, INVALID dropped", f"health :{t['probe']['port']}{t['probe']['path']}"])
        s.line(x + 97, edge_y, x + 97, 250)
    s.text(40, 372, "anycast gateway: the same MAC and gateway addresses on every appliance;", size=11, color="#555", italic=True)
    s.text(40, 387, "static FDB entries send straight to the other VTEP, never back to a pump", size=11, color="#555", italic=True)

    rx, ry, rw, rh = 700, 245, 370, 110
    s.box(rx, ry, rw, rh, COLORS["router"], f"router (BIRD 2, AS {r['asn']})",
          [f"edge {r['edge']}, pump LAN {r['pumpLan']}",
           f"{anycast}: one ECMP route, a next hop per",
           "instance that announces it (merge paths)",
           f"fib_multipath_hash_policy={r['multipathHashPolicy']} (outer 5-tuple)"])
    s.line(rx + 185, edge_y, rx + 185, ry)

    # The pump LAN.
    pl_y = 440
    s.line(330, pl_y, W - 30, pl_y, COLORS["pump"], 5)
    s.text(W - 34, pl_y + 18, f"pump LAN {t['pumpLan']['network']}", size=12, anchor="end", color=COLORS["pump"], weight="bold")
    s.line(rx + 185, ry + rh, rx + 185, pl_y)
    pumps = t["pumps"]
    ann = t["announce"]
    for i, p in enumerate(pumps):
        x = 340 + i * 250
        s.box(x, 480, 235, 120, COLORS["pumpbox"], f"{p['name']}", [f"{p['address']}, BIRD AS {bgp['pumpAsn']}",
                                                                     "haports pump, bind 0.0.0.0:" + str(tun["port"]),
                                                                     f"{anycast} on {ann['interface']}",
                                                                     "  only while ready",
                                                                     "supervisor flushes it on exit"])
        s.line(x + 117, pl_y, x + 117, 480)
        # BGP + BFD session to the router (dashed).
        s.path(f"M {x + 210} 480 C {x + 210} 455, {rx + 300} 420, {rx + 310} {ry + rh}", COLORS["bgp"], 1.5, "5,4")
    s.text(W - 34, 625, f"eBGP sessions (dashed; hold {bgp['holdSeconds']} s, keepalive {bgp['keepaliveSeconds']} s) with BFD {bfd['intervalMs']} ms × {bfd['multiplier']}:",
           size=11, anchor="end", color=COLORS["bgp"])
    s.text(W - 34, 641, f"an instance that stops answering is routed around in ~{bfd['intervalMs'] * bfd['multiplier'] / 1000:.1f} s; "
                        f"a pump that is not ready withdraws {anycast}", size=11, anchor="end", color=COLORS["bgp"])

    # One connection's path: client → router → an instance → (router) → the appliance → server.
    s.path(f"M 210 170 C 300 235, 700 220, {rx + 120} {ry}", COLORS["ingress"], 2.5, None, "ingress")
    s.path(f"M {rx + 120} {ry + rh} C {rx + 100} 430, 720 450, 710 480", COLORS["ingress"], 2.5, None, "ingress")
    s.path(f"M 650 480 C 640 420, {rx + 40} 400, {rx + 60} {ry + rh}", COLORS["relay"], 2.5, "7,4", "relay")
    s.path(f"M {rx + 30} {ry} C 640 215, 420 215, 360 250", COLORS["relay"], 2.5, "7,4", "relay")
    s.path("M 320 250 C 330 215, 440 205, 470 170", COLORS["egress"], 2.5, None, "egress")
    lx, ly = 40, 430
    s.text(lx, ly, "one connection, one direction:", size=12, weight="bold")
    for i, (k, label) in enumerate((("ingress", "VTEP → anycast address: the"),
                                    ("", "router picks an instance (ECMP)"),
                                    ("relay", "the instance relays the datagram,"),
                                    ("", "unchanged, to the appliance that"),
                                    ("", "the keyed consistent hash picks"),
                                    ("egress", "appliance → the other VTEP"))):
        y = ly + 22 + i * 17
        if k:
            s.line(lx, y - 4, lx + 30, y - 4, COLORS[k], 2.5, "7,4" if k == "relay" else None)
        s.text(lx + 38, y, label, size=11)
    for i, line in enumerate(("The reply crosses the router again and may",
                              "land on ANOTHER instance: it picks the same",
                              "appliance, because the hash is symmetric and",
                              "every instance has the same configuration.")):
        s.text(lx, ly + 140 + 15 * i, line, size=11, italic=True, color="#555")
    return s.render()


def main(argv):
    topo = Path(argv[0]) if argv else HERE / "topology.json"
    out = Path(argv[1]) if len(argv) > 1 else ROOT / "docs" / "fleet.svg"
    out.write_text(render(json.loads(topo.read_text())))
    print(f"wrote {out} from {topo}")


if __name__ == "__main__":
    main(sys.argv[1:])
