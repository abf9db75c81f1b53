// The lowering pass: inserts SEND_F/RECV_F/SEND_B/RECV_B into a compute-only Program so that it
// runs under blocking (rendezvous) sends without deadlock. See lowering.h for the rule.
//
// Why it cannot deadlock. In the reference run every compute lasts at least `shortest` > 0
// (zero costs are raised to a tiny positive time for the reference only). Order all events by
// (time, kind, ...): a compute at its start, kind 1; a message at its moment t less eps, kind 0,
// with eps < shortest and
//   start(producer) < end(producer) - eps <= t - eps < t <= start(consumer),
// so every producer precedes its message, which precedes its consumer, and each rank's computes
// keep their order. Each rank's lowered list is this one global sequence restricted to the
// rank, so running the sequence in order is a complete execution in which every send meets
// its receive at the head of both lists. With fixed lists and fixed partners, blocking send/recv
// is deterministic: if one execution finishes, none can get stuck. (The validator re-checks the
// result anyway.)
#include "parallel/lowering.h"

#include <algorithm>
#include <tuple>

#include "parallel/validator.h"
#include "tensor/error.h"

namespace minipipe::parallel {

namespace {

// The reference costs: every compute that the program runs lasts > 0, so that start < end.
// (B costs backward + weight when the program has no W; see simulator.h.)
Costs positive(Costs c, bool has_w) {
  double largest = 0.0;
  for (const auto* v : {&c.forward, &c.backward, &c.weight})
    for (double x : *v) largest = std::max(largest, x);
  const double tiny = (largest > 0.0 ? largest : 1.0) * 1e-6;
  if (c.weight.empty()) c.weight.assign(c.forward.size(), 0.0);
  for (size_t i = 0; i < c.forward.size(); ++i) {
    c.forward[i] = std::max(c.forward[i], tiny);
    if (has_w) {
      c.backward[i] = std::max(c.backward[i], tiny);
      c.weight[i] = std::max(c.weight[i], tiny);
    } else if (c.backward[i] + c.weight[i] < tiny) {
      c.backward[i] = tiny;
    }
  }
  return c;
}

// One rank's compute intervals in the reference run, to ask "is it mid-compute at time t?".
struct Busy {
  std::vector<double> start, end;
  bool inside(double t, double eps) const {
    auto it = std::upper_bound(start.begin(), start.end(), t - eps);  // first start >= t
    if (it == start.begin()) return false;
    const size_t i = static_cast<size_t>(it - start.begin()) - 1;
    return t + eps < end[i];
  }
};

}  // namespace

Program lower(const Program& in) {
  const Costs unit = Costs::uniform(in.num_chunks, 1.0, 1.0, in.has_w() ? 1.0 : 0.0);
  return lower(in, unit);
}

Program lower_async(const Program& in) {
  MP_CHECK(!in.has_comm(),
           "lower_async: the program already has send/recv actions; lower the compute-only program");
  validate(in);
  Program out = in;
  out.async_sends = true;
  for (int r = 0; r < in.num_ranks; ++r) {
    std::vector<Action>& list = out.on(r);
    list.clear();
    for (const Action& a : in.on(r)) {
      const int c = a.chunk, m = a.microbatch;
      if (a.op == Op::F && c > 0 && in.crosses(c - 1)) list.push_back({c, Op::RECV_F, m});
      if (a.op == Op::B && in.crosses(c)) list.push_back({c, Op::RECV_B, m});
      list.push_back(a);
      if (a.op == Op::F && in.crosses(c)) list.push_back({c, Op::SEND_F, m});
      if (a.op == Op::B && c > 0 && in.crosses(c - 1)) list.push_back({c, Op::SEND_B, m});
    }
  }
  const ValidationReport rep = check(out);
  MP_INTERNAL_ASSERT(rep.ok(), "lower_async produced an invalid program:\n", rep.to_string());
  return out;
}

Program lower(const Program& in, const Costs& costs) {
  MP_CHECK(!in.has_comm(),
           "lower: the program already has send/recv actions; lower the compute-only program");
  check_costs(costs, in.num_chunks);  // before positive() indexes the vectors
  const Simulation ref = simulate(in, positive(costs, in.has_w()));  // validates `in`
  // Tolerance for "the same moment": far below the shortest compute, far above rounding.
  double shortest = ref.makespan;
  for (const auto& list : ref.timeline)
    for (const TimedAction& t : list) shortest = std::min(shortest, t.end - t.start);
  const double eps = 1e-3 * shortest;
  const int P = in.num_ranks;

  std::vector<Busy> busy(static_cast<size_t>(P));
  // When each (chunk, op, micro-batch) compute starts and ends; index (op * C + c) * M + m.
  const int C = in.num_chunks, M = in.num_microbatches;
  std::vector<double> t_start(static_cast<size_t>(kNumOps * C * M), -1.0);
  auto idx = [&](Op op, int c, int m) {
    return static_cast<size_t>((static_cast<int>(op) * C + c) * M + m);
  };
  for (int r = 0; r < P; ++r)
    for (const TimedAction& t : ref.timeline[static_cast<size_t>(r)]) {
      busy[static_cast<size_t>(r)].start.push_back(t.start);
      busy[static_cast<size_t>(r)].end.push_back(t.end);
      t_start[idx(t.action.op, t.action.chunk, t.action.microbatch)] = t.start;
    }

  // The moment of a message from rank a (producer ends at lo) to rank b (consumer starts at hi):
  // the first t in [lo, hi] at which neither rank is mid-compute. Being free only begins at an
  // end of a compute, so lo and the ends within (lo, hi] are the only candidates.
  auto moment = [&](int a, int b, double lo, double hi) {
    std::vector<double> candidates = {lo};
    for (int r : {a, b}) {
      const std::vector<double>& ends = busy[static_cast<size_t>(r)].end;  // sorted
      for (auto it = std::upper_bound(ends.begin(), ends.end(), lo); it != ends.end() && *it <= hi;
           ++it)
        candidates.push_back(*it);
    }
    std::sort(candidates.begin(), candidates.end());
    for (double t : candidates)
      if (!busy[static_cast<size_t>(a)].inside(t, eps) &&
          !busy[static_cast<size_t>(b)].inside(t, eps))
        return t;
    return lo;  // none: the sender waits for the receiver
  };

  // key = (time, kind: 0 message / 1 compute, rank, op, chunk, micro-batch)
  using Key = std::tuple<double, int, int, int, int, int>;
  struct Event {
    Key key;
    int rank;
    Action action;  // compute, or the SEND
    int peer = -1;  // for a message: the receiving rank and its RECV
    Action recv{};
  };
  std::vector<Event> events;
  for (int r = 0; r < P; ++r)
    for (const TimedAction& t : ref.timeline[static_cast<size_t>(r)]) {
      const Action& a = t.action;
      const int op = static_cast<int>(a.op);
      events.push_back({Key{t.start, 1, r, op, a.chunk, a.microbatch}, r, a});
      Action send{};
      if (a.op == Op::F && in.crosses(a.chunk)) {
        send = {a.chunk, Op::SEND_F, a.microbatch};
      } else if (a.op == Op::B && !in.forward_only && a.chunk > 0 && in.crosses(a.chunk - 1)) {
        send = {a.chunk, Op::SEND_B, a.microbatch};
      } else {
        continue;
      }
      const Action recv = matching_comm(send);
      const Action consumer{recv.chunk, a.op, a.microbatch};  // F(c+1, m) or B(c-1, m)
      const int q = in.rank_of(recv.chunk, recv.microbatch);
      const double hi = t_start[idx(consumer.op, consumer.chunk, consumer.microbatch)];
      MP_INTERNAL_ASSERT(hi >= t.end, "consumer ", to_string(consumer), " starts before its input");
      const double when = moment(r, q, t.end, hi);
      // Keyed eps early: before any compute that starts at `when` up to rounding, still after
      // the producer (which started at least `shortest` earlier).
      events.push_back({Key{when - eps, 0, r, op, a.chunk, a.microbatch}, r, send, q, recv});
    }
  std::sort(events.begin(), events.end(),
            [](const Event& x, const Event& y) { return x.key < y.key; });

  Program out = in;
  out.async_sends = false;
  for (auto& list : out.actions) list.clear();
  for (const Event& e : events) {
    out.on(e.rank).push_back(e.action);
    if (e.peer >= 0) out.on(e.peer).push_back(e.recv);
  }
  const ValidationReport rep = check(out);
  MP_INTERNAL_ASSERT(rep.ok(), "lowering produced an invalid program:\n", rep.to_string());
  return out;
}

}  // namespace minipipe::parallel
