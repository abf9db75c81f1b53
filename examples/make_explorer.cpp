// make_explorer: writes the interactive schedule explorer, one static self-contained HTML page
// (plain JS and SVG, no network): pick a schedule, slide P, M and v, toggle checkpointing, and see
// the simulated Gantt chart, the bubble in both conventions and peak memory per rank. Every figure
// is precomputed here by the simulator exactly as show_schedule computes it (same costs, lowering,
// simulation and number formats) and embedded as JSON, so the page's numbers are show_schedule's.
// Run: build/make_explorer --out explorer.html, then open the file in a browser.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "examples/schedule_format.h"
#include "parallel/cost_model.h"
#include "parallel/gantt_svg.h"
#include "parallel/generators.h"
#include "parallel/lowering.h"
#include "parallel/simulator.h"
#include "parallel/trace.h"
#include "parallel/weight_versions.h"

namespace mp = minipipe::parallel;
using nlohmann::json;

namespace {

// The explorer's cost model: show_schedule's defaults (F=1, B=2, W=0 per stage and micro-batch, a
// chunk of an interleaved stage 1/v of that, a free link) and 1 MiB stashed per stage and
// micro-batch — i.e. `show_schedule ... --act-bytes 1048576`.
constexpr double kF = 1.0, kB = 2.0, kActBytes = 1048576.0;

std::string printf_str(const char* format, double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, x);
  return buf;
}
std::string fmt6(double x) { return minipipe::examples::fmt(x, 6); }  // show_schedule's step time
using minipipe::examples::fmt_bytes;
double round4(double x) { return std::round(x * 1e4) / 1e4; }

// One grid point, as show_schedule would print it, or the generator's error.
json entry(const std::string& schedule, int P, int M, int v, bool checkpoint) {
  mp::Program program;
  try {
    program = mp::make_schedule(schedule, P, M, v);
  } catch (const minipipe::Error& e) {
    return {{"err", e.what()}};
  }
  const int C = program.num_chunks;
  // Zero-bubble schedules split B's 2 into B = 1 (input gradient) and W = 1 (weight gradient).
  const bool zb = program.has_w();
  mp::Costs costs = zb ? mp::Costs::uniform(C, kF, kB / 2, kB / 2) : mp::Costs::uniform(C, kF / v, kB / v, 0.0);
  costs.activation_bytes.assign(static_cast<size_t>(C), kActBytes / v);
  costs = mp::with_checkpointing(costs, checkpoint ? mp::Checkpoint::Always : mp::Checkpoint::Never, C);
  const mp::Program run = mp::lower_async(program);  // what the Pipe runs, and show_schedule by default
  const mp::Simulation sim = mp::simulate(run, costs);
  const double closed = mp::closed_form_bubble(program);
  json ranks = json::array(), timeline = json::array();
  for (int r = 0; r < P; ++r) {
    const mp::RankStats& s = sim.ranks[static_cast<size_t>(r)];
    ranks.push_back({printf_str("%.4g", s.busy), printf_str("%.4g", s.idle), printf_str("%.4f", s.bubble_of_total),
                     printf_str("%.4f", s.bubble_over_ideal), s.peak_inflight, fmt_bytes(s.peak_inflight_bytes)});
    json line = json::array();  // compute actions only: chunk, op (0 F, 1 B, 2 W), micro-batch, start, end
    for (const mp::TimedAction& t : sim.timeline[static_cast<size_t>(r)])
      if (mp::is_compute(t.action.op))
        line.insert(line.end(), {t.action.chunk, static_cast<int>(t.action.op), t.action.microbatch,
                                 round4(t.start), round4(t.end)});
    timeline.push_back(line);
  }
  json e = {{"mk", fmt6(sim.makespan)}, {"span", round4(sim.makespan)}, {"r", ranks}, {"t", timeline}};
  const double vd = static_cast<double>(C) / P;
  if (closed >= 0) e["cf"] = {printf_str("%.4f", closed), printf_str("%.4f", (P - 1) / (vd * M))};
  // ZB-H1 (M >= P) and ZB-H2 (M >= 2P-1) at F = B = W = 1: (P-1) idle on every rank (generators.h).
  if (zb && !checkpoint && M >= (schedule == "zb-h1" ? P : 2 * P - 1))
    e["cf"] = {printf_str("%.4f", (P - 1) / (3.0 * M + P - 1)), printf_str("%.4f", (P - 1) / (3.0 * M))};
  // pipedream / 2bw (window M): the versions each rank holds, and the version each F reads in the
  // second step — show_schedule's last lines.
  const mp::AsyncMode am = mp::async_mode_of(schedule);
  if (am != mp::AsyncMode::None) {
    mp::AsyncOptions a;
    a.mode = am;
    a.window = M;
    json held = json::array(), reads = json::array();
    try {
      for (int r = 0; r < P; ++r) {
        const mp::VersionPlan plan = mp::plan_versions(program, r, a, am == mp::AsyncMode::PipeDream ? M : 1);
        std::vector<int64_t> f(static_cast<size_t>(M), -1);
        for (size_t i = 0; i < plan.read.size(); ++i)
          if (program.on(r)[i].op == mp::Op::F) f[static_cast<size_t>(program.on(r)[i].microbatch)] = plan.read[i];
        held.push_back(plan.peak_held);
        reads.push_back(f);
      }
    } catch (const minipipe::Error& err) {
      return {{"err", err.what()}};
    }
    e["wv"] = held;
    e["fr"] = reads;
  }
  return e;
}

const char* kPage = R"HTML(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>minipipe: schedule explorer</title>
<style>
body { font-family: sans-serif; margin: 18px; color: #222; max-width: 1000px; }
.controls { display: grid; grid-template-columns: 130px 260px 60px; gap: 6px 10px; align-items: center; }
table { border-collapse: collapse; margin-top: 8px; font-variant-numeric: tabular-nums; }
td, th { padding: 2px 10px; text-align: right; border-bottom: 1px solid #eee; }
th { font-weight: normal; color: #555; }
code { background: #f4f4f4; padding: 1px 4px; }
#err { color: #a00; }
</style></head><body>
<h2>Pipeline schedule explorer</h2>
<p>Every figure below is the simulator's (<code>parallel/simulator.h</code>), precomputed by
<code>build/make_explorer</code> exactly as <code>show_schedule</code> prints it: F=1, B=2 per stage and
micro-batch (an interleaved chunk costs 1/v of that; the zero-bubble schedules split B into B=1 and
W=1), 1 MiB of activations stashed per stage and
micro-batch, a free link, sends that do not block (a rank waits only for the data it needs next, as
the Pipe runs). Checkpointing: B runs F again and a chunk
stashes only its input. The asynchronous pipedream and 2bw (window M) run 1F1B's order with an
optimizer step inside the pipeline; below the table, the weight version each forward reads and
the versions each rank holds.</p>
<div class="controls">
<label for="schedule">schedule</label><select id="schedule"><option>gpipe</option><option selected>1f1b</option><option>interleaved</option><option>zb-h1</option><option>zb-h2</option><option>pipedream</option><option>2bw</option></select><span></span>
<label for="P">stages P</label><input id="P" type="range" min="1" max="8" value="4"><span id="P-val"></span>
<label for="M">micro-batches M</label><input id="M" type="range" min="1" max="16" value="8"><span id="M-val"></span>
<label for="v">chunks per rank v</label><input id="v" type="range" min="2" max="4" value="2"><span id="v-val"></span>
<label for="checkpoint">checkpointing</label><input id="checkpoint" type="checkbox"><span></span>
</div>
<p>Same as: <code id="command"></code></p>
<p id="err"></p>
<div id="chart"></div>
<p>step time (makespan): <b id="makespan"></b></p>
<table id="table"><thead>
<tr><th></th><th></th><th></th><th colspan="2">bubble of total time</th><th colspan="2">bubble over ideal time</th><th colspan="2">peak in-flight</th></tr>
<tr><th>rank</th><th>busy</th><th>idle</th><th>simulated</th><th>closed form</th><th>simulated</th><th>closed form</th><th>micro-b.</th><th>bytes</th></tr>
</thead><tbody id="rows"></tbody></table>
<p>bubble = idle / makespan (of total time) and idle / busy (over ideal time); closed forms for
equal stages and free messages: (P-1)/(v*M+P-1) of total, (P-1)/(v*M) over ideal.</p>
<pre id="versions"></pre>
<pre id="errors"></pre><div id="status"></div>
<script>
"use strict";
const errors = document.getElementById("errors");
window.addEventListener("error", e => { errors.textContent += "error: " + e.message + "\n"; });
const consoleError = console.error;
console.error = (...a) => { errors.textContent += "console.error: " + a.join(" ") + "\n"; consoleError(...a); };
const DATA = /*DATA*/;
const $ = id => document.getElementById(id);
const OPS = ["F", "B", "W"];
function hue(m) { return Math.floor((m * 137.508 + 210.0) % 360); }
function key() {
  const s = $("schedule").value, v = s === "interleaved" ? $("v").value : 1;
  return [s, $("P").value, $("M").value, v, $("checkpoint").checked ? "always" : "never"].join("/");
}
function svgEl(tag, attrs, text) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}
function drawChart(d, P, multi) {
  const W = 960, L = 64, R = 96, T = 10, ROW = 30, GAP = 8, plot = W - L - R;
  const H = T + P * (ROW + GAP) + 30, span = d.span > 0 ? d.span : 1, x = t => L + plot * t / span;
  const svg = svgEl("svg", {width: W, height: H, "font-size": 11, id: "gantt"});
  for (let r = 0; r < P; r++) {
    const y = T + r * (ROW + GAP), t = d.t[r];
    svg.appendChild(svgEl("text", {x: L - 8, y: y + ROW / 2 + 4, "text-anchor": "end"}, "rank " + r));
    svg.appendChild(svgEl("rect", {x: L, y: y, width: plot, height: ROW, fill: "#eee"}));
    for (let i = 0; i < t.length; i += 5) {
      const c = t[i], op = t[i + 1], m = t[i + 2], x0 = x(t[i + 3]), w = Math.max(x(t[i + 4]) - x0, 0.5);
      const label = (multi[r] ? c : "") + OPS[op] + m;
      const rect = svgEl("rect", {x: x0, y: y, width: w, height: ROW - 6, stroke: "white", "stroke-width": 0.5,
        fill: "hsl(" + hue(m) + ",65%," + (op === 0 ? "78%" : "46%") + ")"});
      rect.appendChild(svgEl("title", {}, label + ": " + t[i + 3] + " to " + t[i + 4]));
      svg.appendChild(rect);
      if (w >= 7 * label.length)
        svg.appendChild(svgEl("text", {x: x0 + w / 2, y: y + ROW / 2 + 1, "text-anchor": "middle",
          fill: op === 0 ? "#222" : "white"}, label));
    }
    svg.appendChild(svgEl("text", {x: W - R + 6, y: y + ROW / 2 + 4, fill: "#555"},
      "bubble " + (100 * Number(d.r[r][2])).toFixed(1) + "%"));
  }
  const ay = T + P * (ROW + GAP) + 4;
  svg.appendChild(svgEl("line", {x1: L, y1: ay, x2: L + plot, y2: ay, stroke: "#888"}));
  const step = Math.max(1, Math.ceil(span / 10));
  for (let t = 0; t <= span + 1e-9; t += step)
    svg.appendChild(svgEl("text", {x: x(t), y: ay + 16, "text-anchor": "middle", fill: "#555"}, String(t)));
  return svg;
}
function update() {
  const s = $("schedule").value, P = Number($("P").value), M = Number($("M").value), v = Number($("v").value);
  const ck = $("checkpoint").checked;
  $("v").disabled = s !== "interleaved";
  $("P-val").textContent = P; $("M-val").textContent = M; $("v-val").textContent = s === "interleaved" ? v : "-";
  $("command").textContent = "build/show_schedule --schedule " + s + " --stages " + P + " --microbatches " + M +
    (s === "interleaved" ? " --virtual " + v : "") + (s.startsWith("zb") ? " --costs 1,1,1" : "") +
    " --act-bytes 1048576" + (ck ? " --checkpoint always" : "");
  const d = DATA[key()], rows = $("rows"), chart = $("chart");
  rows.textContent = ""; chart.textContent = ""; $("makespan").textContent = ""; $("versions").textContent = "";
  $("err").textContent = d && d.err ? d.err : (d ? "" : "not in the precomputed grid");
  if (!d || d.err) return;
  const multi = [];
  for (let r = 0; r < P; r++) multi.push(s === "interleaved");
  chart.appendChild(drawChart(d, P, multi));
  $("makespan").textContent = d.mk;
  for (let r = 0; r < P; r++) {
    const q = d.r[r], tr = document.createElement("tr");
    const cells = [r, q[0], q[1], q[2], d.cf ? d.cf[0] : "-", q[3], d.cf ? d.cf[1] : "-", q[4], q[5]];
    const ids = [null, null, null, "bubble-total-" + r, null, "bubble-ideal-" + r, null, "inflight-" + r, "bytes-" + r];
    cells.forEach((c, i) => { const td = document.createElement("td"); td.textContent = c;
      if (ids[i]) td.id = ids[i]; tr.appendChild(td); });
    rows.appendChild(tr);
  }
  if (d.wv) {  // the asynchronous schedules: 1F1B's order, an optimizer step inside the pipeline
    let text = (s === "pipedream" ? "pipedream: each stage steps its optimizer after every B; B reads the weights its F read."
                                  : "2bw (window M): one update per window, window t reading version t-1.") +
      " The step drains once at its end.\nweight version each F reads in the second step, and the versions each rank holds:\n";
    for (let r = 0; r < P; r++)
      text += "  rank " + r + ": " + d.fr[r].join(" ") + "   (" + d.wv[r] + (d.wv[r] === 1 ? " version" : " versions") + ")\n";
    $("versions").textContent = text;
  }
}
// URL parameters set the controls (?schedule=1f1b&P=4&M=8&v=2&checkpoint=1); move=ID:VALUE then
// moves one control as a user would (an input event), after the first render.
const params = new URLSearchParams(location.search);
for (const id of ["schedule", "P", "M", "v"]) if (params.has(id)) $(id).value = params.get(id);
if (params.has("checkpoint")) $("checkpoint").checked = params.get("checkpoint") === "1";
for (const id of ["schedule", "P", "M", "v", "checkpoint"]) $(id).addEventListener("input", update);
update();
const status = $("status");
status.dataset.before = ($("bubble-total-0") || {}).textContent || "";
if (params.has("move")) {
  const [id, value] = params.get("move").split(":"), el = $(id);
  if (el.type === "checkbox") el.checked = value === "1"; else el.value = value;
  el.dispatchEvent(new Event("input", {bubbles: true}));
}
status.dataset.after = ($("bubble-total-0") || {}).textContent || "";
status.textContent = "rendered";
</script></body></html>
)HTML";

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Write the interactive schedule explorer (one self-contained HTML page)"};
  std::string out = "explorer.html";
  int max_p = 8, max_m = 16;
  app.add_option("--out", out, "the HTML file to write")->capture_default_str();
  app.add_option("--max-stages", max_p, "largest P in the grid")->capture_default_str();
  app.add_option("--max-microbatches", max_m, "largest M in the grid")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    MP_CHECK(max_p >= 1 && max_p <= 8 && max_m >= 1 && max_m <= 16, "--max-stages must be 1..8 and "
             "--max-microbatches 1..16 (the page's sliders), got ", max_p, " and ", max_m);
    json data = json::object();
    for (const std::string s : {"gpipe", "1f1b", "interleaved", "zb-h1", "zb-h2", "pipedream", "2bw"})
      for (int P = 1; P <= max_p; ++P)
        for (int M = 1; M <= max_m; ++M)
          for (int v = s == "interleaved" ? 2 : 1; v <= (s == "interleaved" ? 4 : 1); ++v)
            for (bool ck : {false, true})
              data[s + "/" + std::to_string(P) + "/" + std::to_string(M) + "/" + std::to_string(v) + "/" +
                   (ck ? "always" : "never")] = entry(s, P, M, v, ck);
    std::string page = kPage;
    const std::string marker = "/*DATA*/";
    page.replace(page.find(marker), marker.size(), data.dump());
    mp::write_text_file(out, page, "make_explorer");
    std::printf("wrote %s (%zu configurations, %.1f KiB)\n", out.c_str(), data.size(), page.size() / 1024.0);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "make_explorer: error: " << e.what() << '\n';
    return 1;
  }
}
