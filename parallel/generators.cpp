// The schedule generators (GPipe, 1F1B, interleaved 1F1B, forward-only): each one builds the
// compute order of every rank and nothing else; lowering.cpp adds the sends and receives.
#include "parallel/generators.h"

#include <algorithm>

#include "tensor/error.h"

namespace minipipe::parallel {

namespace {
void check_sizes(const char* who, int P, int M) {
  MP_CHECK(P >= 1, who, ": need at least 1 pipeline rank, got P=", P);
  MP_CHECK(M >= 1, who, ": need at least 1 micro-batch, got M=", M);
}
}  // namespace

Program gpipe(int P, int M) {
  check_sizes("gpipe", P, M);
  Program p = Program::empty(P, P, M);
  for (int r = 0; r < P; ++r) {
    for (int m = 0; m < M; ++m) p.on(r).push_back({r, Op::F, m});
    for (int m = 0; m < M; ++m) p.on(r).push_back({r, Op::B, m});
  }
  return p;
}

Program one_f_one_b(int P, int M) {
  check_sizes("one_f_one_b", P, M);
  Program p = Program::empty(P, P, M);
  for (int r = 0; r < P; ++r) {
    auto& list = p.on(r);
    const int warmup = std::min(P - r - 1, M);  // forwards in flight before the first backward
    for (int m = 0; m < warmup; ++m) list.push_back({r, Op::F, m});
    for (int i = 0; i < M - warmup; ++i) {  // steady state: F of m+warmup, then B of m
      list.push_back({r, Op::F, warmup + i});
      list.push_back({r, Op::B, i});
    }
    for (int m = M - warmup; m < M; ++m) list.push_back({r, Op::B, m});  // cool-down
  }
  return p;
}

bool interleaved_accepts(int P, int M) {
  if (P < 1 || M < 1) return false;
  return M % std::max(1, M / P) == 0;
}

Program interleaved_1f1b(int P, int M, int v) {
  check_sizes("interleaved_1f1b", P, M);
  MP_CHECK(v >= 1, "interleaved_1f1b: need at least 1 chunk per rank, got v=", v);
  if (!interleaved_accepts(P, M)) {
    int below = M, above = M;
    while (!interleaved_accepts(P, below)) --below;
    while (!interleaved_accepts(P, above)) ++above;
    MP_CHECK(false, "interleaved_1f1b: M=", M, " micro-batches cannot be cut into equal groups of",
             " at least P=", P, " (it needs M % floor(M/P) == 0, e.g. any multiple of P, or any",
             " M < ", 2 * P, "); nearest M that work: ", below, " and ", above);
  }
  const int rounds = std::max(1, M / P), G = M / rounds;  // G = P when P divides M
  const int total = M * v;                                // F (and B) actions per rank
  Program p = Program::empty(P, P * v, M);
  // The k-th forward of a rank is micro-batch mb(k) through its local chunk j = (k mod G·v) / G;
  // the k-th backward walks the local chunks in the reverse order.
  auto mb = [&](int k) { return (k / (G * v)) * G + k % G; };
  auto chunk = [&](int r, int k, bool forward) {
    int j = (k % (G * v)) / G;
    return (forward ? j : v - 1 - j) * P + r;
  };
  for (int r = 0; r < P; ++r) {
    auto& list = p.on(r);
    // Megatron: the last rank runs (v-1)·G forwards before its first backward; each hop
    // towards rank 0 adds two (one more forward to send and one more backward to wait for).
    const int warmup = std::min(total, (v - 1) * G + 2 * (P - 1 - r));
    for (int k = 0; k < warmup; ++k) list.push_back({chunk(r, k, true), Op::F, mb(k)});
    for (int i = 0; i < total - warmup; ++i) {
      const int k = warmup + i;
      list.push_back({chunk(r, k, true), Op::F, mb(k)});
      list.push_back({chunk(r, i, false), Op::B, mb(i)});
    }
    for (int i = total - warmup; i < total; ++i) list.push_back({chunk(r, i, false), Op::B, mb(i)});
  }
  return p;
}

Program forward_only(int P, int M, int v) {
  check_sizes("forward_only", P, M);
  MP_CHECK(v >= 1, "forward_only: need at least 1 chunk per rank, got v=", v);
  Program p = Program::empty(P, P * v, M);
  p.forward_only = true;
  for (int r = 0; r < P; ++r)
    for (int j = 0; j < v; ++j)
      for (int m = 0; m < M; ++m) p.on(r).push_back({j * P + r, Op::F, m});
  return p;
}

namespace {
// k(P-1-r) warm-up forwards, then (F, B) pairs, each followed by a W once more than k·r B passes
// wait for theirs; the held-back W passes run after the last B.
Program zero_bubble(const char* who, int P, int M, int k) {
  check_sizes(who, P, M);
  Program p = Program::empty(P, P, M);
  for (int r = 0; r < P; ++r) {
    auto& list = p.on(r);
    const int warmup = std::min(k * (P - 1 - r), M), held = k * r;
    int b = 0, w = 0;
    auto backward = [&] {
      list.push_back({r, Op::B, b++});
      if (b - w > held) list.push_back({r, Op::W, w++});
    };
    for (int m = 0; m < warmup; ++m) list.push_back({r, Op::F, m});
    for (int m = warmup; m < M; ++m) {
      list.push_back({r, Op::F, m});
      backward();
    }
    while (b < M) backward();
    while (w < M) list.push_back({r, Op::W, w++});
  }
  return p;
}
}  // namespace

Program zb_h1(int P, int M) { return zero_bubble("zb_h1", P, M, 1); }
Program zb_h2(int P, int M) { return zero_bubble("zb_h2", P, M, 2); }

Program make_schedule(std::string_view name, int P, int M, int v) {
  MP_CHECK(v == 1 || name == "interleaved" || name == "forward", "--virtual ", v,
           " only applies to 'interleaved' (and 'forward')");
  if (name == "gpipe") return gpipe(P, M);
  if (name == "1f1b") return one_f_one_b(P, M);
  if (name == "interleaved") return interleaved_1f1b(P, M, v);
  if (name == "forward") return forward_only(P, M, v);
  if (name == "zb-h1") return zb_h1(P, M);
  if (name == "zb-h2") return zb_h2(P, M);
  // The asynchronous schedules run 1F1B's order; what differs is when each stage steps its
  // optimizer and which weights a micro-batch reads (weight_versions.h).
  if (name == "pipedream" || name == "2bw") return one_f_one_b(P, M);
  MP_CHECK(false, "unknown schedule '", name, "' (known: gpipe, 1f1b, interleaved, forward, zb-h1, zb-h2, pipedream, 2bw)");
  return {};
}

Program replicated(std::string_view schedule, const std::vector<int>& replicas, int M) {
  const int P = static_cast<int>(replicas.size());
  check_sizes("stage replicas", P, M);
  MP_CHECK(schedule == "1f1b" || schedule == "gpipe" || schedule == "forward",
           "stage replicas run the 1f1b, gpipe or forward schedule, got '", schedule, "'");
  int world = 0;
  bool any = false;
  for (int s = 0; s < P; ++s) {
    const int R = replicas[static_cast<size_t>(s)];
    MP_CHECK(R >= 1 && R <= M, "stage replicas: stage ", s, " has ", R, " replicas; it needs 1 to M = ", M,
             " (a replica without a micro-batch would have nothing to do)");
    world += R;
    any = any || R > 1;
  }
  if (!any) return make_schedule(schedule, P, M);
  Program p = Program::empty(world, P, M);
  p.forward_only = schedule == "forward";
  p.chunk_replicas.resize(static_cast<size_t>(P));
  for (int s = 0, next = 0; s < P; ++s) {
    for (int j = 0; j < replicas[static_cast<size_t>(s)]; ++j) p.chunk_replicas[static_cast<size_t>(s)].push_back(next++);
    p.chunk_rank[static_cast<size_t>(s)] = p.chunk_replicas[static_cast<size_t>(s)].front();
  }
  for (int s = 0, downstream = world; s < P; downstream -= replicas[static_cast<size_t>(s)], ++s) {
    const int R = replicas[static_cast<size_t>(s)];
    const int limit = (downstream + R - 1) / R;  // micro-batches in flight on one replica
    for (int j = 0; j < R; ++j) {
      std::vector<int> mine;
      for (int m = j; m < M; m += R) mine.push_back(m);
      const int n = static_cast<int>(mine.size());
      auto& list = p.on(p.chunk_replicas[static_cast<size_t>(s)][static_cast<size_t>(j)]);
      auto F = [&](int i) { list.push_back({s, Op::F, mine[static_cast<size_t>(i)]}); };
      auto B = [&](int i) { list.push_back({s, Op::B, mine[static_cast<size_t>(i)]}); };
      if (schedule == "forward") {
        for (int i = 0; i < n; ++i) F(i);
      } else if (schedule == "gpipe") {
        for (int i = 0; i < n; ++i) F(i);
        for (int i = 0; i < n; ++i) B(i);
      } else {
        const int warmup = std::min(limit - 1, n);
        for (int i = 0; i < warmup; ++i) F(i);
        for (int i = 0; i < n - warmup; ++i) F(warmup + i), B(i);
        for (int i = n - warmup; i < n; ++i) B(i);
      }
    }
  }
  return p;
}

}  // namespace minipipe::parallel
