// The timed simulator: an as-early-as-possible run of a validated Program. Each action starts at
//   start = max(rank free, inputs ready)          (compute)
//   start = max(sender free, receiver free)       (a send/recv pair, lowered programs)
//   send: start = end = sender free; receive: from max(receiver free, sent) to
//   max(receiver free, sent + message time)        (Program::async_sends)
// and the statistics follow from the timeline: idle = makespan - busy, bubble of total time =
// idle / makespan, bubble over ideal time = idle / busy.
#include "parallel/simulator.h"

#include <algorithm>
#include <cmath>

#include "parallel/validator.h"
#include "tensor/error.h"

namespace minipipe::parallel {

Costs Costs::uniform(int chunks, double f, double b, double w) {
  Costs c;
  c.forward.assign(static_cast<size_t>(chunks), f);
  c.backward.assign(static_cast<size_t>(chunks), b);
  c.weight.assign(static_cast<size_t>(chunks), w);
  return c;
}

double Costs::message_time(int chunk) const {
  const auto& bytes = message_bytes.empty() ? activation_bytes : message_bytes;
  const double n = bytes.empty() ? 0.0 : bytes[static_cast<size_t>(chunk)];
  return latency + (n > 0.0 ? n / bandwidth : 0.0);
}

void check_costs(const Costs& c, int chunks) {
  auto per_chunk = [&](const std::vector<double>& v, const char* name, bool may_be_empty) {
    MP_CHECK((may_be_empty && v.empty()) || static_cast<int>(v.size()) == chunks, "costs: ", name,
             " has ", v.size(), " entries, the program has ", chunks, " chunks");
    for (double x : v) MP_CHECK(x >= 0.0 && std::isfinite(x), "costs: ", name, " has ", x);
  };
  per_chunk(c.forward, "forward", false);
  per_chunk(c.backward, "backward", false);
  per_chunk(c.weight, "weight", true);
  per_chunk(c.activation_bytes, "activation_bytes", true);
  per_chunk(c.message_bytes, "message_bytes", true);
  MP_CHECK(c.latency >= 0.0 && std::isfinite(c.latency), "costs: latency must be >= 0, got ", c.latency);
  MP_CHECK(c.bandwidth > 0.0, "costs: bandwidth must be > 0 (infinity for a free link), got ", c.bandwidth);
}

namespace {

class Sim {
 public:
  Sim(const Program& p, const Costs& c)
      : p_(p),
        c_(c),
        C_(p.num_chunks),
        M_(p.num_microbatches),
        lowered_(p.has_comm()),
        has_w_(p.has_w()),
        end_(static_cast<size_t>(kNumOps * C_ * M_), -1.0) {}

  double& end(Op op, int c, int m) {
    return end_[static_cast<size_t>((static_cast<int>(op) * C_ + c) * M_ + m)];
  }
  double weight(int c) const { return c_.weight.empty() ? 0.0 : c_.weight[static_cast<size_t>(c)]; }
  double cost(const Action& a) const {
    const size_t c = static_cast<size_t>(a.chunk);
    if (a.op == Op::F) return c_.forward[c];
    if (a.op == Op::B) return c_.backward[c] + (has_w_ ? 0.0 : weight(a.chunk));
    return weight(a.chunk);  // W
  }

  // When the data a compute action needs is available; < 0 if not produced yet. In a
  // compute-only program a message arrives message_time after its producer ends.
  double inputs_ready(const Action& a) {
    const int c = a.chunk, m = a.microbatch;
    double t = 0.0;
    auto need = [&](double produced, double transfer) {
      if (produced < 0.0 || t < 0.0)
        t = -1.0;
      else
        t = std::max(t, produced + transfer);
    };
    if (a.op == Op::F && c > 0) {
      if (lowered_ && p_.crosses(c - 1))
        need(end(Op::RECV_F, c, m), 0.0);
      else
        need(end(Op::F, c - 1, m), p_.crosses(c - 1) ? c_.message_time(c - 1) : 0.0);
    }
    if (a.op == Op::B) {
      need(end(Op::F, c, m), 0.0);
      if (c + 1 < C_ && lowered_ && p_.crosses(c))
        need(end(Op::RECV_B, c, m), 0.0);
      else if (c + 1 < C_)
        need(end(Op::B, c + 1, m), p_.crosses(c) ? c_.message_time(c) : 0.0);
    }
    if (a.op == Op::W) need(end(Op::B, c, m), 0.0);
    return t;
  }

  Simulation run() {
    const int P = p_.num_ranks;
    Simulation sim;
    sim.timeline.resize(static_cast<size_t>(P));
    std::vector<size_t> pc(static_cast<size_t>(P), 0);
    std::vector<double> free(static_cast<size_t>(P), 0.0);
    auto head = [&](int r) -> const Action* {
      const auto& list = p_.on(r);
      return pc[static_cast<size_t>(r)] < list.size() ? &list[pc[static_cast<size_t>(r)]] : nullptr;
    };
    auto record = [&](int r, const Action& a, double start, double stop) {
      sim.timeline[static_cast<size_t>(r)].push_back({a, start, stop});
      end(a.op, a.chunk, a.microbatch) = stop;
      free[static_cast<size_t>(r)] = stop;
      ++pc[static_cast<size_t>(r)];
    };
    for (bool progress = true; progress;) {
      progress = false;
      for (int r = 0; r < P; ++r) {
        while (const Action* a = head(r)) {
          if (is_compute(a->op)) {
            const double ready = inputs_ready(*a);
            if (ready < 0.0) break;
            const double start = std::max(free[static_cast<size_t>(r)], ready);
            record(r, *a, start, start + cost(*a));
          } else if (p_.async_sends) {  // a send leaves at once; its receive waits for the data
            const double now = free[static_cast<size_t>(r)];
            if (a->op == Op::SEND_F || a->op == Op::SEND_B) {
              record(r, *a, now, now);
            } else {
              const Action send = matching_comm(*a);
              const double sent = end(send.op, send.chunk, send.microbatch);
              if (sent < 0.0) break;
              const int left = a->op == Op::RECV_B ? a->chunk : send.chunk;
              record(r, *a, std::max(now, sent), std::max(now, sent + c_.message_time(left)));
            }
          } else {  // a rendezvous: both halves must be at the head of their ranks
            const Action peer = matching_comm(*a);
            const int q = p_.rank_of(peer.chunk, peer.microbatch);
            const Action* h = head(q);
            if (!h || !(*h == peer)) break;
            const int left = (a->op == Op::SEND_F || a->op == Op::RECV_B) ? a->chunk : peer.chunk;
            const double start =
                std::max(free[static_cast<size_t>(r)], free[static_cast<size_t>(q)]);
            const double stop = start + c_.message_time(left);
            const Action mine = *a;
            record(r, mine, start, stop);
            record(q, peer, start, stop);
          }
          progress = true;
        }
      }
    }
    for (int r = 0; r < P; ++r)
      MP_INTERNAL_ASSERT(!head(r), "a validated program got stuck in the simulator on rank ", r);
    stats(sim);
    return sim;
  }

  void stats(Simulation& sim) const {
    for (const auto& list : sim.timeline)
      for (const TimedAction& t : list) sim.makespan = std::max(sim.makespan, t.end);
    for (const auto& list : sim.timeline) {
      RankStats s;
      int inflight = 0;
      double bytes = 0.0;
      for (const TimedAction& t : list) {
        const double d = t.end - t.start;
        (is_compute(t.action.op) ? s.busy : s.comm) += d;
        const double stash = c_.activation_bytes.empty()
                                 ? 0.0
                                 : c_.activation_bytes[static_cast<size_t>(t.action.chunk)];
        if (t.action.op == Op::F && !p_.forward_only) ++inflight, bytes += stash;
        if (t.action.op == Op::B) --inflight, bytes -= stash;
        s.peak_inflight = std::max(s.peak_inflight, inflight);
        s.peak_inflight_bytes = std::max(s.peak_inflight_bytes, bytes);
      }
      s.idle = sim.makespan - s.busy;
      s.bubble_of_total = sim.makespan > 0.0 ? s.idle / sim.makespan : 0.0;
      s.bubble_over_ideal = s.busy > 0.0 ? s.idle / s.busy : 0.0;
      sim.ranks.push_back(s);
    }
  }

 private:
  const Program& p_;
  const Costs& c_;
  const int C_, M_;
  const bool lowered_, has_w_;
  std::vector<double> end_;  // per (op, chunk, micro-batch): when it ended, -1 before
};

}  // namespace

Simulation simulate(const Program& program, const Costs& costs) {
  validate(program);
  check_costs(costs, program.num_chunks);
  return Sim(program, costs).run();
}

}  // namespace minipipe::parallel
