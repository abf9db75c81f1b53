// The schedule IR's small pieces: op names, the action text form (`2F0`, `1SEND_B3`), the
// send/receive pairing rule, and Program helpers. File I/O lives in program_file.cpp.
#include "parallel/schedule.h"

#include <cctype>

#include "tensor/error.h"

namespace minipipe::parallel {

namespace {
constexpr const char* kOpNames[kNumOps] = {"F", "B", "W", "SEND_F", "RECV_F", "SEND_B", "RECV_B"};

// Reads a run of decimal digits at text[pos...]; returns -1 when there is none or it is too long.
int read_number(std::string_view text, size_t& pos) {
  size_t start = pos;
  long value = 0;
  while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]))) {
    value = value * 10 + (text[pos] - '0');
    if (value > 1'000'000'000) return -1;
    ++pos;
  }
  return pos == start ? -1 : static_cast<int>(value);
}
}  // namespace

const char* op_name(Op op) { return kOpNames[static_cast<int>(op)]; }

std::string to_string(const Action& a) {
  return std::to_string(a.chunk) + op_name(a.op) + std::to_string(a.microbatch);
}

Action parse_action(std::string_view text) {
  // <chunk digits><op name><micro-batch digits>, nothing else.
  MP_CHECK(!text.empty(), "empty action (expected e.g. 2F0 or 1SEND_B3)");
  size_t pos = 0;
  int chunk = read_number(text, pos);
  MP_CHECK(chunk >= 0, "bad action '", text, "'",
           ": must start with the chunk number (e.g. 2F0 = chunk 2, forward, micro-batch 0)");
  size_t op_start = pos;
  while (pos < text.size() && !std::isdigit(static_cast<unsigned char>(text[pos]))) ++pos;
  std::string_view name = text.substr(op_start, pos - op_start);
  int op = -1;
  for (int i = 0; i < kNumOps; ++i)
    if (name == kOpNames[i]) op = i;
  MP_CHECK(op >= 0, "bad action '", text, "'", ": unknown op '", name,
           "' (known: F B W SEND_F RECV_F SEND_B RECV_B)");
  int mb = read_number(text, pos);
  MP_CHECK(mb >= 0, "bad action '", text, "'", ": must end with the micro-batch number");
  MP_CHECK(pos == text.size(), "bad action '", text, "'", ": unexpected '", text.substr(pos),
           "' after the micro-batch number");
  return Action{chunk, static_cast<Op>(op), mb};
}

Action matching_comm(const Action& a) {
  switch (a.op) {
    case Op::SEND_F:
      return {a.chunk + 1, Op::RECV_F, a.microbatch};
    case Op::RECV_F:
      return {a.chunk - 1, Op::SEND_F, a.microbatch};
    case Op::SEND_B:
      return {a.chunk - 1, Op::RECV_B, a.microbatch};
    case Op::RECV_B:
      return {a.chunk + 1, Op::SEND_B, a.microbatch};
    default:
      MP_INTERNAL_ASSERT(false, "matching_comm of a compute action ", to_string(a));
  }
  return a;
}

Program Program::empty(int ranks, int chunks, int microbatches) {
  MP_CHECK(ranks >= 1, "a program needs at least one rank, got ", ranks);
  MP_CHECK(chunks >= 1, "a program needs at least one chunk, got ", chunks);
  MP_CHECK(microbatches >= 1, "a program needs at least one micro-batch, got ", microbatches);
  // Tables indexed by (op, chunk, micro-batch) are sized from these: keep them sane and in int.
  MP_CHECK(ranks <= 4096 && chunks <= 65536 && static_cast<int64_t>(chunks) * microbatches <= (int64_t{1} << 22),
           "program too large: ", ranks, " ranks, ", chunks, " chunks, ", microbatches,
           " micro-batches (limits: 4096 ranks, 65536 chunks, chunks x micro-batches <= 4194304)");
  Program p;
  p.num_ranks = ranks;
  p.num_chunks = chunks;
  p.num_microbatches = microbatches;
  for (int c = 0; c < chunks; ++c) p.chunk_rank.push_back(c % ranks);
  p.actions.resize(static_cast<size_t>(ranks));
  return p;
}

bool Program::has_comm() const {
  for (const auto& list : actions)
    for (const Action& a : list)
      if (is_comm(a.op)) return true;
  return false;
}

bool Program::has_w() const {
  for (const auto& list : actions)
    for (const Action& a : list)
      if (a.op == Op::W) return true;
  return false;
}

size_t Program::num_actions() const {
  size_t n = 0;
  for (const auto& list : actions) n += list.size();
  return n;
}

int Program::count(Op op, int rank) const {
  int n = 0;
  for (const Action& a : on(rank)) n += a.op == op;
  return n;
}

}  // namespace minipipe::parallel
