// Data parallelism: R replicas of a model (or of one pipeline stage), each on its own shard of the
// batch, average their gradients with all_reduce over the replicas' communicator. Gradients go in
// buckets of at most bucket_mb, filled in reverse registration order (the order backward produces
// them, as PyTorch's DDP does); with overlap on, each bucket's all_reduce starts as soon as the
// last gradient in it is complete (autograd's post-accumulate hook) and runs while backward goes
// on. ZeRO stage 1 as an option: each replica keeps optimizer state for its share of the
// parameters only, updates those, and sends them to the others.
//
//   DataParallel dp(pipe.parameters(), *grid.data, {.backwards_per_step = M});
//   optim::AdamW opt(dp.optimizer_params(), ...);
//   dp.zero_grad(); loss = pipe.train_step(shard_x, shard_y, first_row);
//   dp.finish_gradients(); loss = dp.average(loss); opt.step(); dp.after_step();
// (dp.zero_grad, not opt.zero_grad: with zero1 the optimizer holds only this replica's share.)
#pragma once

#include <chrono>
#include <memory>
#include <vector>

#include "nn/optim.h"
#include "parallel/communicator.h"

namespace minipipe::parallel {

struct DataParallelOptions {
  double bucket_mb = 25;       // bucket size cap in MiB (PyTorch DDP's default); a larger tensor gets its own
  bool overlap = true;         // reduce buckets during backward as they fill; false: all after backward
  int backwards_per_step = 1;  // backward passes through each parameter per step (the micro-batches)
  bool zero1 = false;          // shard the optimizer state over the replicas
};

class DataParallel {
 public:
  // Collective over `replicas`. `params` in registration order (Module::parameters()), the same
  // shapes on every replica; their values must be equal too (a checksum, compared on every rank:
  // replicas built from different seeds are an error naming them).
  DataParallel(std::vector<Tensor> params, Communicator& replicas, DataParallelOptions opts);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  // Drops every parameter's gradient (all of them: with zero1 the optimizer holds only a share).
  void zero_grad();
  // After the step's backward passes (collective): every bucket reduced, .grad() of every
  // parameter the mean over the replicas (zero where no replica had one). Resets for the next step.
  void finish_gradients();
  // The mean of a number over the replicas (collective): the batch's loss from the shards' losses.
  double average(double value);

  // What this replica's optimizer should hold: every parameter, or with zero1 its share only.
  std::vector<Tensor> optimizer_params() const;
  // The same for parameter groups (weight decay on some only): each group keeps this replica's share.
  std::vector<optim::ParamGroup> optimizer_groups(std::vector<optim::ParamGroup> groups) const;
  // After the optimizer step (collective): with zero1, every share goes from its owner to the
  // other replicas (one broadcast per owner); without, nothing.
  void after_step();

  struct Bucket {
    std::vector<size_t> params;  // indices into the parameter list, in the order they fill
    int64_t numel = 0;
    DType dtype = DType::Float32;
  };
  const std::vector<Bucket>& buckets() const { return buckets_; }
  int owner(size_t param) const { return owner_[param]; }  // zero1: which replica updates it
  // Seconds the last finish_gradients waited for reductions: with overlap, what backward did not hide.
  double exposed_seconds() const { return exposed_; }
  // Buckets the last step started from the hooks, during backward (the rest started in finish_gradients).
  int launched_during_backward() const { return launched_early_; }
  // Over every step so far: steps, and the seconds finish_gradients waited in all.
  int steps() const { return steps_; }
  double total_exposed_seconds() const { return total_exposed_; }
  int replicas() const { return comm_.size(); }

 private:
  bool solo() const { return comm_.size() == 1; }
  void on_ready(size_t param);
  void launch_ready();
  void launch(size_t b);

  std::vector<Tensor> params_;
  Communicator& comm_;
  DataParallelOptions opts_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;  // param -> bucket
  std::vector<int> owner_;
  std::vector<int> hook_ids_;
  // Per step: how many backwards reached each parameter, complete gradients per bucket, and the
  // buckets launched so far (always in bucket order: every replica starts them in the same order).
  std::vector<int> reached_;
  std::vector<size_t> ready_;
  size_t launched_ = 0;
  std::vector<Tensor> flat_;  // one buffer per bucket
  std::vector<std::unique_ptr<Request>> pending_;
  double exposed_ = 0, total_exposed_ = 0;
  int launched_early_ = 0, steps_ = 0;
};

}  // namespace minipipe::parallel
