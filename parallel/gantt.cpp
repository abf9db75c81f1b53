// The text Gantt chart of a simulated timeline (ranks × time slots), the form the docs and
// show_schedule use. One cell per slot; see simulator.h for the legend.
#include <algorithm>
#include <cmath>
#include <sstream>

#include "parallel/simulator.h"
#include "tensor/error.h"

namespace minipipe::parallel {

namespace {
std::string format_time(double t) {
  std::ostringstream os;
  os << t;
  return os.str();
}
}  // namespace

std::string gantt(const Program& program, const Simulation& sim, double slot) {
  const int P = static_cast<int>(sim.timeline.size());
  if (slot <= 0.0) {  // the shortest compute action
    slot = std::numeric_limits<double>::infinity();
    for (const auto& list : sim.timeline)
      for (const TimedAction& t : list)
        if (is_compute(t.action.op) && t.end > t.start) slot = std::min(slot, t.end - t.start);
    if (!std::isfinite(slot)) slot = 1.0;
  }
  MP_CHECK(std::isfinite(slot), "gantt: slot must be a positive number (or 0 for the default), got ", slot);
  const double eps = 1e-9 * slot;
  // Counted in double and checked before the conversion: a tiny slot would overflow an int.
  const double want = std::ceil(sim.makespan / slot - 1e-9);
  MP_CHECK(want <= 100000, "gantt: ", want, " slots is too many (makespan ", sim.makespan, ", slot ", slot,
           "); pass a larger slot");
  const int slots = static_cast<int>(want);

  // Ranks holding several chunks show the chunk in the label ("4F3"), others just "F3".
  std::vector<int> chunks_on(static_cast<size_t>(P), 0);
  for (int c = 0; c < program.num_chunks; ++c)
    for (int r : program.ranks_of(c)) ++chunks_on[static_cast<size_t>(r)];
  auto label = [&](int r, const Action& a) {
    if (is_comm(a.op)) return std::string(a.op == Op::SEND_F || a.op == Op::SEND_B ? ">" : "<");
    std::string s = op_name(a.op) + std::to_string(a.microbatch);
    return chunks_on[static_cast<size_t>(r)] > 1 ? std::to_string(a.chunk) + s : s;
  };
  size_t width = 2;
  for (int r = 0; r < P; ++r)
    for (const TimedAction& t : sim.timeline[static_cast<size_t>(r)])
      width = std::max(width, label(r, t.action).size());

  std::vector<std::vector<std::string>> cells(static_cast<size_t>(P));
  for (int r = 0; r < P; ++r) {
    const auto& list = sim.timeline[static_cast<size_t>(r)];
    size_t i = 0;
    const TimedAction* shown = nullptr;
    for (int k = 0; k < slots; ++k) {
      const double mid = (k + 0.5) * slot;
      while (i < list.size() && list[i].end <= mid + eps) ++i;
      // Zero-length actions (free messages) never cover a slot.
      size_t j = i;
      while (j < list.size() && list[j].end - list[j].start <= eps) ++j;
      std::string cell = ".";
      if (j < list.size() && list[j].start <= mid) {
        const TimedAction* t = &list[j];
        std::string l = label(r, t->action);
        if (is_comm(t->action.op))
          cell = std::string(width, l[0]);
        else
          cell = (t == shown) ? std::string(width, '-') : l;
        shown = t;
      }
      cell.resize(width, ' ');
      cells[static_cast<size_t>(r)].push_back(cell);
    }
  }

  std::ostringstream os;
  const std::string pad = "        ";
  // Ruler: the time at the start of every 5th slot.
  std::string ruler = pad;
  for (int k = 0; k < slots; k += 5) {
    std::string t = format_time(k * slot);
    const size_t at = pad.size() + static_cast<size_t>(k) * (width + 1);
    if (ruler.size() < at) ruler.resize(at, ' ');
    if (ruler.size() == at) ruler += t;
  }
  os << "time    (1 slot = " << format_time(slot) << ")\n" << ruler << '\n';
  for (int r = 0; r < P; ++r) {
    std::string line = "rank " + std::to_string(r);
    line.resize(pad.size() - 1, ' ');
    line += '|';
    for (const std::string& c : cells[static_cast<size_t>(r)]) line += c + ' ';
    while (!line.empty() && line.back() == ' ') line.pop_back();
    os << line << '\n';
  }
  return os.str();
}

}  // namespace minipipe::parallel
