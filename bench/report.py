#!/usr/bin/python3
"""Turns bench/run's raw results.json into bench/results/*.md tables,
summary.md, summary.json (what bench/update-readme reads) and PNG plots
(gnuplot).  Usage: report.py RESULTS.json
"""

import importlib.machinery
import json
import os
import shutil
import statistics
import subprocess
import sys
import types

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
MPMS = ["prefork", "fork", "worker", "event", "hybrid"]
# Variant servers bench/run runs in one scenario only: shown there alone.
VARIANTS = {"quintet-hybrid1": "1"}

SCENARIOS = {
    "1": ("1-static-1k-keepalive", "Static 1 KiB file, keep-alive, 100 connections", "rps", "nginx"),
    "2": ("2-static-1k-new-connection", "Static 1 KiB file, a new connection per request "
          "(Connection: close), 100 connections", "rps", "nginx"),
    "3": ("3-static-10m", "10 MiB file, keep-alive, 10 connections", "mbps", "nginx"),
    "4": ("4-cgi", "CGI, keep-alive, 8 connections", "rps", "floor (8 at a time)"),
    "6": ("6-backend-wait", "Waiting on a backend: /lab/sleep?ms=50 (Quintet MPMs)", "rps", None),
    "7": ("7-cpu-work", "CPU work: /lab/hello latency while 8 clients request /lab/hash", "p99", None),
    "8": ("8-tls", "TLS 1.3, RSA-2048", "rps", "nginx"),
    "9": ("9-gzip", "gzip of a 100 KiB HTML page, keep-alive, 100 connections", "rps", "nginx"),
}


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, digits=0):
    if x is None:
        return "–"
    if digits == 0:
        return "{:,.0f}".format(x)
    return "{:,.{d}f}".format(x, d=digits)


def span(xs, digits=0):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "–"
    return "%s–%s" % (fmt(min(xs), digits), fmt(max(xs), digits))


def header(d):
    m, s = d["machine"], d["settings"]
    lines = ["Machine: %s, %d cores, %.1f GiB, %s, kernel %s. Run of %s." % (
        m["cpu"], m["cores"], m["memory_gib"], m["os"], m["kernel"], m["date"]),
        "Method: server pinned to core 0, wrk (1 thread) to core 1; %d round(s) "
        "with servers interleaved; %g s warm-up then %g s measured per figure; "
        "median and min–max over rounds; ratios computed within each round, "
        "then the median taken. Server CPU = utime+stime of the whole server "
        "process tree (reaped children included) from /proc, per completed "
        "request. Access logs off for every server; keep-alive unlimited, 60 s."
        % (s["rounds"], s["warmup_s"], s["seconds"])]
    if m.get("load"):
        lines.append("Load average at start/end (other work on the machine): %s." % m["load"])
    if s.get("quick"):
        lines.append("**Smoke run (--quick): figures are indicative only.**")
    return "\n\n".join(lines) + "\n"


def ratio_median(rows, ref_rows, key):
    """Median over rounds of value / reference value of the same round; a
    row that carries its own reference (scenario 4's floor_rps, the mean of
    floors measured right before and right after it) is divided by that one."""
    by_round = {r["round"]: r.get(key) for r in ref_rows or []}
    out = []
    for r in rows:
        ref = r.get("floor_" + key) or by_round.get(r["round"])
        if ref and r.get(key) is not None:
            out.append(r[key] / ref)
    return med(out)


def error_cell(rows):
    e = sum(r.get("errors", 0) for r in rows)
    n = sum(r.get("non2xx", 0) for r in rows)
    if e == 0 and n == 0:
        return "0"
    return "**⚠ %d errors, %d non-2xx**" % (e, n)


def server_order(d, extra=()):
    names = ["quintet-" + m for m in MPMS] + list(VARIANTS) + ["nginx", "apache-prefork", "apache-worker",
                                              "apache-event", "lighttpd", "h2o"]
    return list(extra) + [n for n in names if n in d["servers"] or n in d["status"]]


def na_reason(d, name, sc):
    if name in d["status"]:
        return d["status"][name]
    need = {"4": "cgi", "6": "lab", "7": "lab", "8": "tls", "9": "gzip"}.get(sc)
    if need and need not in d["features"].get(name, []):
        return "not available (no %s)" % {"cgi": "CGI", "lab": "mod_lab", "tls": "TLS module",
                                          "gzip": "gzip module"}[need]
    return "not run"


def table_generic(d, sc, variant, per_server, key, ref):
    unit = "MB/s" if key == "mbps" else "req/s"
    ref_rows = per_server.get(ref) if ref else None
    head = ("| server | %s median | min–max | × %s | CPU µs/req | p99 ms | errors |\n"
            "|---|---:|---:|---:|---:|---:|---|\n" % (unit, ref or "–"))
    out, summary = [], {}
    # Reference rows that are not servers (the CGI floors) come first.
    refs = ([ref] if ref in per_server else []) + \
        sorted(n for n in per_server if n.startswith("floor ") and n != ref)
    for name in server_order(d, [n for n in refs if n not in d["servers"]]):
        rows = per_server.get(name)
        if not rows:
            if sc in ("6", "7") and not name.startswith("quintet-") or \
                    VARIANTS.get(name, sc) != sc or variant:
                continue
            out.append("| %s | %s | | | | | |" % (name, na_reason(d, name, sc)))
            continue
        bad = [r["invalid"] for r in rows if "invalid" in r]
        rows = [r for r in rows if "invalid" not in r]
        if not rows:
            out.append("| %s | **⚠ wrong response: %s** | | | | | |" % (name, bad[0]))
            continue
        vals = [r.get(key) for r in rows]
        rat = ratio_median(rows, ref_rows, key) if ref_rows else None
        cpu = med([r.get("cpu_us") for r in rows])
        p99 = med([r.get("p99") for r in rows])
        out.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            name, fmt(med(vals), 0), span(vals), fmt(rat, 2) if rat else "–",
            fmt(cpu, 1), fmt(p99, 2), error_cell(rows)))
        summary[name] = {"value": med(vals), "cpu_us": cpu, "p99": p99, "ratio": rat,
                         "errors": error_cell(rows) != "0"}
    return head + "\n".join(out) + "\n", summary


def table_sleep(d, variants):
    head = ("| server | concurrency | req/s median | min–max | Little's-law bound | "
            "% of bound | /lab/hello ceiling | % of min(bound, ceiling) | CPU µs/req | "
            "p99 ms | errors |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
    out, summary, peers = [], {}, []
    for name in server_order(d):
        if name in VARIANTS:
            continue
        if not name.startswith("quintet-"):
            peers += peer_ceiling_rows(name, variants)
            continue
        got = False
        for variant in sorted(variants, key=lambda v: int(v.split("=")[1])):
            rows = [r for r in variants[variant].get(name, []) if "invalid" not in r]
            if not rows:
                bad = [r["invalid"] for r in variants[variant].get(name, [])]
                if bad:
                    got = True
                    out.append("| %s | %s | **⚠ wrong response: %s** | | | | | | | | |"
                               % (name, variant.split("=")[1], bad[0]))
                continue
            got = True
            conc = int(variant.split("=")[1])
            rps = med([r["rps"] for r in rows])
            bound = conc / 0.05
            ceiling = med([r.get("ceiling") for r in rows])
            best = min(bound, ceiling) if ceiling else bound
            out.append("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                name, conc, fmt(rps), span([r["rps"] for r in rows]), fmt(bound),
                fmt(100 * rps / bound, 1), fmt(ceiling) if ceiling else "–",
                fmt(100 * rps / best, 1), fmt(med([r.get("cpu_us") for r in rows]), 1),
                fmt(med([r.get("p99") for r in rows]), 1), error_cell(rows)))
            summary.setdefault(name, {})[str(conc)] = {
                "rps": rps, "bound": bound, "ceiling": ceiling,
                "errors": error_cell(rows) != "0"}
        if not got:
            out.append("| %s | %s | | | | | | | | | |" % (name, na_reason(d, name, "6")))
    return head + "\n".join(out + peers) + "\n", summary


def peer_ceiling_rows(name, variants):
    """A peer's static 1 KiB file at the same concurrency: what this
    machine's one core answers when nothing waits at all."""
    out = []
    for variant in sorted(variants, key=lambda v: int(v.split("=")[1])):
        rows = [r for r in variants[variant].get(name, []) if "invalid" not in r]
        if not rows:
            continue
        conc = int(variant.split("=")[1])
        rps = med([r["rps"] for r in rows])
        out.append("| %s: static 1 KiB, no wait | %d | %s | %s | %s | %s | – | – | %s | %s | %s |" % (
            name, conc, fmt(rps), span([r["rps"] for r in rows]), fmt(conc / 0.05),
            fmt(100 * rps / (conc / 0.05), 1), fmt(med([r.get("cpu_us") for r in rows]), 1),
            fmt(med([r.get("p99") for r in rows]), 1), error_cell(rows)))
    return out


def table_hash(d, variants, kb):
    head = ("| server | hello p50 ms alone | p99 alone | p50 under load | p99 under load | "
            "hash req/s (kb=%d) | errors |\n|---|---:|---:|---:|---:|---:|---|\n" % kb)
    out, summary = [], {}
    alone = variants.get("hello alone", {})
    load = variants.get("hello under hash load", {})
    for name in server_order(d):
        if not name.startswith("quintet-") or name in VARIANTS:
            continue
        a, l = alone.get(name), load.get(name)
        bad = [r["invalid"] for r in (a or []) + (l or []) if "invalid" in r]
        if bad:
            out.append("| %s | **⚠ wrong response: %s** | | | | | |" % (name, bad[0]))
            continue
        if not a or not l:
            out.append("| %s | %s | | | | | |" % (name, na_reason(d, name, "7")))
            continue
        s = {"p50_alone": med([r.get("p50") for r in a]), "p99_alone": med([r.get("p99") for r in a]),
             "p50_load": med([r.get("p50") for r in l]), "p99_load": med([r.get("p99") for r in l]),
             "hash_rps": med([r.get("hash_rps") for r in l]),
             "errors": error_cell(a + l) != "0"}
        out.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            name, fmt(s["p50_alone"], 2), fmt(s["p99_alone"], 2), fmt(s["p50_load"], 2),
            fmt(s["p99_load"], 2), fmt(s["hash_rps"]), error_cell(a + l)))
        summary[name] = s
    return head + "\n".join(out) + "\n", summary


def table_idle(d):
    idle = d.get("extra", {}).get("idle", {})
    head = ("| server | idle connections asked | answered | PSS before KiB | PSS after KiB | "
            "KiB per idle connection |\n|---|---:|---:|---:|---:|---:|\n")
    out, summary = [], {}
    for name in server_order(d):
        runs = idle.get(name)
        if not runs and name in VARIANTS:
            continue
        if not runs:
            out.append("| %s | %s | | | | |" % (name, na_reason(d, name, "5")))
            continue
        for r in runs:
            if "error" in r:
                out.append("| %s | %d | **⚠ %s** | | | |" % (name, r["n"], r["error"]))
                continue
            flag = "" if r["answered"] == r["n"] else " ⚠"
            out.append("| %s | %s | %s%s | %s | %s | %s |" % (
                name, fmt(r["n"]), fmt(r["answered"]), flag, fmt(r["before"]),
                fmt(r["after"]), fmt(r["kib"], 1)))
            summary.setdefault(name, {})[str(r["n"])] = {"kib": r["kib"],
                                                       "answered": r["answered"]}
    return head + "\n".join(out) + "\n", summary


# ------------------------------------------------------------------ plots

def gnuplot(script, name):
    if not shutil.which("gnuplot"):
        return None
    path = os.path.join(RESULTS, name)
    p = subprocess.run(["gnuplot"], input="set terminal pngcairo size 900,480 font 'sans,10'\n"
                       "set output '%s'\n%s" % (path, script), text=True, capture_output=True)
    if p.returncode != 0:
        sys.stderr.write("gnuplot %s: %s\n" % (name, p.stderr))
        return None
    return name


def bars(rows, title, ylabel, name, log=False):
    """rows: [(label, value)] -> bar chart PNG."""
    rows = [(l, v) for l, v in rows if v]
    if not rows:
        return None
    data = "\n".join('"%s" %g' % (l, v) for l, v in rows)
    script = ("set title '%s'\nset ylabel '%s'\nset style fill solid 0.7\nset boxwidth 0.7\n"
              "set xtics rotate by -30\nset grid ytics\nunset key\nset offsets 0.3,0.3,graph 0.08,0\n%s"
              "set yrange [%s:*]\n$d << EOD\n%s\nEOD\n"
              "plot $d using 0:2:xtic(1) with boxes lc rgb '#3b6ea8', "
              "'' using 0:2:(sprintf('%%.4g',$2)) with labels offset 0,0.7\n"
              % (title, ylabel, "set logscale y\n" if log else "", "0.1" if log else "0", data))
    return gnuplot(script, name)


def plot_static(summ):
    s1 = summ.get("1", {}).get("", {})
    a = bars([(n, v["value"]) for n, v in s1.items()], "Static 1 KiB, keep-alive: requests/s",
             "req/s", "static-1k-rps.png")
    b = bars([(n, v["cpu_us"]) for n, v in s1.items()],
             "Static 1 KiB, keep-alive: server CPU per request", "µs", "static-1k-cpu.png")
    return [x for x in (a, b) if x]


def plot_idle(summ):
    idle = summ.get("5", {})
    rows = []
    for n, v in idle.items():
        first = v.get(min(v, key=int)) if v else None
        if first and first["kib"]:
            rows.append((n, max(first["kib"], 0.1)))
    return bars(rows, "Memory (PSS) per idle keep-alive connection", "KiB (log scale)",
                "idle-memory.png", log=True)


def plot_sleep(summ):
    s6 = summ.get("6", {})
    if not s6:
        return None
    blocks, plots, concs = [], [], set()
    for i, (n, v) in enumerate(s6.items()):
        pts = sorted((int(c), x["rps"]) for c, x in v.items())
        concs.update(c for c, _ in pts)
        blocks.append("$m%d << EOD\n%s\nEOD" % (i, "\n".join("%d %g" % p for p in pts)))
        plots.append("$m%d using 1:2 with linespoints lw 2 title '%s'" % (i, n))
    bound = "\n".join("%d %g" % (c, c / 0.05) for c in sorted(concs))
    script = ("set title '/lab/sleep?ms=50: throughput against concurrency'\n"
              "set xlabel 'concurrent connections'\nset ylabel 'req/s'\nset logscale xy\n"
              "set grid\nset key top left\n%s\n$b << EOD\n%s\nEOD\nplot %s, "
              "$b using 1:2 with lines dt 2 lc rgb 'black' title 'Little''s law bound (c / 50 ms)'\n"
              % ("\n".join(blocks), bound, ", ".join(plots)))
    return gnuplot(script, "backend-wait.png")


def plot_hash(summ):
    s7 = summ.get("7", {})
    if not s7:
        return None
    data = "\n".join('"%s" %g %g' % (n, v["p99_alone"] or 0, v["p99_load"] or 0)
                     for n, v in s7.items())
    script = ("set title '/lab/hello p99 latency, alone and while 8 clients hash'\n"
              "set ylabel 'ms (log scale)'\nset logscale y\nset style data histograms\n"
              "set style histogram clustered\nset style fill solid 0.7\nset grid ytics\n"
              "$d << EOD\n%s\nEOD\nplot $d using 2:xtic(1) title 'alone', '' using 3 title "
              "'under CPU load'\n" % data)
    return gnuplot(script, "cpu-work.png")


# ------------------------------------------------------------------- main

def scenario_notes(d, sc):
    notes = {
        "1": "Reference column: req/s relative to nginx in the same round. On two "
             "cores the load generator may saturate first: compare CPU µs/req. "
             "'all cores': the same run with event (one process) and hybrid "
             "(Threads = 2) free to use both cores, as is wrk.",
        "7": "Here every server and both wrk instances may use both cores: the "
             "question is what each MPM does with them. Event runs one "
             "process (one loop), hybrid its default two threads.",
        "3": "Figures in MB/s (10^6 bytes per second of response bytes read by wrk).",
        "4": "Programs: cgi-bin/hello-c (compiled C) and a /bin/sh script. Apache "
             "prefork uses mod_cgi, worker/event mod_cgid. The floor rows are "
             "bench/forkfloor on core 0 with no server, measured in every round: "
             "posix_spawn + waitpid of the same program, one at a time (alone) and "
             "with 8 running at once, as the servers run them for 8 connections. "
             "The ratio column divides each server's rate by the mean of two "
             "8-at-a-time floors measured right before and right after it (the "
             "server idle), because the machine's spawn rate drifts over minutes; "
             "the median is over rounds. The "
             "floors' CPU figure is CPU time per spawn (forkfloor and "
             "the programs), so a server's CPU per request minus it is what the "
             "server adds.",
        "6": "Little's-law bound: concurrency / 0.05 s, the best any server can do "
             "when each request waits 50 ms. Blocking MPMs are limited by "
             "MaxRequestWorkers (2,100 here) and by how fast they spawn. "
             "From 1,000 connections the bound (20,000 and 100,000 req/s) nears "
             "or passes what the server's one core can answer at all, so the "
             "same concurrency is also measured on /lab/hello, which does not "
             "wait: that ceiling, and the share of whichever limit is lower. The "
             "nginx rows are nginx serving a static 1 KiB file at the same "
             "concurrency, nothing waiting: the most this machine's one server "
             "core answers with a peer, for comparison with the bound.",
        "8": "'handshakes': Connection: close, so each request is a full TLS 1.3 "
             "handshake, 32 connections. Session tickets are off for every "
             "server (and none has a session cache), so nothing is resumed: "
             "wrk would otherwise resume each new connection with a ticket.",
        "9": "Accept-Encoding: gzip; level 6 where the server has a setting "
             "(h2o: its default).",
    }
    return notes.get(sc, "")


def sanitize(d):
    """A run that completed no request has no latency to report."""
    for variants in d["results"].values():
        for servers in variants.values():
            for rows in servers.values():
                for r in rows:
                    if not r.get("requests") and "floor" not in str(r.get("invalid", "")) \
                            and r.get("rps") is not None and r["rps"] == 0:
                        r["p50"] = r["p99"] = r["cpu_us"] = None


def main():
    with open(sys.argv[1]) as f:
        d = json.load(f)
    sanitize(d)
    os.makedirs(RESULTS, exist_ok=True)
    hdr = header(d)
    summ, files = {}, []
    for sc, (fname, title, key, ref) in SCENARIOS.items():
        variants = d["results"].get(sc)
        if sc not in [str(x) for x in d["settings"]["scenarios"]]:
            continue
        body = ""
        if sc == "6":
            t, summ[sc] = table_sleep(d, variants or {})
            body = t
        elif sc == "7":
            t, summ[sc] = table_hash(d, variants or {}, d["settings"].get("hash_kb", 0))
            body = t
        else:
            summ[sc] = {}
            for variant in sorted(variants or {"": {}}):
                t, summ[sc][variant] = table_generic(d, sc, variant,
                                                     (variants or {}).get(variant, {}), key, ref)
                body += ("\n### %s\n\n" % variant if variant else "") + t
        write_md(fname, "# %s\n\n%s\n%s\n\n%s" % (title, hdr, scenario_notes(d, sc), body))
        files.append((fname, title))
    if "5" in [str(x) for x in d["settings"]["scenarios"]]:
        t, summ["5"] = table_idle(d)
        write_md("5-idle-memory", "# Memory per idle keep-alive connection\n\n%s\n"
                 "Each connection sends one request and stays open; PSS summed over the "
                 "server's process tree (smaps_rollup) before and after. Process- and "
                 "thread-per-connection servers are asked for the first count only.\n\n%s"
                 % (hdr, t))
        files.append(("5-idle-memory", "Memory per idle keep-alive connection"))
    plots = plot_static(summ) + [p for p in (plot_idle(summ), plot_sleep(summ),
                                             plot_hash(summ)) if p]
    out = {"machine": d["machine"], "settings": d["settings"], "status": d["status"],
           "versions": d["versions"], "summary": summ, "plots": plots}
    with open(os.path.join(RESULTS, "summary.json"), "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
    write_summary(d, hdr, summ, files, plots)


def write_md(fname, text):
    with open(os.path.join(RESULTS, fname + ".md"), "w") as f:
        f.write(text.rstrip() + "\n")


def lesson_table(d, summ, plots):
    """The README's per-MPM table (bench/update-readme), with local links."""
    loader = importlib.machinery.SourceFileLoader("update_readme",
                                                  os.path.join(HERE, "update-readme"))
    mod = types.ModuleType(loader.name)
    mod.__file__ = loader.path
    loader.exec_module(mod)
    text = mod.section({"machine": d["machine"], "settings": d["settings"],
                        "status": d["status"], "summary": summ, "plots": []})
    return text.replace("## Five ways to wait: the lesson, measured", "## The lesson, measured: five ways to wait").replace(
        "(bench/results/summary.md)", "(summary.md)")


def write_summary(d, hdr, summ, files, plots):
    lines = ["# Benchmark summary\n", hdr, "Peers: " + "; ".join(
        "%s" % v for v in d["versions"].values()) + ".\n"]
    s1 = summ.get("1", {}).get("", {})
    q, a = s1.get("quintet-prefork"), s1.get("apache-prefork")
    if q and a:
        lines.append("**Quintet prefork vs Apache prefork, static 1 KiB keep-alive:** "
                     "%s vs %s req/s, %s vs %s µs CPU per request.\n" % (
                         fmt(q["value"]), fmt(a["value"]), fmt(q["cpu_us"], 1),
                         fmt(a["cpu_us"], 1)))
    if d["status"]:
        lines.append("Not available or failed in this run: " + "; ".join(
            "%s: %s" % kv for kv in sorted(d["status"].items())) + ".\n")
    lines.append("## Tables\n")
    lines += ["- [%s](%s.md)" % (t, f) for f, t in files]
    if s1:
        lines.append("\n## Scenario 1 at a glance\n")
        lines.append("| server | req/s | CPU µs/req |\n|---|---:|---:|")
        lines += ["| %s | %s | %s |" % (n, fmt(v["value"]), fmt(v["cpu_us"], 1))
                  for n, v in s1.items()]
    lines.append("\n## Plots\n")
    lines += ["![%s](%s)" % (p, p) for p in plots]
    lines.append("\n" + lesson_table(d, summ, plots))
    with open(os.path.join(RESULTS, "summary.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
