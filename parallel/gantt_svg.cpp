// The SVG Gantt chart (gantt_svg.h): plain SVG 1.1 text, no script, no external references, so it
// shows the same in a browser, an image viewer and a Markdown page. Layout constants below are px.
#include "parallel/gantt_svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <sstream>

#include "nn/atomic_file.h"
#include "tensor/error.h"

namespace minipipe::parallel {

namespace {

constexpr double kWidth = 960, kLeft = 64, kRight = 110, kTop = 56, kRow = 30, kGap = 8, kAxis = 34, kLegend = 26;

std::string num(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", x);
  std::string s = buf;
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '&') out += "&amp;";
    else if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '"') out += "&quot;";
    else out += c;
  }
  return out;
}

// Micro-batch m's hue: golden-angle steps, so neighbours differ however many there are.
int hue(int m) { return static_cast<int>(std::fmod(m * 137.508 + 210.0, 360.0)); }

// A "nice" tick step (1, 2 or 5 times a power of ten) giving about `n` ticks over `span`.
double tick_step(double span, int n) {
  const double raw = span / n, p = std::pow(10.0, std::floor(std::log10(raw)));
  for (double f : {1.0, 2.0, 5.0})
    if (f * p >= raw) return f * p;
  return 10 * p;
}

}  // namespace

std::string gantt_svg(const Program& program, const Simulation& sim, const SvgOptions& o) {
  const int P = static_cast<int>(sim.timeline.size());
  MP_CHECK(P >= 1 && P == program.num_ranks, "gantt_svg: a timeline of ", P, " ranks for a program of ",
           program.num_ranks);
  const double span = std::max({o.makespan, sim.makespan, 1e-12});
  const double plot = kWidth - kLeft - kRight;
  const auto x = [&](double t) { return kLeft + plot * t / span; };
  const double height = kTop + P * (kRow + kGap) + kAxis + kLegend;
  std::vector<int> chunks_on(static_cast<size_t>(P), 0);
  for (int c = 0; c < program.num_chunks; ++c)
    for (int r : program.ranks_of(c)) ++chunks_on[static_cast<size_t>(r)];

  std::ostringstream os;
  os << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << num(kWidth) << "\" height=\"" << num(height)
     << "\" viewBox=\"0 0 " << num(kWidth) << ' ' << num(height) << "\" font-family=\"sans-serif\" font-size=\"11\">\n";
  os << "<defs><pattern id=\"idle\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" "
        "patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#f4f4f4\"/>"
        "<line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#d0d0d0\" stroke-width=\"2\"/></pattern>"
        "<pattern id=\"w\" width=\"4\" height=\"4\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(-45)\">"
        "<line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"4\" stroke=\"#ffffff\" stroke-opacity=\"0.6\" stroke-width=\"2\"/>"
        "</pattern></defs>\n";
  os << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  os << "<text x=\"" << num(kLeft) << "\" y=\"20\" font-size=\"14\" font-weight=\"bold\">" << escape(o.title)
     << "</text>\n";
  os << "<text x=\"" << num(kLeft) << "\" y=\"38\" fill=\"#555\">" << escape(o.subtitle) << "</text>\n";

  for (int r = 0; r < P; ++r) {
    const double y = kTop + r * (kRow + kGap);
    os << "<g class=\"rank\" data-rank=\"" << r << "\">\n";
    os << "<text x=\"" << num(kLeft - 8) << "\" y=\"" << num(y + kRow / 2 + 4) << "\" text-anchor=\"end\">rank " << r
       << "</text>\n";
    // Idle first: everything the actions do not cover stays shaded.
    os << "<rect class=\"idle\" x=\"" << num(kLeft) << "\" y=\"" << num(y) << "\" width=\"" << num(x(sim.makespan) - kLeft)
       << "\" height=\"" << num(kRow) << "\" fill=\"url(#idle)\"/>\n";
    for (const TimedAction& t : sim.timeline[static_cast<size_t>(r)]) {
      const Action& a = t.action;
      const double x0 = x(t.start), w = std::max(x(t.end) - x0, 0.5);
      const std::string name = to_string(a);
      const std::string tip = name + ": " + num(o.time_scale * t.start) + " to " + num(o.time_scale * t.end) +
                              (o.time_unit.empty() ? "" : " " + o.time_unit);
      if (is_comm(a.op)) {  // a thin bar under the row: the rank is inside a send or receive
        if (t.end <= t.start) continue;
        os << "<rect class=\"comm\" x=\"" << num(x0) << "\" y=\"" << num(y + kRow - 5) << "\" width=\"" << num(w)
           << "\" height=\"5\" fill=\"#444\"><title>" << tip << "</title></rect>\n";
        continue;
      }
      const int h = hue(a.microbatch);
      const char* light = a.op == Op::F ? "78%" : "46%";
      os << "<rect class=\"" << op_name(a.op) << "\" x=\"" << num(x0) << "\" y=\"" << num(y) << "\" width=\"" << num(w)
         << "\" height=\"" << num(kRow - 6) << "\" fill=\"hsl(" << h << ",65%," << light
         << ")\" stroke=\"white\" stroke-width=\"0.5\"><title>" << tip << "</title></rect>\n";
      if (a.op == Op::W)
        os << "<rect x=\"" << num(x0) << "\" y=\"" << num(y) << "\" width=\"" << num(w) << "\" height=\""
           << num(kRow - 6) << "\" fill=\"url(#w)\"/>\n";
      const std::string label =
          (chunks_on[static_cast<size_t>(r)] > 1 ? std::to_string(a.chunk) : "") + op_name(a.op) + std::to_string(a.microbatch);
      if (w >= 7.0 * static_cast<double>(label.size()))
        os << "<text x=\"" << num(x0 + w / 2) << "\" y=\"" << num(y + kRow / 2 + 1) << "\" text-anchor=\"middle\" fill=\""
           << (a.op == Op::F ? "#222" : "white") << "\">" << label << "</text>\n";
    }
    const RankStats& s = sim.ranks[static_cast<size_t>(r)];
    os << "<text x=\"" << num(kWidth - kRight + 6) << "\" y=\"" << num(y + kRow / 2 + 4) << "\" fill=\"#555\">bubble "
       << (std::ostringstream() << std::fixed << std::setprecision(1) << 100 * s.bubble_of_total).str()
       << "%</text>\n";
    os << "</g>\n";
  }

  // The time axis.
  const double axis_y = kTop + P * (kRow + kGap) + 4;
  os << "<line x1=\"" << num(kLeft) << "\" y1=\"" << num(axis_y) << "\" x2=\"" << num(kLeft + plot) << "\" y2=\""
     << num(axis_y) << "\" stroke=\"#888\"/>\n";
  const double step = tick_step(span * o.time_scale, 8) / o.time_scale;
  for (double t = 0; t <= span * (1 + 1e-9); t += step)
    os << "<line x1=\"" << num(x(t)) << "\" y1=\"" << num(axis_y) << "\" x2=\"" << num(x(t)) << "\" y2=\""
       << num(axis_y + 4) << "\" stroke=\"#888\"/><text x=\"" << num(x(t)) << "\" y=\"" << num(axis_y + 16)
       << "\" text-anchor=\"middle\" fill=\"#555\">" << num(o.time_scale * t) << "</text>\n";
  os << "<text x=\"" << num(kLeft + plot + 6) << "\" y=\"" << num(axis_y + 16) << "\" fill=\"#555\">"
     << escape(o.time_unit.empty() ? "time" : o.time_unit) << "</text>\n";

  // Legend.
  const double ly = axis_y + kAxis;
  os << "<g class=\"legend\" fill=\"#333\">"
     << "<rect x=\"" << num(kLeft) << "\" y=\"" << num(ly - 10) << "\" width=\"14\" height=\"12\" fill=\"hsl(210,65%,78%)\"/>"
     << "<text x=\"" << num(kLeft + 18) << "\" y=\"" << num(ly) << "\">F forward</text>"
     << "<rect x=\"" << num(kLeft + 90) << "\" y=\"" << num(ly - 10) << "\" width=\"14\" height=\"12\" fill=\"hsl(210,65%,46%)\"/>"
     << "<text x=\"" << num(kLeft + 108) << "\" y=\"" << num(ly) << "\">B backward</text>"
     << "<rect x=\"" << num(kLeft + 190) << "\" y=\"" << num(ly - 10) << "\" width=\"14\" height=\"12\" fill=\"hsl(210,65%,46%)\"/>"
     << "<rect x=\"" << num(kLeft + 190) << "\" y=\"" << num(ly - 10) << "\" width=\"14\" height=\"12\" fill=\"url(#w)\"/>"
     << "<text x=\"" << num(kLeft + 208) << "\" y=\"" << num(ly) << "\">W weight grad</text>"
     << "<rect x=\"" << num(kLeft + 300) << "\" y=\"" << num(ly - 3) << "\" width=\"14\" height=\"5\" fill=\"#444\"/>"
     << "<text x=\"" << num(kLeft + 318) << "\" y=\"" << num(ly) << "\">send / receive</text>"
     << "<rect x=\"" << num(kLeft + 410) << "\" y=\"" << num(ly - 10) << "\" width=\"14\" height=\"12\" fill=\"url(#idle)\"/>"
     << "<text x=\"" << num(kLeft + 428) << "\" y=\"" << num(ly) << "\">idle</text>"
     << "<text x=\"" << num(kLeft + 470) << "\" y=\"" << num(ly) << "\">one colour per micro-batch; bubble = idle / step time</text>"
     << "</g>\n";
  os << "</svg>\n";
  return os.str();
}

void write_text_file(const std::string& path, const std::string& text, const std::string& what) {
  nn::atomic_write(path, text, what);
}

}  // namespace minipipe::parallel
