#!/usr/bin/env python3
# schedules_notebook.py: a notebook-style walk through minipipe's schedule tools from Python — build
# GPipe and 1F1B, simulate them, compare their bubble and memory, and draw both timelines, one above
# the other on a shared time axis, as one SVG written atomically to the path given.
# Run: PYTHONPATH=build/python python3 examples/schedules_notebook.py docs/figures/tutorial_gpipe_vs_1f1b.svg
import re
import sys

import minipipe as mp

par = mp.parallel


def stack_svgs(charts, gap=8):
    """One SVG holding the given SVG documents one above the other. Each chart's ids (its patterns)
    get a prefix, so the charts' definitions do not collide in the one document."""
    parts, y, width = [], 0, 0
    for i, svg in enumerate(charts):
        w, h = (int(v) for v in re.search(r'width="(\d+)" height="(\d+)"', svg).groups())
        svg = svg.replace('id="', f'id="c{i}-').replace("url(#", f"url(#c{i}-")
        parts.append(svg.replace("<svg ", f'<svg x="0" y="{y}" ', 1))
        y, width = y + h + gap, max(width, w)
    height = y - gap
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}">\n' + "\n".join(parts) + "</svg>\n")


def main(argv):
    if len(argv) != 2:
        print(f"usage: {argv[0]} OUTPUT.svg   (the figure: GPipe and 1F1B timelines, P=4, M=8)", file=sys.stderr)
        return 2
    out = argv[1]
    P, M = 4, 8
    costs = par.Costs.uniform(P, 1.0, 2.0)  # per micro-batch: F = 1, B = 2 (a backward ~ two forwards)

    # 1. Bubble and memory against M: the simulator next to the closed form.
    print(f"P = {P} ranks, F = 1, B = 2 per micro-batch; bubble = idle / step time on every rank")
    print(f"{'M':>4} {'(P-1)/(M+P-1)':>14} {'GPipe':>8} {'1F1B':>8}   micro-batches held by rank 0: GPipe  1F1B")
    for m in (1, 2, 4, 8, 16, 32):
        g = par.simulate(par.gpipe(P, m), costs)
        f = par.simulate(par.one_f_one_b(P, m), costs)
        print(f"{m:>4} {(P - 1) / (m + P - 1):>14.4f} {g.bubble(0):>8.4f} {f.bubble(0):>8.4f}"
              f"   {g.ranks[0]['peak_inflight']:>35} {f.ranks[0]['peak_inflight']:>5}")

    # 2. The timeline is data: per rank, a list of {action, op, microbatch, start, end}.
    sim = par.simulate(par.one_f_one_b(P, M), costs)
    first = ", ".join(f"{a['action']}@{a['start']:g}" for a in sim.timeline[P - 1][:4])
    print(f"1F1B, M={M}: the last rank starts with {first}; step time {sim.makespan:g}")

    # 3. The figure: both schedules on one time axis.
    programs = {"GPipe": par.gpipe(P, M), "1F1B": par.one_f_one_b(P, M)}
    sims = {name: par.simulate(p, costs) for name, p in programs.items()}
    step = max(s.makespan for s in sims.values())
    charts = [par.gantt_svg(
        programs[name], s, title=f"{name}, P={P}, M={M} (simulated, F=1, B=2)",
        subtitle=f"bubble {100 * s.bubble(0):.1f}% of the step on every rank; "
                 f"rank 0 holds up to {s.ranks[0]['peak_inflight']} micro-batches' activations",
        makespan=step) for name, s in sims.items()]
    par.write_text_file(out, stack_svgs(charts), "figure")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
