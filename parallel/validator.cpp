// The validator's static rules (counts, order on a chunk, dependencies, send/receive matching)
// over per-(op, chunk, micro-batch) tables. The step-by-step run behind the deadlock rule and the
// grid lives in step_run.cpp.
#include "parallel/validator.h"

#include <sstream>

#include "parallel/step_run.h"
#include "tensor/error.h"

namespace minipipe::parallel {

const char* rule_name(Rule rule) {
  switch (rule) {
    case Rule::Placement:
      return "placement";
    case Rule::Count:
      return "count";
    case Rule::ForwardBeforeBackward:
      return "F before B";
    case Rule::Dependency:
      return "dependency";
    case Rule::Matching:
      return "send/recv match";
    case Rule::Deadlock:
      return "deadlock";
  }
  return "?";
}

bool ValidationReport::has(Rule rule) const {
  for (const Violation& v : violations)
    if (v.rule == rule) return true;
  return false;
}

std::string ValidationReport::to_string() const {
  std::ostringstream os;
  os << "invalid pipeline program (" << (lowered ? "lowered" : "compute-only")
     << "): " << violations.size() << " problem(s)\n";
  const size_t shown = std::min<size_t>(violations.size(), 12);
  for (size_t i = 0; i < shown; ++i)
    os << "  rule '" << rule_name(violations[i].rule) << "' broken: " << violations[i].message
       << '\n';
  if (shown < violations.size()) os << "  ... and " << violations.size() - shown << " more\n";
  if (!grid.empty()) os << "step x rank grid (offending actions marked [..]!):\n" << grid;
  return os.str();
}

namespace {

// Where each (op, chunk, micro-batch) first appears, and how often.
struct Where {
  int rank = -1, index = -1, count = 0;
  bool present() const { return count > 0; }
};

class Checker {
 public:
  explicit Checker(const Program& p)
      : p_(p),
        C_(p.num_chunks),
        M_(p.num_microbatches),
        table_(static_cast<size_t>(kNumOps * C_ * M_)) {}

  void run(ValidationReport& rep) {
    lowered_ = rep.lowered;
    uses_w_ = !p_.forward_only && p_.has_w();
    for (int r = 0; r < p_.num_ranks; ++r)
      for (int i = 0; i < static_cast<int>(p_.on(r).size()); ++i) record(r, i);
    for (int c = 0; c < C_; ++c)
      for (int m = 0; m < M_; ++m) check_one(c, m);
    rep.violations = std::move(out_);
  }

 private:
  Where& at(Op op, int c, int m) {
    return table_[static_cast<size_t>((static_cast<int>(op) * C_ + c) * M_ + m)];
  }
  std::string act(int c, Op op, int m) { return to_string(Action{c, op, m}); }
  void add(Rule rule, int rank, int index, std::string msg) {
    out_.push_back({rule, rank, index, std::move(msg)});
  }
  void add_at(Rule rule, const Where& w, std::string msg) {
    add(rule, w.rank, w.index, std::move(msg));
  }

  // Placement rules per action, then fill the table.
  void record(int r, int i) {
    const Action& a = p_.on(r)[static_cast<size_t>(i)];
    auto s = [&] { return to_string(a) + " on rank " + std::to_string(r); };
    if (a.chunk < 0 || a.chunk >= C_)
      return add(Rule::Placement, r, i,
                 s() + ": chunk " + std::to_string(a.chunk) + " does not exist (" +
                     std::to_string(C_) + " chunks)");
    if (a.microbatch < 0 || a.microbatch >= M_)
      return add(Rule::Placement, r, i,
                 s() + ": micro-batch " + std::to_string(a.microbatch) + " does not exist (" +
                     std::to_string(M_) + " micro-batches)");
    // A misplaced action still counts as present, so it is reported once, not also as missing.
    if (p_.rank_of(a.chunk, a.microbatch) != r)
      add(Rule::Placement, r, i,
          s() + ": " +
              (p_.replicated() ? "micro-batch " + std::to_string(a.microbatch) + " of chunk " +
                                     std::to_string(a.chunk) + " runs on rank "
                               : "chunk " + std::to_string(a.chunk) + " lives on rank ") +
              std::to_string(p_.rank_of(a.chunk, a.microbatch)));
    else if (is_comm(a.op) && !comm_needed(a))
      return add(Rule::Matching, r, i,
                 s() + ": no message is needed here (" + why_no_message(a) + ")");
    Where& w = at(a.op, a.chunk, a.microbatch);
    if (w.count++ == 0) {
      w.rank = r;
      w.index = i;
    } else {
      add(Rule::Count, r, i,
          s() + " appears twice (first at position " + std::to_string(w.index) + ")");
    }
  }

  bool comm_needed(const Action& a) const {
    const bool forward = a.op == Op::SEND_F || a.op == Op::RECV_F;
    if (!forward && p_.forward_only) return false;
    const int left = (a.op == Op::SEND_F || a.op == Op::RECV_B) ? a.chunk : a.chunk - 1;
    return left >= 0 && p_.crosses(left);
  }
  std::string why_no_message(const Action& a) const {
    if (p_.forward_only && (a.op == Op::SEND_B || a.op == Op::RECV_B))
      return "a forward-only program has no backward";
    const Action peer = matching_comm(a);
    if (peer.chunk < 0 || peer.chunk >= C_)
      return "there is no chunk " + std::to_string(peer.chunk);
    return "chunks " + std::to_string(a.chunk) + " and " + std::to_string(peer.chunk) +
           " share rank " + std::to_string(p_.rank_of(a.chunk));
  }

  // `later` must come after `earlier` in the same rank's list (both present).
  void need_before(Rule rule, Op earlier_op, int ec, Op later_op, int lc, int m, const char* why) {
    Where& e = at(earlier_op, ec, m);
    Where& l = at(later_op, lc, m);
    if (e.present() && l.present() && e.rank == l.rank && e.index > l.index)
      add_at(rule, l,
             act(lc, later_op, m) + " runs before " + act(ec, earlier_op, m) + " on rank " +
                 std::to_string(l.rank) + ", but " + why);
  }

  // A message of a lowered program: both halves present, or both missing (then the consumer
  // `needs` it and cannot get it).
  void check_pair(Op send_op, int sc, Op recv_op, int rc, int m, Op consumer, int cc) {
    Where& s = at(send_op, sc, m);
    Where& r = at(recv_op, rc, m);
    if (s.present() && !r.present())
      add_at(Rule::Matching, s,
             act(sc, send_op, m) + " on rank " + std::to_string(s.rank) + " has no matching " +
                 act(rc, recv_op, m) + " on rank " + std::to_string(p_.rank_of(rc, m)));
    if (!s.present() && r.present())
      add_at(Rule::Matching, r,
             act(rc, recv_op, m) + " on rank " + std::to_string(r.rank) + " has no matching " +
                 act(sc, send_op, m) + " on rank " + std::to_string(p_.rank_of(sc, m)));
    if (!s.present() && !r.present())
      add_at(Rule::Matching, at(consumer, cc, m),
             act(cc, consumer, m) + " needs data from rank " + std::to_string(p_.rank_of(sc, m)) +
                 " but the lowered program has no " + act(sc, send_op, m) + " / " +
                 act(rc, recv_op, m) + " pair");
  }

  void check_one(int c, int m) {
    Where& f = at(Op::F, c, m);
    Where& b = at(Op::B, c, m);
    Where& w = at(Op::W, c, m);
    const bool training = !p_.forward_only, uses_w = uses_w_;
    const std::string home = " on rank " + std::to_string(p_.rank_of(c, m));
    if (!f.present())
      add(Rule::Count, p_.rank_of(c, m), -1,
          "missing " + act(c, Op::F, m) + home +
              ": every (chunk, micro-batch) runs F exactly once");
    if (!training && b.present())
      add_at(Rule::Count, b, act(c, Op::B, m) + ": a forward-only program has no backward");
    if (!training && w.present())
      add_at(Rule::Count, w, act(c, Op::W, m) + ": a forward-only program has no backward");
    if (training && !b.present())
      add_at(Rule::Count, f,
             "missing " + act(c, Op::B, m) + home + " (" + act(c, Op::F, m) +
                 " has no backward): every (chunk, micro-batch) runs B once");
    if (uses_w && !w.present())
      add_at(Rule::Count, b,
             "missing " + act(c, Op::W, m) + home + ": the program uses W, so every B needs its W");

    need_before(Rule::ForwardBeforeBackward, Op::F, c, Op::B, c, m,
                "a backward needs the activations its forward stashed");
    need_before(Rule::ForwardBeforeBackward, Op::B, c, Op::W, c, m,
                "W uses the output gradient that B received");

    // Across chunks: F flows c-1 -> c, B flows c+1 -> c; locally or through a message.
    if (c > 0 && !p_.crosses(c - 1))
      need_before(Rule::Dependency, Op::F, c - 1, Op::F, c, m, "it needs that output");
    if (training && c + 1 < C_ && !p_.crosses(c))
      need_before(Rule::Dependency, Op::B, c + 1, Op::B, c, m, "it needs that gradient");
    if (!lowered_) return;
    if (p_.crosses(c)) {  // the message c -> c+1 and, in training, the gradient c+1 -> c
      check_pair(Op::SEND_F, c, Op::RECV_F, c + 1, m, Op::F, c + 1);
      need_before(Rule::Dependency, Op::F, c, Op::SEND_F, c, m, "it sends F's output");
      need_before(Rule::Dependency, Op::RECV_F, c + 1, Op::F, c + 1, m,
                  "F needs the activation it receives");
      if (training) {
        check_pair(Op::SEND_B, c + 1, Op::RECV_B, c, m, Op::B, c);
        need_before(Rule::Dependency, Op::B, c + 1, Op::SEND_B, c + 1, m,
                    "it sends B's input gradient");
        need_before(Rule::Dependency, Op::RECV_B, c, Op::B, c, m,
                    "B needs the gradient it receives");
      }
    }
  }

  const Program& p_;
  const int C_, M_;
  bool lowered_ = false, uses_w_ = false;  // W anywhere: every B needs its W
  std::vector<Where> table_;
  std::vector<Violation> out_;
};

// Program-level shape: anything wrong here makes the per-action tables meaningless.
bool check_shape(const Program& p, ValidationReport& rep) {
  auto bad = [&](std::string msg) { rep.violations.push_back({Rule::Placement, -1, -1, msg}); };
  if (p.num_ranks < 1 || p.num_chunks < 1 || p.num_microbatches < 1)
    bad("need at least one rank, chunk and micro-batch (got P=" + std::to_string(p.num_ranks) +
        ", C=" + std::to_string(p.num_chunks) + ", M=" + std::to_string(p.num_microbatches) + ")");
  else if (static_cast<int>(p.actions.size()) != p.num_ranks)
    bad("the program has " + std::to_string(p.actions.size()) + " action lists for " +
        std::to_string(p.num_ranks) + " ranks");
  else if (static_cast<int>(p.chunk_rank.size()) != p.num_chunks)
    bad("the chunk -> rank map has " + std::to_string(p.chunk_rank.size()) + " entries for " +
        std::to_string(p.num_chunks) + " chunks");
  else
    for (int c = 0; c < p.num_chunks; ++c)
      if (p.rank_of(c) < 0 || p.rank_of(c) >= p.num_ranks)
        bad("chunk " + std::to_string(c) + " is placed on rank " + std::to_string(p.rank_of(c)) +
            ", which does not exist");
  if (rep.violations.empty() && p.replicated()) {
    // Replicas: one non-empty list per chunk, first = chunk_rank, every rank in one list at most.
    std::vector<int> holder(static_cast<size_t>(p.num_ranks), -1);
    if (static_cast<int>(p.chunk_replicas.size()) != p.num_chunks)
      bad("the replica lists are " + std::to_string(p.chunk_replicas.size()) + " for " +
          std::to_string(p.num_chunks) + " chunks");
    else
      for (int c = 0; c < p.num_chunks && rep.violations.empty(); ++c) {
        const std::vector<int>& rs = p.chunk_replicas[static_cast<size_t>(c)];
        if (rs.empty() || rs.front() != p.rank_of(c))
          bad("chunk " + std::to_string(c) + "'s replicas must start with its rank " + std::to_string(p.rank_of(c)));
        for (int r : rs) {
          if (r < 0 || r >= p.num_ranks) {
            bad("chunk " + std::to_string(c) + " has a replica on rank " + std::to_string(r) + ", which does not exist");
            break;
          }
          int& h = holder[static_cast<size_t>(r)];
          if (h >= 0) {
            bad("rank " + std::to_string(r) + " is a replica of chunk " + std::to_string(h) + " and of chunk " +
                std::to_string(c) + ": replicated chunks share no rank");
            break;
          }
          h = c;
        }
      }
  }
  return rep.violations.empty();
}

}  // namespace

ValidationReport check(const Program& program) {
  ValidationReport rep;
  if (!check_shape(program, rep)) return rep;
  rep.lowered = program.has_comm();
  Checker(program).run(rep);
  StepRun run = run_steps(program);
  if (rep.ok() && !run.finished) rep.violations = deadlock_violations(program, run);
  if (!rep.ok()) {
    std::vector<std::pair<int, int>> marks;
    for (const Violation& v : rep.violations)
      if (v.rank >= 0 && v.index >= 0) marks.emplace_back(v.rank, v.index);
    rep.grid = draw_grid(program, run, marks);
  }
  return rep;
}

void validate(const Program& program) {
  ValidationReport rep = check(program);
  MP_CHECK(rep.ok(), rep.to_string());
}

std::string step_grid(const Program& program, const std::vector<std::pair<int, int>>& marks) {
  ValidationReport rep;
  MP_CHECK(check_shape(program, rep), rep.violations.front().message);
  return draw_grid(program, run_steps(program), marks);
}

}  // namespace minipipe::parallel
