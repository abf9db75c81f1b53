// Traces: clock alignment, gathering every rank's records on rank 0, the measured bubble, the
// prediction from the run's own costs, and the Chrome trace-event export. Formats in trace.h.
#include "parallel/trace.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "parallel/gantt_svg.h"

namespace minipipe::parallel {

namespace {

using Clock = std::chrono::steady_clock;

int64_t ns(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// Above the executor's tags (< kMaxTag / 2, checked by Pipe) and below Pipe's checkpoint tags.
constexpr int kClockTag = Communicator::kMaxTag / 2 - 1;

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

}  // namespace

Simulation measured(const Trace& t) {
  Simulation sim;
  for (const auto& list : t.ranks)
    for (const ActionRecord& r : list) sim.makespan = std::max(sim.makespan, r.end);
  for (const auto& list : t.ranks) {
    RankStats s;
    std::vector<TimedAction> line;
    int inflight = 0;
    for (const ActionRecord& r : list) {
      line.push_back({r.action, r.start, r.end});
      (is_compute(r.action.op) ? s.busy : s.comm) += r.end - r.start;
      if (r.action.op == Op::F && !t.program.forward_only) ++inflight;
      if (r.action.op == Op::B) --inflight;
      s.peak_inflight = std::max(s.peak_inflight, inflight);
      s.peak_inflight_bytes = std::max(s.peak_inflight_bytes, static_cast<double>(r.stash_bytes));
    }
    s.idle = sim.makespan - s.busy;
    s.bubble_of_total = sim.makespan > 0 ? s.idle / sim.makespan : 0.0;
    s.bubble_over_ideal = s.busy > 0 ? s.idle / s.busy : 0.0;
    sim.timeline.push_back(std::move(line));
    sim.ranks.push_back(s);
  }
  return sim;
}

Costs measured_costs(const Trace& t) {
  const int C = t.program.num_chunks;
  std::vector<double> f(static_cast<size_t>(C)), b(f), w(f), nf(f), nb(f), nw(f), stash(f), nstash(f), msg(f);
  // Message halves by (sending chunk, direction, micro-batch), to pair them: (start, end), the
  // send first.
  struct Half {
    double start = -1, end = -1;
  };
  std::map<std::tuple<int, int, int>, std::pair<Half, Half>> halves;
  for (const auto& list : t.ranks) {
    int64_t before = 0;
    for (const ActionRecord& r : list) {
      const size_t c = static_cast<size_t>(r.action.chunk);
      const double d = r.end - r.start;
      switch (r.action.op) {
        case Op::F:
          f[c] += d, ++nf[c];
          stash[c] += static_cast<double>(r.stash_bytes - before), ++nstash[c];
          break;
        case Op::B: b[c] += d, ++nb[c]; break;
        case Op::W: w[c] += d, ++nw[c]; break;
        case Op::SEND_F:
          msg[c] = static_cast<double>(r.bytes);
          halves[{r.action.chunk, 0, r.action.microbatch}].first = {r.start, r.end};
          break;
        case Op::RECV_F: halves[{r.action.chunk - 1, 0, r.action.microbatch}].second = {r.start, r.end}; break;
        case Op::SEND_B: halves[{r.action.chunk, 1, r.action.microbatch}].first = {r.start, r.end}; break;
        case Op::RECV_B: halves[{r.action.chunk + 1, 1, r.action.microbatch}].second = {r.start, r.end}; break;
      }
      before = r.stash_bytes;
    }
  }
  Costs costs = Costs::uniform(C, 0.0, 0.0);
  costs.activation_bytes.assign(static_cast<size_t>(C), 0.0);
  costs.message_bytes = msg;
  for (size_t c = 0; c < static_cast<size_t>(C); ++c) {
    if (nf[c] > 0) costs.forward[c] = f[c] / nf[c];
    if (nb[c] > 0) costs.backward[c] = b[c] / nb[c];
    if (nw[c] > 0) costs.weight[c] = w[c] / nw[c];
    if (nstash[c] > 0) costs.activation_bytes[c] = std::max(0.0, stash[c] / nstash[c]);
  }
  // The link: message sizes are known, so the transfer time is a latency (bandwidth left infinite),
  // the median over messages. Blocking sends: the shorter half (the one that did not wait for the
  // other). Sends that do not block (async_sends: the send only posts): from the send to the end of
  // its receive, over the receives posted before their send (one that came later found part or all
  // of the message there: only when none was early, the median of what those waited).
  std::vector<double> transfer, late;
  for (const auto& [key, h] : halves) {
    const auto& [send, recv] = h;
    if (send.start < 0 || recv.start < 0) continue;
    if (!t.program.async_sends) transfer.push_back(std::min(send.end - send.start, recv.end - recv.start));
    else if (recv.start <= send.start) transfer.push_back(std::max(0.0, recv.end - send.start));
    else late.push_back(std::max(0.0, recv.end - recv.start));
  }
  costs.latency = median(transfer.empty() ? late : transfer);
  return costs;
}

Simulation predicted(const Trace& t) { return simulate(t.program, measured_costs(t)); }

double closed_form_bubble(const Program& p) {
  const int P = p.num_ranks, C = p.num_chunks, M = p.num_microbatches;
  bool round_robin = C % P == 0;
  for (int c = 0; c < C; ++c) round_robin = round_robin && p.rank_of(c) == c % P;
  const int v = C / std::max(P, 1);
  // Zero-bubble programs (W actions) have closed forms in T_F, T_B, T_W (generators.h), not this one.
  if (!round_robin || p.replicated() || p.has_w() || p.forward_only || !(v == 1 || M % P == 0)) return -1.0;
  return static_cast<double>(P - 1) / (v * M + P - 1);
}

std::string bubble_table(const Trace& t) {
  const Simulation m = measured(t), p = predicted(t);
  const double closed = closed_form_bubble(t.program);
  std::ostringstream os;
  os << std::fixed;
  os << "trace: " << t.label << "\n";
  os << std::setprecision(3) << "step time: measured " << 1e3 * m.makespan << " ms, predicted " << 1e3 * p.makespan
     << " ms (simulator fed with this step's measured F/B times and message latency; "
     << std::setprecision(1) << 100.0 * (p.makespan - m.makespan) / std::max(m.makespan, 1e-12) << "% off)\n";
  os << "bubble of total time (idle / step time) per rank:\n";
  os << "rank   busy ms   idle ms   measured  predicted  closed form\n";
  for (size_t r = 0; r < m.ranks.size(); ++r) {
    const RankStats& s = m.ranks[r];
    char line[160];
    std::snprintf(line, sizeof line, "%-4zu %9.3f %9.3f %10.4f %10.4f %12s\n", r, 1e3 * s.busy, 1e3 * s.idle,
                  s.bubble_of_total, p.ranks[r].bubble_of_total,
                  closed >= 0 ? (std::ostringstream() << std::fixed << std::setprecision(4) << closed).str().c_str()
                              : "-");
    os << line;
  }
  return os.str();
}

std::string chrome_trace_json(const Trace& t) {
  using nlohmann::json;
  json events = json::array();
  const auto us = [](double s) { return s * 1e6; };
  for (size_t r = 0; r < t.ranks.size(); ++r) {
    const int pid = static_cast<int>(r);
    events.push_back({{"ph", "M"}, {"name", "process_name"}, {"pid", pid}, {"args", {{"name", "rank " + std::to_string(r)}}}});
    events.push_back({{"ph", "M"}, {"name", "process_sort_index"}, {"pid", pid}, {"args", {{"sort_index", pid}}}});
    events.push_back({{"ph", "M"}, {"name", "thread_name"}, {"pid", pid}, {"tid", 0}, {"args", {{"name", "actions"}}}});
    for (const ActionRecord& rec : t.ranks[r]) {
      const Action& a = rec.action;
      json args = {{"chunk", a.chunk}, {"microbatch", a.microbatch}, {"stash_bytes", rec.stash_bytes},
                   {"live_bytes", rec.live_bytes}};
      if (is_comm(a.op)) args["bytes"] = rec.bytes;
      events.push_back({{"ph", "X"}, {"name", to_string(a)}, {"cat", is_compute(a.op) ? "compute" : "comm"},
                        {"pid", pid}, {"tid", 0}, {"ts", us(rec.start)}, {"dur", us(rec.end - rec.start)},
                        {"args", args}});
      // Flow arrows: one id per message, from the send's slice to the receive's.
      if (is_comm(a.op)) {
        const bool send = a.op == Op::SEND_F || a.op == Op::SEND_B;
        const Action sender = send ? a : matching_comm(a);
        const int64_t id = (static_cast<int64_t>(sender.chunk) * t.program.num_microbatches + sender.microbatch) * 2 +
                           (sender.op == Op::SEND_B ? 1 : 0);
        json flow = {{"ph", send ? "s" : "f"}, {"name", "message"}, {"cat", "message"}, {"id", id},
                     {"pid", pid}, {"tid", 0}, {"ts", us(send ? rec.start : rec.end)}};
        if (!send) flow["bp"] = "e";
        events.push_back(flow);
      }
      events.push_back({{"ph", "C"}, {"name", "stashed activation bytes"}, {"pid", pid}, {"ts", us(rec.end)},
                        {"args", {{"bytes", rec.stash_bytes}}}});
    }
  }
  json doc = {{"traceEvents", events}, {"displayTimeUnit", "ms"}, {"otherData", {{"label", t.label}}}};
  return doc.dump(1);
}

std::vector<double> measure_clock_offsets(Communicator& comm, int rounds, std::vector<double>* round_trips) {
  const int P = comm.size(), me = comm.rank();
  Tensor found = zeros({2, P}, DType::Float64);  // row 0: offsets, row 1: shortest round trips
  Tensor buf = zeros({1}, DType::Int64);
  for (int r = 1; r < P; ++r) {
    if (me == 0) {
      double best_rtt = INFINITY, best = 0;
      for (int i = 0; i < rounds; ++i) {
        const int64_t a = ns(Clock::now());
        comm.send(buf, r, kClockTag, "clock ping");
        const int64_t theirs = comm.recv({{1}, DType::Int64}, r, kClockTag, "clock pong").data_ptr<int64_t>()[0];
        const int64_t b = ns(Clock::now());
        // Their reading was taken at about the midpoint of our round trip.
        if (b - a < best_rtt) best_rtt = static_cast<double>(b - a), best = 1e-9 * (0.5 * (a + b) - theirs);
      }
      found.data_ptr<double>()[r] = best;
      found.data_ptr<double>()[P + r] = 1e-9 * best_rtt;
    } else if (me == r) {
      for (int i = 0; i < rounds; ++i) {
        comm.recv({{1}, DType::Int64}, 0, kClockTag, "clock ping");
        buf.data_ptr<int64_t>()[0] = ns(Clock::now());
        comm.send(buf, 0, kClockTag, "clock pong");
      }
    }
  }
  comm.all_reduce(found);  // only rank 0 filled them in
  const std::vector<double> all = found.to_vector<double>();
  if (round_trips) round_trips->assign(all.begin() + P, all.end());
  return {all.begin(), all.begin() + P};
}

Tracer::Tracer(Communicator& comm) : comm_(comm) {
  // `local` ranks are threads of one process: one steady clock, nothing to align.
  if (std::string(comm.backend()) == "local" || comm.size() == 1)
    offsets_.assign(static_cast<size_t>(comm.size()), 0.0);
  else
    offsets_ = measure_clock_offsets(comm);
}

Trace Tracer::gather(const Executor& exec, const std::string& label) {
  // Each rank's records as text: its aligned origin, then one line per action.
  std::ostringstream os;
  os << std::setprecision(17);
  os << 1e-9 * static_cast<double>(ns(exec.step_origin())) + offsets_[static_cast<size_t>(comm_.rank())] << "\n";
  for (const ActionRecord& r : exec.records())
    os << to_string(r.action) << ' ' << r.start << ' ' << r.end << ' ' << r.bytes << ' ' << r.stash_bytes << ' '
       << r.live_bytes << "\n";
  const std::vector<std::string> all = all_gather_strings(comm_, os.str());
  Trace t;
  if (comm_.rank() != 0) return t;
  t.program = exec.program();
  t.clock_offset = offsets_;
  t.label = label;
  std::vector<double> origin(all.size());
  for (size_t r = 0; r < all.size(); ++r) {
    std::istringstream in(all[r]);
    in >> origin[r];
    std::vector<ActionRecord> list;
    std::string action;
    ActionRecord rec;
    while (in >> action >> rec.start >> rec.end >> rec.bytes >> rec.stash_bytes >> rec.live_bytes) {
      rec.action = parse_action(action);
      list.push_back(rec);
    }
    t.ranks.push_back(std::move(list));
  }
  const double first = *std::min_element(origin.begin(), origin.end());
  for (size_t r = 0; r < t.ranks.size(); ++r)
    for (ActionRecord& rec : t.ranks[r]) rec.start += origin[r] - first, rec.end += origin[r] - first;
  return t;
}

void write_trace_files(const Trace& t, const std::string& dir) {
  std::filesystem::create_directories(dir);
  const Simulation m = measured(t), p = predicted(t);
  double mean_m = 0, mean_p = 0;
  for (size_t r = 0; r < m.ranks.size(); ++r) mean_m += m.ranks[r].bubble_of_total, mean_p += p.ranks[r].bubble_of_total;
  mean_m /= std::max<size_t>(m.ranks.size(), 1);
  mean_p /= std::max<size_t>(p.ranks.size(), 1);
  auto pct = [](double x) { return (std::ostringstream() << std::fixed << std::setprecision(1) << 100 * x).str(); };
  SvgOptions o;
  o.time_scale = 1e3;
  o.time_unit = "ms";
  o.makespan = std::max(m.makespan, p.makespan);
  o.title = t.label + ": measured, bubble " + pct(mean_m) + "% of the step (mean over ranks)";
  o.subtitle = "steady clock per action, ranks on one time base";
  write_text_file(dir + "/trace.json", chrome_trace_json(t), "trace");
  write_text_file(dir + "/measured.svg", gantt_svg(t.program, m, o), "trace");
  o.title = t.label + ": predicted, bubble " + pct(mean_p) + "% of the step (mean over ranks)";
  o.subtitle = "simulator fed with this step's measured per-chunk F/B times and message latency";
  write_text_file(dir + "/predicted.svg", gantt_svg(t.program, p, o), "trace");
  write_text_file(dir + "/bubble.txt", bubble_table(t), "trace");
}

}  // namespace minipipe::parallel
