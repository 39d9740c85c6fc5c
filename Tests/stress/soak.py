#!/usr/bin/env python3
"""Tests/stress/soak.py: runs Tests/stress/soak.c preloaded for some minutes,
samples its VmRSS every second, writes the series as CSV and an SVG chart,
and applies the leak rule.

  soak.py --bin build/tests/stress/soak --lib LD_PRELOAD-VALUE --minutes M
          [--threads 4] [--live-mib 64] [--csv F] [--svg F] [--label TEXT]
  soak.py --bin - --from-csv F --svg F [--label TEXT]    (only redraws a chart)

Checks (one PASS/FAIL line each, then "N passed, M failed"; exit status 1
on any failure):
  - the soak ran to the end: exit status 0 and its "done" line (every block
    checked and freed; fork children exited 0), nothing on stderr (a failed
    content check, or a swiftmalloc message, is printed there)
  - the live size stayed at the target: the median live size of the last
    third of the run is within 10% of --live-mib
  - the leak rule: the median VmRSS of the last third of the samples may
    exceed the median of the second third by at most 10% + 4 MiB (the first
    third is warm-up); a VmRSS above max(1 GiB, 16 x the live size) ends the
    run at once as a leak
A run that is still going 120 s after its time is a hang: the kernel stacks
of its threads (and gdb backtraces, when gdb is there) are printed, then it
is killed.
"""
import argparse
import math
import os
import signal
import statistics
import subprocess
import sys
import threading
import time

LEAK_FACTOR = 1.10
LEAK_SLACK_KIB = 4 * 1024


def vm_rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def hang_report(pid):
    out = []
    try:
        tids = sorted(os.listdir("/proc/%d/task" % pid), key=int)
    except OSError:
        tids = []
    for tid in tids:
        base = "/proc/%d/task/%s/" % (pid, tid)
        try:
            wchan = open(base + "wchan").read().strip()
            stack = open(base + "stack").read().strip().splitlines()[:8]
        except OSError:
            continue
        out.append("thread %s wchan=%s" % (tid, wchan))
        out.extend("    " + s for s in stack)
    try:
        g = subprocess.run(["gdb", "-p", str(pid), "-batch", "-nx", "-ex", "thread apply all bt 10"],
                           capture_output=True, text=True, timeout=60)
        out.extend(l for l in g.stdout.splitlines() if l.startswith(("#", "Thread")))
    except (OSError, subprocess.TimeoutExpired):
        pass
    return "\n".join(out)


def parse_status(line):
    d = {}
    for part in line.split():
        if "=" in part:
            k, v = part.split("=", 1)
            try:
                d[k] = float(v)
            except ValueError:
                pass
    return d


def svg_chart(samples, live_target_mib, bound, path, label):
    """samples: list of (t, rss_kib, live_bytes). A line chart, no dependencies."""
    W, H = 820, 380
    L, R, T, B = 70, 20, 50, 50
    ts = [s[0] for s in samples] or [0]
    rss = [s[1] / 1024 for s in samples] or [0]
    live = [s[2] / 1048576 if s[2] is not None else None for s in samples]
    tmax = max(max(ts), 1)
    ymax = max(max(rss), live_target_mib, bound[1] / 1024 if bound else 0) * 1.15
    raw = ymax / 8
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    step = next(f * mag for f in (1, 2, 5, 10) if f * mag >= raw)
    ymax = (int(ymax / step) + 1) * step

    def x(t):
        return L + (W - L - R) * t / tmax

    def y(v):
        return H - B - (H - T - B) * v / ymax

    o = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
         'font-family="sans-serif" font-size="12">' % (W, H, W, H),
         '<rect width="100%" height="100%" fill="white"/>',
         '<text x="%d" y="22" font-size="15" font-weight="bold">%s</text>' % (L, escape(label))]
    # grid and axes
    v = 0.0
    while v <= ymax + 1e-9:
        o.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>' % (L, y(v), W - R, y(v)))
        o.append('<text x="%d" y="%.1f" text-anchor="end">%g</text>' % (L - 6, y(v) + 4, v))
        v += step
    tstep = max(1, round(tmax / 10 / 10) * 10) if tmax > 100 else max(1, round(tmax / 10))
    t = 0
    while t <= tmax:
        o.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#eee"/>' % (x(t), T, x(t), H - B))
        o.append('<text x="%.1f" y="%d" text-anchor="middle">%d</text>' % (x(t), H - B + 16, t))
        t += tstep
    o.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>' % (L, H - B, W - R, H - B))
    o.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>' % (L, T, L, H - B))
    o.append('<text x="%d" y="%d" text-anchor="middle">seconds</text>' % ((L + W - R) // 2, H - 12))
    o.append('<text x="16" y="%d" transform="rotate(-90 16 %d)" text-anchor="middle">MiB</text>'
             % ((T + H - B) // 2, (T + H - B) // 2))
    # thirds
    for frac in (1 / 3, 2 / 3):
        o.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#999" stroke-dasharray="2,4"/>'
                 % (x(tmax * frac), T, x(tmax * frac), H - B))
    if bound:
        med2, limit = bound
        x0, x1 = x(tmax / 3), x(tmax)
        o.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#c00" stroke-dasharray="6,4"/>'
                 % (x(tmax * 2 / 3), y(limit / 1024), x1, y(limit / 1024)))
        o.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#06c" stroke-dasharray="3,3"/>'
                 % (x0, y(med2 / 1024), x(tmax * 2 / 3), y(med2 / 1024)))
    pts = " ".join("%.1f,%.1f" % (x(a), y(b)) for a, b in zip(ts, rss))
    o.append('<polyline fill="none" stroke="#06c" stroke-width="1.8" points="%s"/>' % pts)
    lp = " ".join("%.1f,%.1f" % (x(a), y(b)) for a, b in zip(ts, live) if b is not None)
    if lp:
        o.append('<polyline fill="none" stroke="#888" stroke-width="1.2" points="%s"/>' % lp)
    # legend
    lx = W - R - 470
    o.append('<line x1="%d" y1="38" x2="%d" y2="38" stroke="#06c" stroke-width="2"/>' % (lx, lx + 20))
    o.append('<text x="%d" y="42">VmRSS</text>' % (lx + 24))
    o.append('<line x1="%d" y1="38" x2="%d" y2="38" stroke="#888" stroke-width="2"/>' % (lx + 80, lx + 100))
    o.append('<text x="%d" y="42">live bytes</text>' % (lx + 104))
    if bound:
        o.append('<line x1="%d" y1="38" x2="%d" y2="38" stroke="#c00" stroke-dasharray="6,4"/>' % (lx + 180, lx + 200))
        o.append('<text x="%d" y="42">leak bound</text>' % (lx + 204))
        o.append('<line x1="%d" y1="38" x2="%d" y2="38" stroke="#06c" stroke-dasharray="3,3"/>' % (lx + 290, lx + 310))
        o.append('<text x="%d" y="42">median, 2nd third</text>' % (lx + 314))
    o.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(o) + "\n")


def escape(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--lib", default="")
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--live-mib", type=int, default=64)
    ap.add_argument("--csv")
    ap.add_argument("--svg")
    ap.add_argument("--label", default="")
    ap.add_argument("--log", default=None, help="where the soak's stderr goes")
    ap.add_argument("--from-csv", help="only redraw --svg from a CSV written earlier")
    a = ap.parse_args()
    if a.from_csv:
        samples = []
        with open(a.from_csv) as f:
            next(f)
            for line in f:
                t, r, lv = line.strip().split(",")
                samples.append((int(t), int(r), int(lv) if lv else None))
        n = len(samples)
        med2 = statistics.median(s[1] for s in samples[n // 3: 2 * n // 3])
        svg_chart(samples, a.live_mib, (med2, med2 * LEAK_FACTOR + LEAK_SLACK_KIB), a.svg, a.label)
        return 0

    secs = max(6.0, a.minutes * 60)
    env = dict(os.environ)
    if a.lib:
        env["LD_PRELOAD"] = a.lib
    errpath = a.log or (a.csv or "soak") + ".stderr"
    err = open(errpath, "w")
    cmd = [a.bin, "-s", "%g" % secs, "-t", str(a.threads), "-l", str(a.live_mib)]
    print("INFO soak: %s for %g s, %d threads, live size %d MiB, LD_PRELOAD=%s"
          % (a.bin, secs, a.threads, a.live_mib, a.lib or "(none)"), flush=True)
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=err, text=True,
                         start_new_session=True)
    latest = {}
    lines = []

    def reader():
        for line in p.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("t="):
                latest.update(parse_status(line))

    th = threading.Thread(target=reader, daemon=True)
    th.start()

    cap_kib = max(1 << 20, 16 * a.live_mib * 1024)
    samples = []
    t0 = time.monotonic()
    killed = None
    while p.poll() is None:
        time.sleep(1.0 - ((time.monotonic() - t0) % 1.0))
        t = time.monotonic() - t0
        r = vm_rss_kib(p.pid)
        if r is None:
            break
        samples.append((round(t), r, latest.get("live")))
        if r > cap_kib:
            killed = "VmRSS %d MiB above the cap of %d MiB at %d s: a leak" % (r >> 10, cap_kib >> 10, t)
            os.killpg(p.pid, signal.SIGKILL)
            break
        if t > secs + 120:
            killed = "still running %d s after its time (hang):\n%s" % (t - secs, hang_report(p.pid))
            os.killpg(p.pid, signal.SIGKILL)
            break
    status = p.wait()
    th.join(timeout=5)
    err.close()
    errtext = open(errpath).read().strip()

    passed = failed = 0

    def result(ok, msg):
        nonlocal passed, failed
        if ok:
            passed += 1
        else:
            failed += 1
        print(("PASS " if ok else "FAIL ") + msg, flush=True)

    done = [l for l in lines if l.startswith("done ")]
    if killed:
        result(False, "soak: " + killed)
    elif status == 0 and done and not errtext:
        d = parse_status(done[-1])
        result(True, "soak: %d s, %d operations, %d block checks, %d threads came and went, %d forks, "
               "%d cross-thread frees; every check passed"
               % (d.get("t", 0), d.get("ops", 0), d.get("checks", 0), d.get("threads", 0),
                  d.get("forks", 0), d.get("xfrees", 0)))
    else:
        why = "killed by signal %d" % -status if status < 0 else "exit status %d" % status
        result(False, "soak: %s%s%s" % (why, "" if done else ", no 'done' line",
                                         (": " + " | ".join(errtext.splitlines()[:5])) if errtext else ""))

    bound = None
    n = len(samples)
    if n >= 6 and not killed:
        second = [s[1] for s in samples[n // 3: 2 * n // 3]]
        last = [s[1] for s in samples[2 * n // 3:]]
        med2, med3 = statistics.median(second), statistics.median(last)
        limit = med2 * LEAK_FACTOR + LEAK_SLACK_KIB
        bound = (med2, limit)
        lives = [s[2] for s in samples[2 * n // 3:] if s[2] is not None]
        target = a.live_mib << 20
        if lives:
            lm = statistics.median(lives)
            result(abs(lm - target) <= 0.10 * target,
                   "soak: live size at the target: median %.1f MiB in the last third (target %d MiB)"
                   % (lm / 1048576, a.live_mib))
        else:
            result(False, "soak: no live-size reports")
        result(med3 <= limit,
               "soak: leak rule: median VmRSS %.1f MiB in the last third vs %.1f MiB in the second "
               "(bound %.1f MiB = 1.10 x + 4 MiB; peak %.1f MiB)"
               % (med3 / 1024, med2 / 1024, limit / 1024, max(s[1] for s in samples) / 1024))
    elif not killed:
        result(False, "soak: only %d VmRSS samples" % n)

    if a.csv:
        with open(a.csv, "w") as f:
            f.write("t_s,rss_kib,live_bytes\n")
            for t, r, lv in samples:
                f.write("%d,%d,%s\n" % (t, r, "" if lv is None else "%d" % lv))
    if a.svg:
        label = a.label or "soak: VmRSS over time"
        svg_chart(samples, a.live_mib, bound, a.svg, label)
    if a.csv or a.svg:
        print("INFO soak: RSS series in %s%s" % (a.csv or "", (", chart " + a.svg) if a.svg else ""))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
