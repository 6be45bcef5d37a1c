#!/usr/bin/env python3
"""Markdown report of run.sh's peer comparison (called by peers.sh).

Usage: peers_report.py TSV DURATION ROUNDS KA_CONNS NC_CONNS BULK_MIB BULK_RUNS CPU_SOURCE
       NAME|LABEL|ROLE...

TSV lines (written by peers.sh): round, config, kind (ka, nc, bulk, or start/exited for a
failure), shape (t1, t2, - for bulk), rate, p99 ms, CPU us per unit, errors, units.

Each cell is the median over the rounds (over every download for bulk); the ratio rows divide
ours by the best peer in that column (the highest rate, the lowest p99 and CPU), naming it.
"""

import statistics
import sys
from collections import defaultdict


def num(s):
    try:
        return float(s)
    except ValueError:
        return None


def fmt(v, kind):
    if v is None:
        return "n/a"
    if kind == "rate":
        return f"{v:,.0f}"
    if kind == "p99":
        return f"{v:.2f}"
    if kind == "cpu":
        return f"{v:,.1f}" if v < 100 else f"{v:,.0f}"
    return str(v)


def main():
    tsv, duration, rounds, ka_conns, nc_conns, bulk_mib, bulk_runs, cpu_source = sys.argv[1:9]
    configs = []
    for arg in sys.argv[9:]:
        name, label, role = (arg.split("|") + ["", ""])[:3]
        configs.append((name, label, role))
    ours = [c for c, _, _ in configs if c == "pen" or c.startswith("pen-")]
    peers = [c for c, _, _ in configs if c not in ours and c != "direct"]
    label = {c: lab for c, lab, _ in configs}

    vals = defaultdict(list)  # (config, kind, shape, column) -> [values]
    errors = defaultdict(int)  # (config, kind, shape) -> errors
    failures = []
    with open(tsv) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 9:
                continue
            rnd, cfg, kind, shape, rate, p99, cpu, errs, _units = parts[:9]
            if kind in ("start", "exited"):
                failures.append(f"round {rnd}: {label.get(cfg, cfg)} {'did not start' if kind == 'start' else 'exited during the round'}")
                continue
            errors[(cfg, kind, shape)] += int(num(errs) or 0)
            for col, v in (("rate", rate), ("p99", p99), ("cpu", cpu)):
                x = num(v)
                if x is not None:
                    vals[(cfg, kind, shape, col)].append(x)

    def med(cfg, kind, shape, col):
        v = vals.get((cfg, kind, shape, col))
        return statistics.median(v) if v else None

    def spread(cfg, kind, shape, col):
        v = vals.get((cfg, kind, shape, col))
        if not v or len(v) < 2:
            return None
        m = statistics.median(v)
        return (max(v) - min(v)) / m if m else None

    def cell(cfg, kind, shape, col):
        v = med(cfg, kind, shape, col)
        if cfg == "direct" and col == "cpu":
            return "-"
        s = fmt(v, col)
        e = errors.get((cfg, kind, shape), 0)
        if e and col == "rate":
            s += f" ({e} errors)"
        return s

    def best(kind, shape, col):
        cand = [(med(p, kind, shape, col), p) for p in peers]
        cand = [(v, p) for v, p in cand if v is not None]
        if not cand:
            return None, None
        return (max if col == "rate" else min)(cand)

    def ratio_cell(o, kind, shape, col):
        v = med(o, kind, shape, col)
        b, who = best(kind, shape, col)
        if v is None or not b:
            return "n/a"
        return f"**{v / b:.2f}** ({short(who)})"

    def short(cfg):
        return {
            "cpen": "C pen",
            "haproxy-t2": "HAProxy t2",
            "haproxy-t1": "HAProxy t1",
            "nginx-w1": "nginx w1",
            "nginx-w2": "nginx w2",
        }.get(cfg, cfg)

    shapes = sorted({s for (_, k, s, _) in vals if k in ("ka", "nc")})
    out = []
    out.append(
        f"Each cell is the median of {rounds} interleaved rounds (every configuration once per round, "
        f"the order rotated each round); keep-alive: wrk -c{ka_conns} -d{duration}s --latency on the "
        f"small page; new-conn: wrk -c{nc_conns} with 'Connection: close' (one client and one backend "
        f"connection per request); bulk: curl of the {bulk_mib} MiB body, {bulk_runs} per round "
        f"(median of all). CPU: the proxy's own user + system time (every thread of its processes, "
        + ("from /proc/PID/task/TID/schedstat, exact" if cpu_source == "schedstat" else "utime + stime from /proc/PID/stat, in clock ticks")
        + ") during the run, divided by the requests, connections or MiB completed. "
        "Ratio rows: ours divided by the best peer of that column (in brackets): above 1 is better "
        "for rates, below 1 for p99 and CPU."
    )
    for shape in shapes:
        out.append("")
        out.append(f"### wrk -{shape}")
        out.append("")
        out.append(
            "| proxy | configuration | keep-alive req/s | p99 ms | CPU µs/req | new-conn req/s | p99 ms | CPU µs/conn |"
        )
        out.append("|---|---|---:|---:|---:|---:|---:|---:|")
        for cfg, lab, role in configs:
            cells = [cell(cfg, k, shape, c) for k in ("ka", "nc") for c in ("rate", "p99", "cpu")]
            out.append(f"| {lab} | {role} | " + " | ".join(cells) + " |")
        for o in ours:
            cells = [ratio_cell(o, k, shape, c) for k in ("ka", "nc") for c in ("rate", "p99", "cpu")]
            out.append(f"| {label[o]} ÷ best peer | | " + " | ".join(cells) + " |")
    out.append("")
    out.append("### bulk")
    out.append("")
    out.append("| proxy | configuration | bulk MiB/s | CPU µs/MiB |")
    out.append("|---|---|---:|---:|")
    for cfg, lab, role in configs:
        out.append(f"| {lab} | {role} | {cell(cfg, 'bulk', '-', 'rate')} | {cell(cfg, 'bulk', '-', 'cpu')} |")
    for o in ours:
        out.append(
            f"| {label[o]} ÷ best peer | | {ratio_cell(o, 'bulk', '-', 'rate')} | {ratio_cell(o, 'bulk', '-', 'cpu')} |"
        )
    # Spread: how far the rounds disagreed, so that a ratio can be read against the noise.
    out.append("")
    out.append("Spread over the rounds, (max - min) / median, of the rate and CPU cells (in %):")
    out.append("")
    head = ["proxy"]
    for shape in shapes:
        head += [f"ka {shape} rate", f"ka {shape} CPU", f"nc {shape} rate", f"nc {shape} CPU"]
    head += ["bulk rate", "bulk CPU"]
    out.append("| " + " | ".join(head) + " |")
    out.append("|---|" + "---:|" * (len(head) - 1))
    for cfg, lab, _ in configs:
        cells = []
        for shape in shapes:
            for k in ("ka", "nc"):
                for c in ("rate", "cpu"):
                    s = spread(cfg, k, shape, c)
                    cells.append("-" if s is None else f"{s * 100:.0f}")
        for c in ("rate", "cpu"):
            s = spread(cfg, "bulk", "-", c)
            cells.append("-" if s is None else f"{s * 100:.0f}")
        out.append(f"| {lab} | " + " | ".join(cells) + " |")
    if failures:
        out.append("")
        out.extend(f"- {f}" for f in failures)
    print("\n".join(out))


if __name__ == "__main__":
    main()
