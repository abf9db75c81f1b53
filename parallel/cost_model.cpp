// with_checkpointing (cost_model.h): the executor's recomputation and stash, as simulator costs.
#include "parallel/cost_model.h"

namespace minipipe::parallel {

Costs with_checkpointing(Costs costs, Checkpoint mode, int chunks) {
  check_costs(costs, chunks);
  if (mode == Checkpoint::Never) return costs;
  const std::vector<double> input = costs.message_bytes.empty() ? costs.activation_bytes : costs.message_bytes;
  if (costs.activation_bytes.empty()) costs.activation_bytes.assign(static_cast<size_t>(chunks), 0.0);
  if (costs.message_bytes.empty()) costs.message_bytes = input;  // messages keep their size
  for (int c = 0; c < chunks; ++c) {
    if (mode == Checkpoint::ExceptLast && c == chunks - 1) continue;
    const size_t i = static_cast<size_t>(c);
    costs.backward[i] += costs.forward[i];
    costs.activation_bytes[i] = c == 0 || input.empty() ? 0.0 : input[i - 1];
  }
  return costs;
}

}  // namespace minipipe::parallel
