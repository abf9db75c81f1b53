// The lowering pass: inserts SEND_F/RECV_F/SEND_B/RECV_B into a compute-only Program so that it
// runs under blocking (rendezvous) sends without deadlock. See lowering.h for the rule.
//
// Why it cannot deadlock: take the unit-step run of the compute-only program (step_run.cpp).
// Order all events by time — a compute of step s at time s, the message of a producer that ran
// in step s at time s+1, before the computes of step s+1 — breaking ties the same way on every
// rank. Its consumer ran in a step >= s+1, so every producer precedes its message, which precedes
// its consumer. Each rank's lowered list is this global sequence restricted to the rank, so
// running the sequence in order is a complete execution in which every send meets its receive at
// the head of both lists. With fixed lists and fixed partners, blocking send/recv is
// deterministic: if one execution finishes, none can get stuck.
#include "parallel/lowering.h"

#include <algorithm>
#include <tuple>

#include "parallel/step_run.h"
#include "parallel/validator.h"
#include "tensor/error.h"

namespace minipipe::parallel {

Program lower(const Program& in) {
  MP_CHECK(!in.has_comm(),
           "lower: the program already has send/recv actions; lower the "
           "compute-only program instead");
  validate(in);
  const StepRun run = run_steps(in);
  MP_INTERNAL_ASSERT(run.finished, "a valid compute-only program must finish");

  // key = (time, kind: 0 message / 1 compute, producer rank, op, chunk, micro-batch)
  using Key = std::tuple<int, int, int, int, int, int>;
  struct Event {
    Key key;
    int rank;
    Action action;  // compute, or the SEND
    int peer = -1;  // for a message: the receiving rank and its RECV
    Action recv{};
  };
  std::vector<Event> events;
  for (int r = 0; r < in.num_ranks; ++r) {
    const auto& list = in.on(r);
    for (size_t i = 0; i < list.size(); ++i) {
      const Action& a = list[i];
      const int s = run.step[static_cast<size_t>(r)][i];
      const int op = static_cast<int>(a.op);
      events.push_back({Key{s, 1, r, op, a.chunk, a.microbatch}, r, a});
      Action send{};
      if (a.op == Op::F && in.crosses(a.chunk)) {
        send = {a.chunk, Op::SEND_F, a.microbatch};
      } else if (a.op == Op::B && !in.forward_only && a.chunk > 0 && in.crosses(a.chunk - 1)) {
        send = {a.chunk, Op::SEND_B, a.microbatch};
      } else {
        continue;
      }
      const Action recv = matching_comm(send);
      events.push_back(
          {Key{s + 1, 0, r, op, a.chunk, a.microbatch}, r, send, in.rank_of(recv.chunk), recv});
    }
  }
  std::sort(events.begin(), events.end(),
            [](const Event& x, const Event& y) { return x.key < y.key; });

  Program out = in;
  for (auto& list : out.actions) list.clear();
  for (const Event& e : events) {
    out.on(e.rank).push_back(e.action);
    if (e.peer >= 0) out.on(e.peer).push_back(e.recv);
  }
  return out;
}

}  // namespace minipipe::parallel
