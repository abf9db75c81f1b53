// The pipeline schedule IR: actions, programs and their text form (PyTorch pipelining's notation,
// `2F0`, `1SEND_B3`). Schedules are data: generators build Programs, lowering adds communication,
// the validator and simulator read them, the executor runs them. See docs/schedules.md.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace minipipe::parallel {

// F: forward of one micro-batch through one chunk. B: its backward — the full backward, or only
// the input gradient when the program also has W actions. W: the weight gradient.
// SEND_F / RECV_F move a chunk's output activation to the next chunk's rank; SEND_B / RECV_B move
// the gradient of a chunk's input back to the previous chunk's rank.
enum class Op { F, B, W, SEND_F, RECV_F, SEND_B, RECV_B };
inline constexpr int kNumOps = 7;

const char* op_name(Op op);  // "F", "SEND_B", ...
inline bool is_comm(Op op) { return op >= Op::SEND_F; }
inline bool is_compute(Op op) { return !is_comm(op); }

// One step of one rank. `chunk` is always a chunk that lives on the rank running the action, so
// a message names two chunks: 1SEND_F3 (rank of chunk 1) is matched by 2RECV_F3 (rank of chunk 2),
// and 2SEND_B3 by 1RECV_B3.
struct Action {
  int chunk = 0;
  Op op = Op::F;
  int microbatch = 0;
  friend bool operator==(const Action&, const Action&) = default;
};

std::string to_string(const Action& a);  // "2F0", "1SEND_B3"
// Parses one token; throws minipipe::Error quoting the token and saying what is wrong with it.
Action parse_action(std::string_view text);

// The other half of a send or receive: SEND_F(c, m) <-> RECV_F(c+1, m), SEND_B(c, m) <->
// RECV_B(c-1, m). Only meaningful for communication ops.
Action matching_comm(const Action& a);

// One action list per rank, run in order. The model is cut into `num_chunks` chunks (P for plain
// pipelines, P·v when each rank holds v interleaved chunks); chunk c lives on rank chunk_rank[c]
// (c mod P by default) and the last chunk computes the loss.
//
// Stage replicas (PipeDream's 1F1B-RR): when chunk_replicas is set, chunk c runs on the ranks
// chunk_replicas[c] — micro-batch m on chunk_replicas[c][m mod R_c], each micro-batch's F and B on
// the same replica — and chunk_rank[c] is the first of them. Replicated chunks share no rank.
struct Program {
  int num_ranks = 1;
  int num_chunks = 1;
  int num_microbatches = 1;
  bool forward_only = false;  // inference: F only, no B / W
  // Lowered programs: how a SEND behaves. false: it blocks until its RECV is posted and taken (the
  // rendezvous rule lower() guarantees cannot deadlock). true: it returns at once, the data in
  // flight, and only its RECV waits (lower_async(): each SEND right after its producer, each RECV
  // right before its consumer; the executor finishes the sends by the end of the step).
  bool async_sends = false;
  std::vector<int> chunk_rank;
  std::vector<std::vector<int>> chunk_replicas;  // empty: one rank per chunk (chunk_rank)
  std::vector<std::vector<Action>> actions;

  // P ranks, C chunks placed round-robin (chunk c on rank c mod P), M micro-batches, no actions.
  static Program empty(int ranks, int chunks, int microbatches);

  // The rank of chunk c (its first replica when replicated).
  int rank_of(int chunk) const { return chunk_rank[static_cast<size_t>(chunk)]; }
  // The rank that runs micro-batch m of chunk c.
  int rank_of(int chunk, int microbatch) const {
    if (chunk_replicas.empty()) return rank_of(chunk);
    const std::vector<int>& r = chunk_replicas[static_cast<size_t>(chunk)];
    return r[static_cast<size_t>(microbatch) % r.size()];
  }
  bool replicated() const { return !chunk_replicas.empty(); }
  // Every rank chunk c runs on: {chunk_rank[c]}, or its replicas.
  std::vector<int> ranks_of(int chunk) const {
    return replicated() ? chunk_replicas[static_cast<size_t>(chunk)] : std::vector<int>{rank_of(chunk)};
  }
  // Whether `rank` runs chunk c (for some micro-batch).
  bool runs_on(int rank, int chunk) const {
    for (int r : ranks_of(chunk))
      if (r == rank) return true;
    return false;
  }
  std::vector<Action>& on(int rank) { return actions[static_cast<size_t>(rank)]; }
  const std::vector<Action>& on(int rank) const { return actions[static_cast<size_t>(rank)]; }
  // Whether the data flowing from chunk c to chunk c+1 (and the gradient coming back) has to
  // cross ranks; false past the last chunk and when both chunks share a rank (never, for
  // replicated chunks, whose rank sets are disjoint).
  bool crosses(int chunk) const {
    return chunk + 1 < num_chunks && rank_of(chunk) != rank_of(chunk + 1);
  }
  bool has_comm() const;  // lowered: it contains SEND/RECV actions
  bool has_w() const;     // B is input-gradient only, W the weight gradient
  size_t num_actions() const;
  int count(Op op, int rank) const;
};

// The plain-text program file format (documented in program_file.cpp and docs/schedules.md).
std::string to_string(const Program& p);
// Parse errors name the source, line and token: "prog.txt:7: bad action '0Q1': ...".
Program parse_program(std::string_view text, const std::string& source = "<string>");
Program read_program(const std::string& path);
void write_program(const Program& p, const std::string& path);

}  // namespace minipipe::parallel
