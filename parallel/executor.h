// The executor: runs one rank's lowered Program — its F / B / SEND / RECV actions, in order —
// against the rank's chunks of the model and a Communicator. One call is one training step over M
// micro-batches (or one forward-only pass): activations are stashed from F to B (or only the
// chunk's input, recomputed in B, under activation checkpointing), the last chunk's loss is scaled
// by 1/M so the accumulated gradients equal the full batch's, and every action is recorded with
// its time, the bytes it moved and the activation bytes held after it. pipe.h drives it.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "autograd/node.h"
#include "nn/sequential.h"
#include "parallel/communicator.h"
#include "parallel/schedule.h"
#include "parallel/weight_versions.h"

namespace minipipe::parallel {

// Activation checkpointing: which chunks keep only their input from F to B and recompute the
// forward inside B. except_last: every chunk but the model's last (whose B follows its F at once
// in 1F1B, so recomputing it would buy little).
enum class Checkpoint { Never, ExceptLast, Always };
Checkpoint parse_checkpoint(std::string_view name);  // "never", "except_last", "always"
const char* checkpoint_name(Checkpoint c);

// One chunk of the model on this rank.
struct Chunk {
  int index = 0;                          // its place in the model: 0 .. C-1
  std::shared_ptr<nn::Sequential> module;  // its layers, a slice of the model
  std::shared_ptr<RandomContext> random;   // bound to `module`: its dropout masks
  Device device = Device::cpu();           // where its layers live: inputs, targets and received
                                           // tensors are brought here
};

// The loss of one micro-batch: the mean over its rows (as cross_entropy), a scalar.
using LossFn = std::function<Tensor(const Tensor& output, const Tensor& target)>;

// What a step runs on: per micro-batch, its rows, the global index of its first row (the dropout
// keys), and its inputs (needed by the rank of chunk 0) and targets (the rank of the last chunk).
struct MicroBatches {
  std::vector<int64_t> rows, offsets;
  std::vector<Tensor> inputs, targets;
  int size() const { return static_cast<int>(rows.size()); }
};

// One executed action.
struct ActionRecord {
  Action action;
  double start = 0, end = 0;  // seconds since the step began (steady clock)
  int64_t bytes = 0;          // sent or received by a SEND / RECV
  int64_t stash_bytes = 0;    // activation bytes stashed for backward on this rank after the action
  int64_t live_bytes = 0;     // all bytes this rank holds after it (its MemoryAccount)
};

// An asynchronous step (PipeDream, 2BW: weight_versions.h): the stage's weight versions, this
// call's plan for them (computed for this rank over this program), and each micro-batch loss's scale
// (1 when every micro-batch is its own update, 1/W over a window of W).
struct AsyncStep {
  WeightVersions* versions = nullptr;
  const VersionPlan* plan = nullptr;
  double loss_scale = 1;
};

class Executor {
 public:
  // `program` must be lowered and valid (validate()); `chunks` are this rank's, in any order.
  // `input_specs[c]`: dtype and per-row shape (without dim 0) of chunk c's input, for every chunk
  // whose input is received: a message of another shape is an error naming both ranks.
  Executor(Program program, int rank, std::vector<Chunk> chunks, Communicator& comm, Checkpoint mode,
           std::vector<TensorSpec> input_specs);

  // One training step: returns the sum of the last chunk's (unscaled) micro-batch losses on its
  // rank, 0 elsewhere. Parameter gradients accumulate into .grad() (zero them between steps).
  // `step` keys the dropout masks.
  double train_step(const MicroBatches& mb, const LossFn& loss, uint64_t step);
  // The same with the optimizer inside (async): before each F and B the stage's parameters take the
  // version the plan names; after a B the plan marks, the optimizer steps.
  double train_step(const MicroBatches& mb, const LossFn& loss, uint64_t step, const AsyncStep& async);
  // Forward only (program.forward_only), no graph: the last chunk's output per micro-batch on its
  // rank, nothing elsewhere.
  std::vector<Tensor> forward(const MicroBatches& mb, uint64_t step);

  // The last call's actions, in order. Stashed bytes are measured per (chunk, micro-batch) on the
  // rank's memory account: what F allocated and still holds once its output is sent — the graph's
  // saved tensors, or only the input under checkpointing — plus a received input. stash_bytes()[c * M
  // + m] is that figure (-1: not this rank's), held from F to B; the peak is over the action list.
  // With W actions, what B leaves for W (each deferred Linear's input and output gradient) counts
  // from B to W.
  const std::vector<ActionRecord>& records() const { return records_; }
  // When the last call began on this rank's steady clock: records() are seconds after it. Traces
  // (trace.h) put every rank's records on one time base with it.
  std::chrono::steady_clock::time_point step_origin() const { return step_origin_; }
  // The specs of received inputs change with the inputs' per-row shape (pipe.h infers them).
  void set_input_specs(const std::vector<TensorSpec>& specs);
  const std::vector<int64_t>& stash_bytes() const { return stash_bytes_; }
  int64_t peak_stash_bytes() const { return peak_stash_; }
  // Async steps: the most weight versions this rank held at once in the last call, and their bytes.
  int peak_versions() const { return peak_versions_; }
  int64_t peak_version_bytes() const { return peak_version_bytes_; }
  // The rank's live bytes when the last call began: records' live_bytes minus this is what the
  // step itself holds at each point (stashes, messages, gradients).
  int64_t live_at_start() const { return live_at_start_; }
  const Program& program() const { return program_; }
  int rank() const { return rank_; }
  bool checkpointed(int chunk) const;

  // Message tags: the activation chunk c sends forward for micro-batch m, and the gradient it sends
  // back. Distinct per (direction, chunk, micro-batch), so a schedule mix-up is a wait on a named
  // message, never a silent swap.
  int forward_tag(int chunk, int m) const { return 2 * (chunk * program_.num_microbatches + m); }
  int backward_tag(int chunk, int m) const { return forward_tag(chunk, m) + 1; }

 private:
  // What a (chunk, micro-batch) holds between its F and its B.
  struct Stash {
    Tensor x;          // the chunk's input
    Tensor root;       // what backward starts from: the output (its data released once sent) or the loss
    Shape out_shape;   // the output's shape: the gradient coming back must have it
    DType out_dtype = DType::Float32;
    Generator generator{0};  // the chunk's sequential generator before F (replayed when recomputing)
  };
  struct Run;  // one call's state: the batch, the loss, the step, the outputs

  void run(Run& r);
  void forward_action(Run& r, int c, int m);
  void backward_action(Run& r, int c, int m);
  void send_forward(Run& r, int c, int m);
  void recv_forward(int c, int m, int rows);
  void send_backward(int c, int m);
  void recv_backward(int c, int m);
  // A send posted and not yet finished (with blocking sends, post() finishes it at once). The rank
  // holds the sent tensor until then, so it is freed on the rank's own thread and memory account
  // (on `local` the receiver copies it on its thread); a forward send's slot then learns what
  // dropping its output freed.
  struct InFlight {
    std::unique_ptr<Request> request;
    Tensor data;
    int64_t forward_slot = -1;  // at(c, m) of a SEND_F, -1 for a SEND_B
  };
  void post(std::unique_ptr<Request> request, Tensor data, int64_t forward_slot);
  void finish_sends(bool all);  // the finished ones (all: waits for every one)
  const Chunk& chunk(int c) const;
  size_t at(int c, int m) const { return static_cast<size_t>(c * program_.num_microbatches + m); }

  Program program_;
  int rank_;
  std::vector<Chunk> chunks_;
  std::vector<int> local_;  // chunk -> index into chunks_, -1 when on another rank
  Communicator& comm_;
  Checkpoint mode_;
  std::vector<TensorSpec> input_specs_;
  std::shared_ptr<MemoryAccount> account_;  // where this rank's allocations go (measured)

  // Per (chunk, micro-batch), index at(c, m): tensors waiting for the action that consumes them.
  std::vector<Tensor> in_f_;   // chunk c's input, received or passed on this rank
  std::vector<Tensor> out_f_;  // chunk c's output, to send
  std::vector<Tensor> in_b_;   // the gradient of chunk c's output
  std::vector<Tensor> out_b_;  // the gradient of chunk c's input, to send
  std::vector<bool> received_;  // in_f_ came from another rank (its bytes count as stashed)
  std::vector<Stash> stash_;
  std::vector<autograd::WeightGradQueue> weight_work_;  // zero-bubble: what B left for the W action
  std::vector<int64_t> weight_bytes_;                    // and the bytes it holds from B to W
  std::vector<int64_t> stash_bytes_;
  std::vector<InFlight> in_flight_;
  int64_t peak_stash_ = 0, live_at_start_ = 0;
  int peak_versions_ = 0;
  int64_t peak_version_bytes_ = 0;
  std::vector<ActionRecord> records_;
  std::chrono::steady_clock::time_point step_origin_{};
};

}  // namespace minipipe::parallel
