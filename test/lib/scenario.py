"""The harness the scenario tests share (test/pump/test_pump_netns.py, test/pump/test_pump_lab.py,
test/fleet/test_fleet.py): parts and checks counted per part, figures, a summary, an optional
JSON record, and run_scenario(), which runs a scenario under a time bound and always cleans up.

    R = Report("test_x", parts=["first thing", "second thing"], record=WORK / "results.json")
    part, check, figure = R.part, R.check, R.figure
    ...
    return run_scenario(R, body, cleanup, bound=120)
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback


class Report:
    """What a scenario checked and measured. Checks before the first part count under "set-up".

    parts: the titles of the numbered parts (part(1) is "1. " + parts[0]); the summary says
    which of them did not run. record: a path; the record (the command, each part's figures,
    whatever the test adds to .record, the seconds and the failures) is written there as JSON."""

    def __init__(self, name, parts=(), record=None):
        self.name = name
        self.parts = list(parts)
        self.results = {"set-up": [0, 0]}   # part title -> [passed, failed]
        self.current = "set-up"
        self.failures = []                   # "part: what" of each failed check; errors outside the checks
        self.figures = []                    # (part, what, value)
        self.notes = []                      # lines printed under the summary's heading
        self.record_path = record
        self.record = {"command": " ".join([sys.executable, *sys.argv]), "parts": {}} if record else None

    def part(self, n):
        """Starts a part: n is a number (a title of `parts`) or a title. Prints its title."""
        title = f"{n}. {self.parts[n - 1]}" if isinstance(n, int) else n
        print(f"== {title}", flush=True)
        self.current = title
        self.results[title] = [0, 0]

    def check(self, ok, what):
        print(("  ok    " if ok else "  FAIL  ") + what, flush=True)
        self.results.setdefault(self.current, [0, 0])[0 if ok else 1] += 1
        if not ok:
            self.failures.append(f"{self.current}: {what}")
        return ok

    def figure(self, what, value):
        print(f"  ..    {what}: {value}", flush=True)
        self.figures.append((self.current, what, value))
        if self.record is not None:
            self.record["parts"].setdefault(self.current, {})[what] = value

    def save(self, elapsed):
        if self.record is None:
            return
        self.record["seconds"] = round(elapsed, 1)
        self.record["failures"] = self.failures
        try:
            self.record_path.write_text(json.dumps(self.record, indent=2, default=str))
        except OSError:
            pass

    def summary(self, elapsed):
        print(f"{self.name}: what ran ({elapsed:.1f}s)")
        for line in dict.fromkeys(self.notes):
            print(f"  {line}")
        for title, (ok, bad) in self.results.items():
            print(f"  {title}: {ok + bad} check{'s' if ok + bad != 1 else ''}, {ok} ok" + (f", {bad} FAILED" if bad else ""))
        reached = sum(1 for i, t in enumerate(self.parts, 1) if f"{i}. {t}" in self.results)
        if reached < len(self.parts):
            print(f"  NOT RUN (stopped by a failure): parts {reached + 1}-{len(self.parts)}")
        if self.figures:
            print("  figures:")
        last = None
        for p, what, value in self.figures:
            if p != last:
                print(f"   {p}")
                last = p
            print(f"      {what}: {value}")
        total = sum(ok + bad for ok, bad in self.results.values())
        bad = sum(b for _, b in self.results.values())
        print(f"  {total} checks" + (f" in {reached} of {len(self.parts)} parts" if self.parts else "") + f", {bad} failed"
              + (f", {len(self.failures) - bad} error(s) outside the checks" if len(self.failures) > bad else ""))
        for f in self.failures:
            print(f"  failed: {f}")


def run_scenario(report, body, cleanup, bound, note=""):
    """Runs body() bounded at `bound` seconds (SIGALRM; SIGTERM ends it too). An exception is
    printed and counted as a failure; then, always, the part "clean-up" runs cleanup(). Saves
    the record, prints the summary and the verdict; returns the exit status (0 or 1)."""
    def on_signal(signum, _frame):
        raise SystemExit(f"interrupted by signal {signum}")

    def on_alarm(*_):
        raise TimeoutError(f"test took longer than {bound} s")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(bound)
    started = time.monotonic()
    try:
        body()
    except Exception as e:  # noqa: BLE001 — reported as a failure, then cleaned up
        traceback.print_exc()
        report.failures.append(f"{type(e).__name__}: {e}")
    finally:
        signal.alarm(0)
        report.part("clean-up")
        cleanup()
    elapsed = time.monotonic() - started
    report.save(elapsed)
    report.summary(elapsed)
    print(f"{report.name}: {'FAIL' if report.failures else 'ok'} ({elapsed:.1f}s{'; ' + note if note else ''})")
    return 1 if report.failures else 0


def run(*cmd, check_rc=True, timeout=60, env=None, input=None):
    """subprocess.run, output captured as text; raises RuntimeError on a non-zero exit when check_rc."""
    cmd = [str(c) for c in cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, input=input)
    if check_rc and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}: {(r.stderr or r.stdout).strip()[-800:]}")
    return r


def first_line(*cmd):
    """The first line a command prints (a version, say), or "? (why not)"."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"? ({e})"
    lines = (r.stdout or r.stderr).strip().splitlines()
    return lines[0].strip() if lines else f"? (exit {r.returncode})"


def install_missing(name, tools, timeout=900):
    """Installs the Debian packages of the tools not on PATH ({tool: package}; apt-get update
    first, as root); returns a line for each tool still missing."""
    missing = sorted({pkg for tool, pkg in tools.items() if shutil.which(tool) is None})
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"{name}: installing {' '.join(missing)} (apt-get update; apt-get install -y)", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", *missing]):
            r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
            if r.returncode != 0:
                print(f"  {' '.join(cmd)}: exit {r.returncode}: {(r.stderr or r.stdout).strip()[-500:]}", flush=True)
                break
    return [f"{tool}: not found on PATH (apt-get install {pkg})" for tool, pkg in tools.items() if shutil.which(tool) is None]


class NetnsAgent:
    """A helper process in a network namespace that answers JSON lines with JSON lines
    (one request, one answer; calls from several threads take turns)."""

    def __init__(self, ns, argv, what):
        self.what = what
        self.p = subprocess.Popen(["ip", "netns", "exec", ns, *argv],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.lock = threading.Lock()

    def call(self, **c):
        with self.lock:
            self.p.stdin.write(json.dumps(c) + "\n")
            self.p.stdin.flush()
            line = self.p.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.what} ended")
        return json.loads(line)

    def close(self, goodbye=None):
        """Ends the helper: `goodbye` (a request) first if given, else its input closes."""
        if self.p.poll() is None:
            try:
                if goodbye is not None:
                    self.call(**goodbye)
                else:
                    self.p.stdin.close()
            except (RuntimeError, OSError, ValueError):
                pass
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
