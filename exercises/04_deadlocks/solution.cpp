// Exercise 4, deadlocks: the reference solution. The naive placement is the one in
// examples/programs/naive_1f1b_deadlock.txt; the deadlock-free one is a simpler cousin of
// parallel/lowering.cpp: both make every rank's list the projection of one global sequence of
// events (parallel/lowering.cpp also keeps the schedule's timeline; this one does not try).
#include <vector>

#include "exercise.h"
#include "parallel/validator.h"
#include "tensor/error.h"

namespace exercises {

namespace {

// Does micro-batch m's data cross ranks between chunk c and chunk c+1?
bool crosses(const Program& p, int c, int m) {
  return c >= 0 && c + 1 < p.num_chunks && p.rank_of(c, m) != p.rank_of(c + 1, m);
}

Program without_actions(const Program& p) {
  MP_CHECK(!p.has_comm(), "lowering: the program already has SEND/RECV actions");
  Program out = p;
  for (auto& list : out.actions) list.clear();
  return out;
}

}  // namespace

Program naive_lowering(const Program& compute_only) {
  Program out = without_actions(compute_only);
  const bool train = !compute_only.forward_only;
  for (int r = 0; r < compute_only.num_ranks; ++r)
    for (const Action& a : compute_only.on(r)) {
      const int c = a.chunk, m = a.microbatch;
      auto& list = out.on(r);
      if (a.op == Op::F) {
        if (crosses(compute_only, c - 1, m)) list.push_back({c, Op::RECV_F, m});
        list.push_back(a);
        if (crosses(compute_only, c, m)) list.push_back({c, Op::SEND_F, m});
      } else if (a.op == Op::B) {
        if (train && crosses(compute_only, c, m)) list.push_back({c, Op::RECV_B, m});
        list.push_back(a);
        if (train && crosses(compute_only, c - 1, m)) list.push_back({c, Op::SEND_B, m});
      } else {
        list.push_back(a);  // W: local, no message
      }
    }
  return out;
}

Program deadlock_free_lowering(const Program& compute_only) {
  minipipe::parallel::validate(compute_only);  // a clear error for a program that cannot run at all
  Program out = without_actions(compute_only);
  const int P = compute_only.num_ranks, C = compute_only.num_chunks, M = compute_only.num_microbatches;
  const bool train = !compute_only.forward_only;
  // What has run, per (chunk, micro-batch): F, and B.
  std::vector<char> f_done(static_cast<size_t>(C * M), 0), b_done(static_cast<size_t>(C * M), 0);
  auto at = [M](int c, int m) { return static_cast<size_t>(c * M + m); };
  auto ready = [&](const Action& a) {
    const int c = a.chunk, m = a.microbatch;
    switch (a.op) {
      case Op::F: return c == 0 || f_done[at(c - 1, m)] != 0;
      case Op::B: return f_done[at(c, m)] != 0 && (c == C - 1 || b_done[at(c + 1, m)] != 0);
      default: return b_done[at(c, m)] != 0;  // W after its B
    }
  };
  // One global sequence: run the ranks round-robin, each as far as it can. After each compute,
  // its outgoing message is one event on two ranks at once: the SEND goes on the producer's list
  // and the matching RECV on the consumer's, both at this point of the sequence. Replaying the
  // sequence is then a blocking execution of the lowered program, so it cannot deadlock.
  std::vector<size_t> next(static_cast<size_t>(P), 0);
  size_t remaining = compute_only.num_actions();
  while (remaining > 0) {
    bool progressed = false;
    for (int r = 0; r < P; ++r) {
      const auto& list = compute_only.on(r);
      while (next[r] < list.size() && ready(list[next[r]])) {
        const Action a = list[next[r]++];
        --remaining;
        progressed = true;
        out.on(r).push_back(a);
        const int c = a.chunk, m = a.microbatch;
        if (a.op == Op::F) {
          f_done[at(c, m)] = 1;
          if (crosses(compute_only, c, m)) {
            out.on(r).push_back({c, Op::SEND_F, m});
            out.on(compute_only.rank_of(c + 1, m)).push_back({c + 1, Op::RECV_F, m});
          }
        } else if (a.op == Op::B) {
          b_done[at(c, m)] = 1;
          if (train && crosses(compute_only, c - 1, m)) {
            out.on(r).push_back({c, Op::SEND_B, m});
            out.on(compute_only.rank_of(c - 1, m)).push_back({c - 1, Op::RECV_B, m});
          }
        }
      }
    }
    MP_CHECK(progressed, "deadlock_free_lowering: the compute-only program cannot run to its end");
  }
  return out;
}

}  // namespace exercises
