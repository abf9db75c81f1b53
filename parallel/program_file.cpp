// Programs as plain text, so a student can write a schedule by hand, run it through the validator
// and simulator (examples/show_schedule --file), and later the executor.
//
// Format (one item per line; '#' starts a comment; actions separated by spaces and/or commas):
//   ranks 4                      required: P
//   chunks 8                     optional: C (default: one past the largest chunk used, at least P)
//   microbatches 8               optional: M (default: one past the largest micro-batch used)
//   placement 0 1 2 3 0 1 2 3    optional: the rank of each chunk (default: c on rank c mod P)
//   replicas 0/1 2               optional, instead of placement: each chunk's replica ranks
//                                (1F1B-RR: micro-batch m of chunk c on replica m mod R_c)
//   forward_only                 optional: an inference program (F only)
//   async_sends                  optional: its sends do not wait for their receives (lower_async)
//   rank 0: 0F0 0F1 0B0 0B1      the actions of rank 0 in run order; repeated lines append
#include <algorithm>
#include <fstream>
#include <sstream>

#include "nn/atomic_file.h"
#include "parallel/schedule.h"
#include "tensor/error.h"

namespace minipipe::parallel {

namespace {

std::vector<std::string> split_tokens(std::string_view s) {
  std::vector<std::string> out;
  std::string cur;
  for (char ch : s) {
    if (ch == ' ' || ch == '\t' || ch == ',' || ch == '\r') {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += ch;
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

// A whole non-negative integer, or -1.
int to_int(const std::string& s) {
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (s.empty() || s.size() > 9 || !std::all_of(s.begin(), s.end(), digit)) return -1;
  return std::stoi(s);
}

}  // namespace

std::string to_string(const Program& p) {
  std::ostringstream os;
  os << "# minipipe pipeline program: one line per rank, actions in run order\n";
  os << "ranks " << p.num_ranks << "\nchunks " << p.num_chunks << "\nmicrobatches "
     << p.num_microbatches << '\n';
  if (p.replicated()) {
    os << "replicas";
    for (const std::vector<int>& rs : p.chunk_replicas)
      for (size_t i = 0; i < rs.size(); ++i) os << (i == 0 ? " " : "/") << rs[i];
  } else {
    os << "placement";
    for (int r : p.chunk_rank) os << ' ' << r;
  }
  os << '\n';
  if (p.forward_only) os << "forward_only\n";
  if (p.async_sends) os << "async_sends\n";
  for (size_t r = 0; r < p.actions.size(); ++r) {
    os << "rank " << r << ':';
    for (const Action& a : p.actions[r]) os << ' ' << to_string(a);
    os << '\n';
  }
  return os.str();
}

Program parse_program(std::string_view text, const std::string& source) {
  int ranks = -1, chunks = -1, microbatches = -1;
  bool forward_only = false, async_sends = false;
  std::vector<int> placement;
  std::vector<std::vector<int>> replicas;
  struct RankLine {
    int rank;
    int line;
    std::vector<Action> actions;
  };
  std::vector<RankLine> rank_lines;

  int line_no = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t eol = std::min(text.find('\n', pos), text.size());
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    std::string where = source + ":" + std::to_string(line_no) + ": ";
    if (size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);

    if (size_t colon = line.find(':'); colon != std::string_view::npos) {  // rank R: actions
      std::vector<std::string> head = split_tokens(line.substr(0, colon));
      MP_CHECK(head.size() == 2 && head[0] == "rank" && to_int(head[1]) >= 0, where,
               "expected 'rank R: <actions>', got '", line, "'");
      RankLine rl{to_int(head[1]), line_no, {}};
      std::vector<std::string> tokens = split_tokens(line.substr(colon + 1));
      for (size_t i = 0; i < tokens.size(); ++i) {
        try {
          rl.actions.push_back(parse_action(tokens[i]));
        } catch (const Error& e) {
          MP_CHECK(false, where, "token ", i + 1, " of rank ", rl.rank, ": ", e.what());
        }
      }
      rank_lines.push_back(std::move(rl));
      continue;
    }
    std::vector<std::string> tokens = split_tokens(line);
    if (tokens.empty()) continue;
    const std::string& key = tokens[0];
    auto one_number = [&](int& into) {
      MP_CHECK(into < 0, where, "'", key, "' given twice");
      MP_CHECK(tokens.size() == 2 && to_int(tokens[1]) >= 1, where, "expected '", key,
               " N' with a whole number N >= 1, got '", line, "'");
      into = to_int(tokens[1]);
    };
    if (key == "ranks") {
      one_number(ranks);
    } else if (key == "chunks") {
      one_number(chunks);
    } else if (key == "microbatches") {
      one_number(microbatches);
    } else if (key == "forward_only") {
      MP_CHECK(tokens.size() == 1, where, "'forward_only' takes no value");
      forward_only = true;
    } else if (key == "async_sends") {
      MP_CHECK(tokens.size() == 1, where, "'async_sends' takes no value");
      async_sends = true;
    } else if (key == "placement") {
      MP_CHECK(placement.empty() && replicas.empty(), where, "'placement' given twice, or with 'replicas'");
      MP_CHECK(tokens.size() >= 2, where, "'placement' needs the rank of each chunk");
      for (size_t i = 1; i < tokens.size(); ++i) {
        MP_CHECK(to_int(tokens[i]) >= 0, where, "placement token ", i, " '", tokens[i],
                 "' is not a rank number");
        placement.push_back(to_int(tokens[i]));
      }
    } else if (key == "replicas") {
      MP_CHECK(replicas.empty() && placement.empty(), where, "give 'replicas' once, and not with 'placement'");
      MP_CHECK(tokens.size() >= 2, where, "'replicas' needs each chunk's ranks (e.g. 'replicas 0/1 2')");
      for (size_t i = 1; i < tokens.size(); ++i) {
        std::vector<int> rs;
        std::string_view tok = tokens[i];
        for (size_t start = 0; start <= tok.size();) {
          const size_t slash = std::min(tok.find('/', start), tok.size());
          const int r = to_int(std::string(tok.substr(start, slash - start)));
          MP_CHECK(r >= 0, where, "replicas token ", i, " '", tokens[i], "' is not ranks joined by '/'");
          rs.push_back(r);
          start = slash + 1;
        }
        replicas.push_back(std::move(rs));
      }
    } else {
      MP_CHECK(false, where, "unknown line '", key,
               "' (expected ranks, chunks, microbatches, placement, replicas, forward_only, async_sends or 'rank R:')");
    }
  }

  MP_CHECK(ranks >= 1, source, ": missing 'ranks P' line");
  int max_chunk = -1, max_mb = -1;
  for (const RankLine& rl : rank_lines) {
    MP_CHECK(rl.rank < ranks, source, ":", rl.line, ": rank ", rl.rank,
             " out of range: the program has ", ranks, " ranks (0..", ranks - 1, ")");
    for (const Action& a : rl.actions) {
      max_chunk = std::max(max_chunk, a.chunk);
      max_mb = std::max(max_mb, a.microbatch);
    }
  }
  if (chunks < 0) chunks = std::max(ranks, max_chunk + 1);
  if (microbatches < 0) microbatches = std::max(1, max_mb + 1);
  Program p = Program::empty(ranks, chunks, microbatches);
  p.forward_only = forward_only;
  p.async_sends = async_sends;
  if (!placement.empty()) {
    MP_CHECK(static_cast<int>(placement.size()) == chunks, source, ": 'placement' lists ",
             placement.size(), " ranks but the program has ", chunks, " chunks");
    for (int r : placement)
      MP_CHECK(r < ranks, source, ": placement names rank ", r, " but there are ", ranks);
    p.chunk_rank = placement;
  }
  if (!replicas.empty()) {
    MP_CHECK(static_cast<int>(replicas.size()) == chunks, source, ": 'replicas' lists ", replicas.size(),
             " chunks but the program has ", chunks);
    for (const std::vector<int>& rs : replicas)
      for (int r : rs) MP_CHECK(r < ranks, source, ": replicas name rank ", r, " but there are ", ranks);
    for (int c = 0; c < chunks; ++c) p.chunk_rank[static_cast<size_t>(c)] = replicas[static_cast<size_t>(c)].front();
    p.chunk_replicas = std::move(replicas);
  }
  for (RankLine& rl : rank_lines)
    for (const Action& a : rl.actions) p.on(rl.rank).push_back(a);
  return p;
}

Program read_program(const std::string& path) {
  std::ifstream in(path);
  MP_CHECK(in.good(), "cannot open program file '", path, "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_program(ss.str(), path);
}

void write_program(const Program& p, const std::string& path) {
  // Atomically, through a temporary file of this writer's own (see nn/atomic_file.h).
  nn::atomic_write(path, to_string(p), "write_program");
}

}  // namespace minipipe::parallel
