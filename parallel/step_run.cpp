// The validator's dynamic half: a step-by-step run of a Program with blocking rendezvous
// send/recv (a send completes only together with its receive; with Program::async_sends a send
// runs alone and its receive after it), the deadlock report, and the step × rank grid that every
// validation error prints.
#include "parallel/step_run.h"

#include <algorithm>
#include <set>
#include <sstream>

namespace minipipe::parallel {

namespace {

class Runner {
 public:
  explicit Runner(const Program& p)
      : p_(p),
        C_(p.num_chunks),
        M_(p.num_microbatches),
        lowered_(p.has_comm()),
        async_(p.async_sends),
        done_(static_cast<size_t>(kNumOps * C_ * M_), 0) {}

  bool well_formed(int r, const Action& a) const {
    if (a.chunk < 0 || a.chunk >= C_ || a.microbatch < 0 || a.microbatch >= M_) return false;
    if (p_.rank_of(a.chunk, a.microbatch) != r) return false;
    if (!is_comm(a.op)) return true;
    const Action peer = matching_comm(a);
    if (peer.chunk < 0 || peer.chunk >= C_ || p_.rank_of(peer.chunk, peer.microbatch) == r) return false;
    return !(p_.forward_only && (a.op == Op::SEND_B || a.op == Op::RECV_B));
  }

  bool done(Op op, int c, int m) const {
    return done_[static_cast<size_t>((static_cast<int>(op) * C_ + c) * M_ + m)] != 0;
  }
  void set_done(const Action& a) {
    done_[static_cast<size_t>((static_cast<int>(a.op) * C_ + a.chunk) * M_ + a.microbatch)] = 1;
  }

  // The actions `a` waits for that have not run yet (empty: it can run, as far as data goes).
  std::vector<Action> missing_inputs(const Action& a) const {
    const int c = a.chunk, m = a.microbatch;
    std::vector<Action> need;
    auto want = [&](Op op, int cc) {
      if (!done(op, cc, m)) need.push_back({cc, op, m});
    };
    switch (a.op) {
      case Op::F:  // the previous chunk's output: its F, or its message in a lowered program
        if (c > 0 && lowered_ && p_.crosses(c - 1)) want(Op::RECV_F, c);
        if (c > 0 && !(lowered_ && p_.crosses(c - 1))) want(Op::F, c - 1);
        break;
      case Op::B:  // the own stash and the next chunk's input gradient
        want(Op::F, c);
        if (c + 1 < C_ && lowered_ && p_.crosses(c)) want(Op::RECV_B, c);
        if (c + 1 < C_ && !(lowered_ && p_.crosses(c))) want(Op::B, c + 1);
        break;
      case Op::W:
        want(Op::B, c);
        break;
      case Op::SEND_F:
        want(Op::F, c);
        break;
      case Op::SEND_B:
        want(Op::B, c);
        break;
      case Op::RECV_F:
      case Op::RECV_B:  // async: the data must have been sent
        if (async_) {
          const Action s = matching_comm(a);
          if (!done(s.op, s.chunk, m)) need.push_back(s);
        }
        break;
      default:
        break;
    }
    return need;
  }

  const Action* head(const StepRun& run, int r) const {
    const auto& list = p_.on(r);
    size_t pc = static_cast<size_t>(run.pc[static_cast<size_t>(r)]);
    return pc < list.size() ? &list[pc] : nullptr;
  }

  StepRun run() {
    StepRun run;
    const int P = p_.num_ranks;
    run.pc.assign(static_cast<size_t>(P), 0);
    for (int r = 0; r < P; ++r) run.step.emplace_back(p_.on(r).size(), -1);
    for (;;) {
      std::vector<char> fire(static_cast<size_t>(P), 0);
      bool any = false;
      for (int r = 0; r < P; ++r) {
        const Action* a = head(run, r);
        if (!a || !well_formed(r, *a) || !missing_inputs(*a).empty()) continue;
        if (is_compute(a->op) || async_) {  // async: a send, or a receive whose send ran
          fire[static_cast<size_t>(r)] = any = true;
        } else if (a->op == Op::SEND_F || a->op == Op::SEND_B) {  // the sender drives the pair
          const Action peer = matching_comm(*a);
          const int q = p_.rank_of(peer.chunk, peer.microbatch);
          const Action* h = head(run, q);
          if (h && *h == peer)
            fire[static_cast<size_t>(r)] = fire[static_cast<size_t>(q)] = any = true;
        }
      }
      if (!any) break;
      for (int r = 0; r < P; ++r) {
        if (!fire[static_cast<size_t>(r)]) continue;
        int& pc = run.pc[static_cast<size_t>(r)];
        set_done(p_.on(r)[static_cast<size_t>(pc)]);
        run.step[static_cast<size_t>(r)][static_cast<size_t>(pc)] = run.steps;
        ++pc;
      }
      ++run.steps;
    }
    run.finished = true;
    for (int r = 0; r < P; ++r) run.finished &= head(run, r) == nullptr;
    return run;
  }

  std::string where_is(const StepRun& run, int q) const {
    const Action* h = head(run, q);
    return h ? "rank " + std::to_string(q) + " is stuck at " + to_string(*h)
             : "rank " + std::to_string(q) + " has finished";
  }

  // Why each rank still holding actions after `run` cannot move.
  std::vector<Violation> explain(const StepRun& run) {
    for (int r = 0; r < p_.num_ranks; ++r)
      for (int i = 0; i < run.pc[static_cast<size_t>(r)]; ++i)
        set_done(p_.on(r)[static_cast<size_t>(i)]);
    std::vector<Violation> out;
    const std::string when = "no rank can move after step " + std::to_string(run.steps - 1) + ": ";
    for (int r = 0; r < p_.num_ranks; ++r) {
      const Action* a = head(run, r);
      if (!a) continue;
      std::string msg = when + "rank " + std::to_string(r) + " waits at " + to_string(*a);
      std::vector<Action> need = missing_inputs(*a);
      if (!need.empty()) {
        const int q = p_.rank_of(need.front().chunk, need.front().microbatch);
        msg += " for " + to_string(need.front()) + " (" + where_is(run, q) + ")";
      } else if (is_comm(a->op)) {
        const Action peer = matching_comm(*a);
        msg += " for " + to_string(peer) + " (" + where_is(run, p_.rank_of(peer.chunk, peer.microbatch)) + ")";
      }
      out.push_back({Rule::Deadlock, r, run.pc[static_cast<size_t>(r)], msg});
    }
    return out;
  }

 private:
  const Program& p_;
  const int C_, M_;
  const bool lowered_, async_;
  std::vector<char> done_;
};

}  // namespace

StepRun run_steps(const Program& p) { return Runner(p).run(); }

std::vector<Violation> deadlock_violations(const Program& p, const StepRun& run) {
  return Runner(p).explain(run);
}

std::string draw_grid(const Program& p, const StepRun& run,
                      const std::vector<std::pair<int, int>>& marks) {
  const int P = p.num_ranks;
  const std::set<std::pair<int, int>> marked(marks.begin(), marks.end());
  auto cell = [&](int r, int i) {
    std::string s = to_string(p.on(r)[static_cast<size_t>(i)]);
    return marked.count({r, i}) ? "[" + s + "]!" : s;
  };
  // rows[k][r]: what rank r shows on line k (ran steps first, then what never ran).
  std::vector<std::vector<std::string>> rows(static_cast<size_t>(run.steps));
  for (auto& row : rows) row.resize(static_cast<size_t>(P));
  std::vector<std::vector<std::string>> stuck;
  size_t width = 6;
  for (int r = 0; r < P; ++r) {
    const int n = static_cast<int>(p.on(r).size());
    for (int i = 0; i < n; ++i) {
      std::string s = cell(r, i);
      width = std::max(width, s.size());
      const int st = run.step[static_cast<size_t>(r)][static_cast<size_t>(i)];
      if (st >= 0) {
        rows[static_cast<size_t>(st)][static_cast<size_t>(r)] = std::move(s);
      } else {
        const size_t k = static_cast<size_t>(i - run.pc[static_cast<size_t>(r)]);
        if (stuck.size() <= k)
          stuck.resize(k + 1, std::vector<std::string>(static_cast<size_t>(P)));
        stuck[k][static_cast<size_t>(r)] = std::move(s);
      }
    }
  }
  std::ostringstream os;
  auto line = [&](const std::string& label, const std::vector<std::string>& cells) {
    std::string text = label;
    text.resize(6, ' ');
    for (const std::string& c : cells) {
      std::string padded = c;
      padded.resize(width, ' ');
      text += "| " + padded + ' ';
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    os << text << '\n';
  };
  std::vector<std::string> header;
  for (int r = 0; r < P; ++r) header.push_back("rank " + std::to_string(r));
  line("step", header);
  for (size_t k = 0; k < rows.size(); ++k) line(std::to_string(k), rows[k]);
  if (!stuck.empty()) {
    os << "------ stuck: nothing below ever ran ------\n";
    for (const auto& row : stuck) line("", row);
  }
  return os.str();
}

}  // namespace minipipe::parallel
