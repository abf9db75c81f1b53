// SVG Gantt charts of pipeline timelines, simulated (show_schedule --svg) or measured (trace.h): one
// row per rank, one colour per micro-batch (F light, B dark, W striped), sends and receives as thin
// bars, idle time shaded, each rank's bubble at the end of its row. Self-contained SVG text.
#pragma once

#include <string>

#include "parallel/simulator.h"

namespace minipipe::parallel {

struct SvgOptions {
  std::string title;         // first line, e.g. "1F1B, P=4, M=8 (simulated)"
  std::string subtitle;      // second line: where the times come from
  double time_scale = 1.0;   // axis labels show time * time_scale (1000 for seconds shown as ms)
  std::string time_unit{};   // the axis unit after scaling ("ms"); empty for the simulator's units
  double makespan = 0.0;     // the x axis runs to max(this, the timeline's step time): charts that
                             // sit side by side share a scale
};

std::string gantt_svg(const Program& program, const Simulation& sim, const SvgOptions& opts);

// Atomic write (nn/atomic_file.h): a reader sees the old file or the whole new one.
void write_text_file(const std::string& path, const std::string& text, const std::string& what);

}  // namespace minipipe::parallel
