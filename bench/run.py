#!/usr/bin/env python3
"""run.py: the `make bench` driver (Python 3 standard library only).

Runs every workload under every allocator in alternation (A B C D E, A B C D E,
...), measures wall time, CPU time and peak RSS of each run with `swiftmalloc measure`
(the measuring code of `swiftmalloc compare`, Sources/SwiftMallocCLI/Spawn.swift; CPU
covers the waited-for descendants, e.g. gcc's cc1, and peak RSS the whole tree), collects
the workloads' own METRIC lines, and writes:

    <out>/results.csv   one row per run (raw data)
    <out>/summary.md    the tables below as markdown, with date and machine
    <out>/chart.svg     grouped bars: time and peak RSS relative to glibc

A crash, timeout, bad exit status or failed preload is recorded as the status
of that run and the harness carries on. It exits 0 unless it is broken itself
or measured nothing: when no run produced a result, or an allocator whose
library was found produced none on any workload (e.g. every run NOPRELOAD),
it says so and exits 1. The C workloads name the library their malloc
resolves into (ALLOCLIB, from dladdr); a run whose malloc is not the
allocator under test is NOPRELOAD. See bench/README.md.
"""
import argparse
import csv
import json
import datetime
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))

PEERS = [
    # name, soname, dpkg package (for the version line only)
    ("jemalloc", "libjemalloc.so.2", "libjemalloc2"),
    ("tcmalloc", "libtcmalloc_minimal.so.4", "libtcmalloc-minimal4"),
    ("mimalloc", "libmimalloc.so.2", "libmimalloc2.0"),
]

EXIT_MEANING = {3: "malloc returned NULL", 4: "heap corruption detected", 5: "thread creation failed"}


# --------------------------------------------------------------------- setup
def multiarch():
    try:
        out = subprocess.run(["gcc", "-print-multiarch"], capture_output=True, text=True, timeout=10).stdout.strip()
        if out:
            return out
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.machine() + "-linux-gnu"


def find_so(soname):
    ma = multiarch()
    for d in ("/usr/lib/" + ma, "/lib/" + ma, "/usr/lib", "/usr/local/lib", "/usr/lib64"):
        p = os.path.join(d, soname)
        if os.path.exists(p):
            return p
    return None


def dpkg_version(pkg):
    try:
        r = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True, text=True, timeout=10)
        return r.stdout.strip() if r.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "0 0 0"


def uname_srm():
    u = os.uname()
    return "%s %s %s" % (u.sysname, u.release, u.machine)


def git_rev():
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=os.path.dirname(HERE), timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "Sources"], capture_output=True, text=True,
                               cwd=os.path.dirname(HERE), timeout=10).stdout.strip()
        return rev + ("+dirty" if dirty else "") if rev else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def build_allocators(lib, wanted, secure_lib=None):
    """[(name, preload path or None, note)]; missing ones get path None and a note."""
    allocs = [("glibc", None, "system malloc (no preload)")]
    for name, soname, pkg in PEERS:
        p = find_so(soname)
        ver = dpkg_version(pkg)
        allocs.append((name, p, (p or "MISSING " + soname) + (" (%s %s)" % (pkg, ver) if ver else "")))
    sw = os.path.abspath(lib) if lib and os.path.exists(lib) else None
    allocs.append(("swiftmalloc", sw, (sw or "MISSING " + str(lib)) + " (git %s)" % git_rev()))
    if secure_lib:
        sec = os.path.abspath(secure_lib) if os.path.exists(secure_lib) else None
        allocs.append(("swiftmalloc-secure", sec,
                       (sec or "MISSING " + str(secure_lib)) + " (secure mode, git %s)" % git_rev()))
    if wanted:
        allocs = [a for a in allocs if a[0] in wanted]
    return allocs


def define_workloads(args):
    """Each workload: name, argv, extra env, whether the program reports ALLOCLIB, description."""
    q = args.quick
    s = args.scale if args.scale else (0.1 if q else 1.0)
    wl = os.path.abspath(args.wl)
    fs_threads = str(max(2, os.cpu_count() or 2))
    W = []

    def c(name, argv, desc):
        W.append(dict(name=name, argv=[wl] + argv + ["-s", repr(s)], env={}, alloclib=True, desc=desc))

    c("fastpath", ["fastpath"], "malloc+free pairs of 16/64/256/1024/8192 B, one thread")
    c("batch", ["batch"], "allocate 1000 mixed small objects, free them all, repeat")
    for t in (1, 2, 4, 8):
        c("larson-t%d" % t, ["larson", "-t", str(t)],
          "larson-style server, %d thread lineage(s), threads retire and hand slots on" % t)
    c("prodcons", ["prodcons"], "one thread allocates, another frees, via a lock-free ring")
    c("cache-thrash", ["thrash", "-t", fs_threads], "active false sharing: threads write their own small objects")
    c("cache-scratch", ["scratch", "-t", fs_threads],
      "passive false sharing: objects from one burst freed by worker threads, then reused")
    c("realloc", ["realloc"], "vector doubling to 64 MiB, then random realloc sizes")
    c("frag", ["frag"], "long- and short-lived objects in shifting size bands; peak RSS vs peak live")
    c("large", ["large"], "churn of 64 KiB..4 MiB blocks around the mmap threshold")
    c("threads", ["threads"], "1000 threads use 24 size classes each, then sit idle; RSS per idle thread")
    c("freeall", ["freeall"], "230 MB of small blocks allocated and all freed; RSS kept at once and after 6 s")

    py = sys.executable or shutil.which("python3")
    if py:
        W.append(dict(name="python", argv=[py, os.path.join(HERE, "alloc_heavy.py"), repr(0.34 if q else s)],
                      env={"PYTHONMALLOC": "malloc"}, alloclib=False,
                      desc="python3 bench/alloc_heavy.py with PYTHONMALLOC=malloc"))
    gcc = shutil.which("gcc")
    if gcc:
        nf = 25 if q else max(1, int(100 * s))
        src = os.path.join(os.path.abspath(args.out), "big%d.c" % nf)
        if not os.path.exists(src):
            subprocess.run([sys.executable, os.path.join(HERE, "gen_big_c.py"), str(nf), src], check=True)
        W.append(dict(name="gcc", argv=[gcc, "-O2", "-c", src, "-o", os.devnull], env={}, alloclib=False,
                      desc="gcc -O2 -c on a generated %d-function C file" % nf))
    if args.only:
        keep = set(args.only.split(","))
        W = [w for w in W if w["name"] in keep]
    return W


# ----------------------------------------------------------------- one run
def run_one(measure, argv, env, timeout):
    """Run argv once through `swiftmalloc measure`, the measuring code of `swiftmalloc compare`
    (Sources/SwiftMallocCLI/Spawn.swift: wall and CPU time from the wait4 of a small helper's child,
    peak RSS of the whole process tree); return dict(status, code, wall, user, sys, maxrss_kib,
    stdout, stderr). BENCH_PRELOAD in env names the library to preload into the program only."""
    env = dict(env)
    preload = env.pop("BENCH_PRELOAD", None)
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        out, err = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
        cmd = [measure, "measure", "--timeout", str(timeout), "--stdout", out, "--stderr", err]
        if preload:
            cmd += ["--preload", preload]
        cmd += ["--"] + list(argv)
        try:
            p = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=timeout + 60)
        except (OSError, subprocess.SubprocessError) as e:
            return dict(status="HARNESS-ERR", code=None, wall=None, user=None, sys=None, maxrss_kib=None,
                        stdout="", stderr=str(e))

        def text(path):
            try:
                with open(path, "rb") as f:
                    return f.read().decode("utf-8", "replace")
            except OSError:
                return ""
        so, se = text(out), text(err)
    try:
        m = json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return dict(status="HARNESS-ERR", code=None, wall=None, user=None, sys=None, maxrss_kib=None,
                    stdout=so, stderr=(p.stderr or "") + se)
    if "exec_error" in m:
        return dict(status="EXEC-FAIL", code=127, wall=None, user=None, sys=None, maxrss_kib=None,
                    stdout=so, stderr=m["exec_error"])
    code = -m["signal"] if m.get("signal") else m["status"]
    if m.get("timed_out"):
        st = "TIMEOUT"
    elif code < 0:
        try:
            st = signal.Signals(-code).name
        except ValueError:
            st = "SIG%d" % -code
    elif code != 0:
        st = "EXIT%d" % code
    else:
        st = "ok"
    return dict(status=st, code=code, wall=m["wall_s"], user=m["user_s"], sys=m["sys_s"],
                maxrss_kib=m["peak_rss_bytes"] // 1024, stdout=so, stderr=se)


def parse_metrics(text, meta):
    m, lib = {}, None
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 3 and f[0] == "METRIC":
            try:
                m[f[1]] = float(f[2])
            except ValueError:
                continue
            meta.setdefault(f[1], (f[3] if len(f) > 3 else "", f[4] if len(f) > 4 else ""))
        elif len(f) >= 2 and f[0] == "ALLOCLIB":
            lib = f[1]
    return m, lib


def alloclib_matches(alloc, path, lib):
    """Whether the library a workload's malloc resolved into (ALLOCLIB) is the
    allocator it ran under: glibc's libc.so for glibc, the very file preloaded
    (same inode, whatever the names) for the others."""
    if not lib or lib == "unknown":
        return False
    if alloc == "glibc":
        return os.path.basename(lib).startswith("libc.so")
    try:
        return bool(path) and os.path.samefile(lib, path)
    except OSError:
        return False


# ------------------------------------------------------------------ stats
def median(xs):
    return statistics.median(xs) if xs else None


def gmean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def summarize(results, workloads, allocs):
    """cell[(w, a)] = dict(time, rss_mib, ok, n, fails{status: count}, metrics{key: median})."""
    cell = {}
    for w in workloads:
        for a, _, _ in allocs:
            rs = [r for r in results if r["workload"] == w["name"] and r["allocator"] == a]
            ok = [r for r in rs if r["status"] == "ok"]
            fails = {}
            for r in rs:
                if r["status"] != "ok":
                    fails[r["status"]] = fails.get(r["status"], 0) + 1
            keys = sorted({k for r in ok for k in r["metrics"]})
            walls = [r["wall"] for r in ok]
            cell[(w["name"], a)] = dict(
                time=median(walls),
                spread=(max(walls) - min(walls)) / median(walls) * 100 if len(walls) > 1 and median(walls) else None,
                cpu=median([r["user"] + r["sys"] for r in ok]),
                rss_mib=median([r["maxrss_kib"] / 1024.0 for r in ok]),
                n=len(rs), ok=len(ok), fails=fails,
                metrics={k: median([r["metrics"][k] for r in ok if k in r["metrics"]]) for k in keys})
    return cell


def ratios(cell, wname, allocs, field):
    """{alloc: (vs glibc, vs best other allocator)} for field 'time' or 'rss_mib'."""
    out = {}
    base = cell.get((wname, "glibc"), {}).get(field)
    for a, _, _ in allocs:
        v = cell[(wname, a)][field]
        # the secure build is ours too: it is compared with the peers, and
        # never counts as the best peer of the default build (or vice versa)
        others = [cell[(wname, b)][field] for b, _, _ in allocs
                  if b != a and cell[(wname, b)][field]
                  and not (a.startswith("swiftmalloc") and b.startswith("swiftmalloc"))]
        vg = v / base if v and base else None
        vb = v / min(others) if v and others else None
        out[a] = (vg, vb)
    return out


def status_text(c):
    if c["n"] == 0:
        return "not run"
    if not c["fails"]:
        return "ok"
    return ", ".join("%d/%d %s" % (k, c["n"], s) for s, k in sorted(c["fails"].items()))


def fmt(v, spec="%.3f", none="-"):
    return none if v is None else spec % v


def fmt_metric(v):
    if v is None:
        return "-"
    a = abs(v)
    if a >= 1000:
        return "%.0f" % v
    if a >= 100:
        return "%.1f" % v
    if a >= 10:
        return "%.2f" % v
    return "%.3f" % v


# ----------------------------------------------------------------- tables
def build_tables(cell, workloads, allocs, meta):
    """Return list of (title, header, rows, note) tables."""
    names = [a for a, _, _ in allocs]
    tables = []

    rows = []
    for w in workloads:
        tr = ratios(cell, w["name"], allocs, "time")
        rr = ratios(cell, w["name"], allocs, "rss_mib")
        for a in names:
            c = cell[(w["name"], a)]
            rows.append([w["name"], a, fmt(c["time"]), fmt(c["spread"], "%.0f"), fmt(tr[a][0], "%.2f"),
                         fmt(tr[a][1], "%.2f"), fmt(c["cpu"], "%.2f"), fmt(c["rss_mib"], "%.1f"),
                         fmt(rr[a][0], "%.2f"), fmt(rr[a][1], "%.2f"), status_text(c)])
    tables.append(("Wall time and peak RSS (medians over successful runs)",
                   ["workload", "allocator", "time s", "spread%", "t/glibc", "t/best", "cpu s", "RSS MiB",
                    "rss/glibc", "rss/best", "status"], rows,
                   "t/glibc, rss/glibc: this allocator's median divided by glibc's. t/best, rss/best: divided by "
                   "the best (lowest) of the other allocators, so < 1.00 means it beats all of them. "
                   "spread%: (max - min) / median of the wall times. cpu s: median user + sys time."))

    rows = []
    for w in workloads:
        keys = []
        for a in names:
            for k in cell[(w["name"], a)]["metrics"]:
                if k not in keys and k != "workload_seconds" and meta.get(k, ("", ""))[1] != "info":
                    keys.append(k)
        for k in keys:
            unit, better = meta.get(k, ("", ""))
            rows.append([w["name"], k, unit, better] +
                        [fmt_metric(cell[(w["name"], a)]["metrics"].get(k)) for a in names])
    tables.append(("Workload metrics (medians; as printed by each workload)",
                   ["workload", "metric", "unit", "better"] + names, rows, ""))

    lw = [w["name"] for w in workloads if w["name"].startswith("larson-t")]
    if lw:
        rows = []
        for a in names:
            tp = {n: cell[(n, a)]["metrics"].get("mops_per_s") for n in lw}
            r21 = (tp.get("larson-t2") / tp["larson-t1"]) if tp.get("larson-t2") and tp.get("larson-t1") else None
            rows.append([a] + [fmt_metric(tp[n]) for n in lw] + [fmt(r21, "%.2f")])
        tables.append(("Thread scaling (larson throughput, Mops/s; %d CPUs)" % (os.cpu_count() or 0),
                       ["allocator"] + [n.replace("larson-", "") for n in lw] + ["t2/t1"], rows,
                       "Fixed total work split over the threads; t2/t1 is the 2-thread over 1-thread throughput."))

    rows = []
    for a in names:
        t = [ratios(cell, w["name"], allocs, "time")[a][0] for w in workloads]
        r = [ratios(cell, w["name"], allocs, "rss_mib")[a][0] for w in workloads]
        nfail = sum(1 for w in workloads if cell[(w["name"], a)]["fails"])
        rows.append([a, fmt(gmean(t), "%.3f"), fmt(gmean(r), "%.3f"), str(sum(1 for x in t if x)), str(nfail)])
    tables.append(("Geometric means vs glibc (over workloads where both succeeded)",
                   ["allocator", "time ratio", "RSS ratio", "workloads", "with failures"], rows,
                   "Below 1.000 is faster / smaller than glibc."))
    return tables


def render_text(tables):
    out = []
    for title, header, rows, note in tables:
        widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)] if rows else [len(h) for h in header]
        out.append("== " + title)
        out.append("  ".join(h.ljust(wd) for h, wd in zip(header, widths)))
        out.append("  ".join("-" * wd for wd in widths))
        prev = None
        for r in rows:
            if prev is not None and r[0] != prev and len(header) > 6:
                out.append("")
            prev = r[0]
            out.append("  ".join((c.ljust(wd) if i < 2 or not c[:1].isdigit() else c.rjust(wd))
                                 for i, (c, wd) in enumerate(zip(r, widths))).rstrip())
        if note:
            out.append(note)
        out.append("")
    return "\n".join(out)


def render_md(tables, info, failures, workloads):
    out = ["# swiftmalloc benchmark summary", ""]
    for k, v in info:
        out.append("- **%s**: %s" % (k, v))
    out.append("")
    out.append("Workloads (details in bench/README.md):")
    out.append("")
    for w in workloads:
        out.append("- `%s`: %s" % (w["name"], w["desc"]))
    out.append("")
    for title, header, rows, note in tables:
        out.append("## " + title)
        out.append("")
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join("---" if i < 2 else "---:" for i in range(len(header))) + "|")
        for r in rows:
            out.append("| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |")
        out.append("")
        if note:
            out.append(note)
            out.append("")
    if failures:
        out.append("## Failures")
        out.append("")
        for f in failures:
            out.append("- " + f)
        out.append("")
    return "\n".join(out)


# ------------------------------------------------------------------- chart
COLORS = {"glibc": "#7f7f7f", "jemalloc": "#1f77b4", "tcmalloc": "#2ca02c", "mimalloc": "#ff7f0e",
          "swiftmalloc": "#d62728", "swiftmalloc-secure": "#9467bd"}


def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def render_svg(cell, workloads, allocs, info_line):
    names = [a for a, _, _ in allocs]
    wnames = [w["name"] for w in workloads]
    nb = len(names)
    bar, gap = 11, 14
    gw = nb * bar + gap
    left, right, top = 80, 20, 70
    ph, pgap, bottom = 260, 120, 110
    width = max(820, left + right + max(1, len(wnames)) * gw)
    gw = max(gw, (width - left - right) // max(1, len(wnames)))
    height = top + 2 * ph + pgap + bottom
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
             'font-family="sans-serif" font-size="11">' % (width, height, width, height),
             '<rect width="100%" height="100%" fill="white"/>',
             '<text x="%d" y="20" font-size="15" font-weight="bold">swiftmalloc benchmark: ratio to glibc '
             '(log scale; lower is better)</text>' % left,
             '<text x="%d" y="37" fill="#555">%s</text>' % (left, esc(info_line))]
    # legend
    lx = left
    for a in names:
        parts.append('<rect x="%d" y="48" width="12" height="12" fill="%s"/>' % (lx, COLORS.get(a, "#333")))
        parts.append('<text x="%d" y="58">%s</text>' % (lx + 16, esc(a)))
        lx += 16 + 8 * len(a) + 18
    parts.append('<text x="%d" y="58" fill="#b00">x = failed / no data</text>' % lx)

    for pi, (field, label) in enumerate((("time", "wall time / glibc"), ("rss_mib", "peak RSS / glibc"))):
        y0 = top + pi * (ph + pgap)
        vals = {}
        for w in wnames:
            r = ratios(cell, w, allocs, field)
            for a in names:
                vals[(w, a)] = r[a][0]
        present = [v for v in vals.values() if v]
        lo = min(present + [0.5])
        hi = max(present + [2.0])
        lo2 = 2.0 ** math.floor(math.log2(lo))
        hi2 = 2.0 ** math.ceil(math.log2(hi))
        span = math.log2(hi2) - math.log2(lo2)

        def y(v):
            return y0 + ph - (math.log2(v) - math.log2(lo2)) / span * ph

        parts.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>'
                     % (left, y0, width - left - right, ph))
        e = math.log2(lo2)
        step = 1 if span <= 8 else 2
        while e <= math.log2(hi2) + 1e-9:
            v = 2.0 ** e
            yy = y(v)
            parts.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="%s"/>'
                         % (left, width - right, yy, yy, "#000" if abs(v - 1) < 1e-9 else "#ddd",
                            "1.2" if abs(v - 1) < 1e-9 else "1"))
            lab = ("%g" % v) if v >= 1 else "1/%g" % (1 / v)
            parts.append('<text x="%d" y="%.1f" text-anchor="end">%s</text>' % (left - 6, yy + 4, lab))
            e += step
        parts.append('<text transform="translate(%d,%d) rotate(-90)" text-anchor="middle" font-size="12">'
                     '%s (log2 scale)</text>' % (22, y0 + ph // 2, esc(label)))
        for gi, w in enumerate(wnames):
            gx = left + gi * gw + (gw - nb * bar) // 2
            for bi, a in enumerate(names):
                v = vals[(w, a)]
                x = gx + bi * bar
                if not v:
                    parts.append('<text x="%d" y="%.1f" fill="#b00" font-weight="bold" text-anchor="middle">'
                                 'x<title>%s %s: failed or no data (%s)</title></text>'
                                 % (x + bar // 2, y(1) - 3, esc(w), esc(a), esc(status_text(cell[(w, a)]))))
                    continue
                ya, yb = sorted((y(1), y(v)))
                h = max(yb - ya, 1.0)
                parts.append('<rect x="%d" y="%.1f" width="%d" height="%.1f" fill="%s"><title>%s %s: %.3f x glibc'
                             '</title></rect>' % (x, ya, bar - 1, h, COLORS.get(a, "#333"), esc(w), esc(a), v))
            lx = gx + nb * bar / 2
            parts.append('<text transform="translate(%.1f,%d) rotate(-40)" text-anchor="end">%s</text>'
                         % (lx, y0 + ph + 14, esc(w)))
        parts.append('<text x="%d" y="%d" text-anchor="middle" font-size="12">workload</text>'
                     % ((left + width - right) // 2, y0 + ph + 95))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


# -------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", default="build/libswiftmalloc.so", help="swiftmalloc .so to preload")
    ap.add_argument("--wl", default="build/bench/wl", help="compiled bench/workloads.c")
    ap.add_argument("--measure", default="build/bin/swiftmalloc", help="the swiftmalloc command (its measure subcommand)")
    ap.add_argument("--out", default="build/bench", help="output directory")
    ap.add_argument("--quick", action="store_true", help="sanity pass: 1 run, reduced sizes")
    ap.add_argument("--runs", type=int, help="runs per workload and allocator (default 5, quick 1)")
    ap.add_argument("--timeout", type=float, help="seconds per run before it is killed (default 120, quick 60)")
    ap.add_argument("--scale", type=float, help="work multiplier for the C workloads (default 1, quick 0.1)")
    ap.add_argument("--only", help="comma-separated workload names")
    ap.add_argument("--alloc", help="comma-separated allocator names")
    ap.add_argument("--secure-lib", help="also run this build as swiftmalloc-secure (secure-mode cost)")
    args = ap.parse_args()
    runs = args.runs or (1 if args.quick else 5)
    timeout = args.timeout or (60.0 if args.quick else 120.0)
    os.makedirs(args.out, exist_ok=True)

    # Benchmark a private copy of the library: the build tree may be rebuilt
    # (by make, by someone else) while a long run is in progress.
    lib = args.lib
    if lib and os.path.exists(lib):
        snap = os.path.join(args.out, "libswiftmalloc-under-test.so")
        shutil.copy2(lib, snap)
        lib = snap
    secure_lib = args.secure_lib
    if secure_lib and os.path.exists(secure_lib):
        snap = os.path.join(args.out, "libswiftmalloc-secure-under-test.so")
        shutil.copy2(secure_lib, snap)
        secure_lib = snap
    allocs = build_allocators(lib, set(args.alloc.split(",")) if args.alloc else None, secure_lib)
    workloads = define_workloads(args)
    for exe in (args.wl, args.measure):
        if not os.access(exe, os.X_OK):
            print("bench: %s is missing (build it with make bench)" % exe, file=sys.stderr)
            return 2
    measure = os.path.abspath(args.measure)
    base_env = dict(os.environ)
    base_env.pop("LD_PRELOAD", None)
    base_env.pop("BENCH_PRELOAD", None)
    base_env["LC_ALL"] = "C"

    started = datetime.datetime.now().astimezone()
    load_start = loadavg()
    print("bench: %d workloads x %d allocators x %d runs, timeout %gs per run%s; load average %s"
          % (len(workloads), len(allocs), runs, timeout, " (QUICK)" if args.quick else "", load_start),
          file=sys.stderr)
    for a, p, note in allocs:
        print("bench:   %-12s %s" % (a, note), file=sys.stderr)

    results, meta, failures = [], {}, []
    seq = 0
    for run in range(1, runs + 1):
        for w in workloads:
            for a, path, _ in allocs:
                seq += 1
                if a != "glibc" and not path:
                    r = dict(status="MISSING", code=None, wall=None, user=None, sys=None, maxrss_kib=None,
                             stdout="", stderr="allocator library not found")
                else:
                    env = dict(base_env)
                    env.update(w["env"])
                    if path:
                        env["BENCH_PRELOAD"] = path
                    r = run_one(measure, w["argv"], env, timeout)
                metrics, lib = parse_metrics(r["stdout"], meta)
                if r["status"] == "ok":
                    if "cannot be preloaded" in r["stderr"]:
                        r["status"] = "NOPRELOAD"
                    elif w["alloclib"] and not alloclib_matches(a, path, lib):
                        r["status"] = "NOPRELOAD"
                        r["stderr"] += "\nbench: malloc resolves into %s, not %s" % (
                            lib or "(no ALLOCLIB line)", path or "libc.so")
                r.update(run=run, seq=seq, workload=w["name"], allocator=a, metrics=metrics,
                         load1=loadavg().split()[0])
                results.append(r)
                if r["status"] != "ok":
                    tail = " ".join(r["stderr"].strip().splitlines()[-3:])[:300]
                    why = EXIT_MEANING.get(r["code"], "") if r["status"].startswith("EXIT") else ""
                    failures.append("run %d, %s, %s: **%s**%s (after %s s)%s" % (
                        run, w["name"], a, r["status"], " (%s)" % why if why else "", fmt(r["wall"], "%.1f"),
                        (": `%s`" % tail.replace("`", "'")) if tail else ""))
                print("bench: [%d/%d] %-14s %-12s %8s s %9s MiB  %s" % (
                    run, runs, w["name"], a, fmt(r["wall"], "%.3f"),
                    fmt(r["maxrss_kib"] / 1024.0 if r["maxrss_kib"] else None, "%.1f"), r["status"]),
                    file=sys.stderr, flush=True)

    # raw CSV
    csv_path = os.path.join(args.out, "results.csv")
    with open(csv_path, "w", newline="") as f:
        cw = csv.writer(f)
        cw.writerow(["run", "seq", "workload", "allocator", "status", "exit_code", "wall_s", "user_s", "sys_s",
                     "maxrss_kib", "load1", "metrics", "stderr_tail"])
        for r in results:
            cw.writerow([r["run"], r["seq"], r["workload"], r["allocator"], r["status"],
                         "" if r["code"] is None else r["code"], fmt(r["wall"], "%.6f", ""),
                         fmt(r["user"], "%.6f", ""), fmt(r["sys"], "%.6f", ""),
                         "" if r["maxrss_kib"] is None else r["maxrss_kib"], r["load1"],
                         ";".join("%s=%g" % kv for kv in sorted(r["metrics"].items())),
                         "" if r["status"] == "ok" else " ".join(r["stderr"].strip().splitlines()[-3:])[:500]])

    cell = summarize(results, workloads, allocs)
    tables = build_tables(cell, workloads, allocs, meta)
    finished = datetime.datetime.now().astimezone()
    info = [("date", started.strftime("%Y-%m-%d %H:%M %Z")),
            ("machine", uname_srm()),
            ("CPU", cpu_model()),
            ("nproc", str(os.cpu_count())),
            ("runs", "%d per workload and allocator, alternating allocators%s" % (runs, "; QUICK (reduced sizes)"
                                                                                   if args.quick else "")),
            ("duration", "%.0f s" % (finished - started).total_seconds()),
            ("load average", "%s at start, %s at end (1/5/15 min)%s" % (
                load_start, loadavg(), "; the machine was busy, expect noise"
                if float(load_start.split()[0] or 0) > 0.25 * (os.cpu_count() or 1) else ""))]
    info += [(a, note) for a, _, note in allocs]

    text = render_text(tables)
    print()
    print(text)
    if failures:
        print("== Failures")
        for fl in failures:
            print("  " + fl.replace("**", ""))
        print()
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write(render_md(tables, info, failures, workloads))
    info_line = "%s | %s | %s, nproc %s | %d run(s)%s" % (
        started.strftime("%Y-%m-%d"), uname_srm(), cpu_model(), os.cpu_count(), runs, ", QUICK" if args.quick else "")
    with open(os.path.join(args.out, "chart.svg"), "w") as f:
        f.write(render_svg(cell, workloads, allocs, info_line))
    print("bench: wrote %s, %s, %s" % (csv_path, os.path.join(args.out, "summary.md"),
                                       os.path.join(args.out, "chart.svg")))
    return measured_something(results, allocs, csv_path)


def measured_something(results, allocs, csv_path):
    """0, or 1 after saying loudly what produced no result."""
    problems = []
    if not any(r["status"] == "ok" for r in results):
        problems.append("no workload produced a result (%d runs, none ok)" % len(results))
    else:
        for a, path, _ in allocs:
            mine = [r for r in results if r["allocator"] == a]
            if (a == "glibc" or path) and mine and not any(r["status"] == "ok" for r in mine):
                seen = sorted({r["status"] for r in mine})
                problems.append("%s produced no result on any workload (%s)" % (a, ", ".join(seen)))
    for p in problems:
        print("bench: FAILED: %s; see the failures above and %s" % (p, csv_path), file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
