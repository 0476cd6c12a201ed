#!/usr/bin/env python3
"""The supervisor of one pump instance: what systemd does for the pump on a real host.

    supervise.py --interface haports0 --pid-file FILE --log FILE [--emulate ADDR/LEN,...
                 --withdraw-seconds S --metrics HOST:PORT] -- node bin/haports.mjs pump ...

It runs the pump and, when the pump process ends however it ends (kill -9 included),
removes every address from the announce interface, as

    [Service]
    ExecStart=/usr/bin/haports pump --config /etc/haports/pump.json --metrics 127.0.0.1:9464
    ExecStopPost=/usr/sbin/ip addr flush dev haports0

does: a pump that cannot withdraw its own announcement (SIGKILL, a crash, the OOM killer)
is withdrawn by its supervisor, and BIRD's `protocol direct` withdraws the route at once.
SIGTERM and SIGHUP are passed on to the pump. It does not restart the pump.

--emulate: for a pump without the "announce" feature, the supervisor also does what the
pump would do: it adds the addresses while the pump is ready (its metrics endpoint answers,
which it does once the listeners are bound and the first probe round is done, and at
least one appliance is up), removes them when it is not, and on SIGTERM removes them,
waits --withdraw-seconds (routers move the traffic away meanwhile) and only then passes
SIGTERM on. Logs are JSON lines in --log (the pump's standard error goes there too).
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--interface", required=True)
    ap.add_argument("--pid-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--emulate", default="")
    ap.add_argument("--withdraw-seconds", type=float, default=1.0)
    ap.add_argument("--metrics", default="127.0.0.1:9464")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    addresses = [x for x in a.emulate.split(",") if x]
    logf = open(a.log, "a", buffering=1)

    def log(msg, **f):
        logf.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}Z",
                               "level": "info", "msg": msg, "from": "supervisor", **f}) + "\n")

    def ip(*args):
        return subprocess.run(["ip", *args], capture_output=True, text=True)

    announced = [False]

    def announce(on, why):
        if on == announced[0]:
            return
        for addr in addresses:
            ip("addr", "add" if on else "del", addr, "dev", a.interface)
        announced[0] = on
        log("announce" if on else "withdraw", addresses=addresses, why=why, emulated=True)

    if addresses:
        if ip("link", "show", a.interface).returncode != 0 and ip("link", "add", a.interface, "type", "dummy").returncode != 0:
            ip("link", "add", a.interface, "type", "ifb")   # a kernel without dummy interfaces
        ip("link", "set", a.interface, "up")
        ip("addr", "flush", "dev", a.interface)

    child = subprocess.Popen(cmd, stdout=logf, stderr=logf, stdin=subprocess.DEVNULL)
    with open(a.pid_file + ".tmp", "w") as f:
        f.write(str(child.pid))
    os.replace(a.pid_file + ".tmp", a.pid_file)
    log("started", pid=child.pid, cmd=cmd, emulate=bool(addresses))

    terminating = [0.0]

    def on_term(signum, _frame):
        if terminating[0]:
            child.send_signal(signal.SIGKILL)
            return
        terminating[0] = time.monotonic()
        if addresses:
            announce(False, "SIGTERM")
        else:
            child.send_signal(signal.SIGTERM)

    def on_hup(signum, _frame):
        child.send_signal(signal.SIGHUP)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGHUP, on_hup)

    url = f"http://{a.metrics}/metrics"
    term_sent = False
    while child.poll() is None:
        if terminating[0] and not term_sent and (not addresses or time.monotonic() - terminating[0] >= a.withdraw_seconds):
            child.send_signal(signal.SIGTERM)
            term_sent = True
        if addresses and not terminating[0]:
            ready = False
            try:
                with urllib.request.urlopen(url, timeout=0.5) as r:
                    text = r.read().decode()
                ready = any(line.startswith("haports_backend_up{") and line.rstrip().endswith(" 1") for line in text.splitlines())
            except OSError:
                pass
            announce(ready, "ready" if ready else "not ready")
        try:
            child.wait(0.1 if addresses else 0.5)
        except subprocess.TimeoutExpired:
            pass
    # ExecStopPost: whatever the pump left on the interface goes.
    ip("addr", "flush", "dev", a.interface)
    log("pump exited; announce interface flushed", pid=child.pid, code=child.returncode, interface=a.interface)
    return 0


if __name__ == "__main__":
    sys.exit(main())
