// Pipe: the high-level pipeline API, in the spirit of torchgpipe's Pipe(model, chunks) and PyTorch's
// pipelining. Wrap an nn::Sequential, say how to cut and schedule it, and call train_step(inputs,
// targets). Every rank runs the same code (SPMD) — a thread under the `local` communicator, a
// process under `mpi` — and constructs its Pipe over the whole model; each keeps only its chunks:
//
//   parallel::launch({.ranks = 2}, [&](parallel::RankContext& ctx) {
//     parallel::Pipe pipe(model, ctx.comm, {.stages = 2, .microbatches = 4, .loss = cross_entropy});
//     optim::AdamW opt(pipe.parameters(), {.lr = 1e-3});
//     for (...) { opt.zero_grad(); double loss = pipe.train_step(x, y); opt.step(); }
//   });
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "nn/checkpoint.h"
#include "parallel/executor.h"
#include "parallel/partition.h"

namespace minipipe::parallel {

struct PipeOptions {
  int stages = 1;                      // P: pipeline ranks; the communicator must have exactly P
  int microbatches = 1;                // M: a training batch of B rows is cut into M of B/M rows
  std::string schedule = "1f1b";       // gpipe, 1f1b, interleaved, zb-h1, zb-h2, or the asynchronous
                                       // pipedream and 2bw (which step the optimizer: set_optimizer)
  int virtual_chunks = 1;              // v: chunks per rank (interleaved only): P·v chunks in all
  Checkpoint checkpoint = Checkpoint::Never;
  std::string partition = "uniform";   // uniform (equal layer counts), params, or time (profiled)
  Tensor profile_sample{};             // one micro-batch of inputs: layer sizes for describe(), and the
                                       // timing for partition = time (which needs it)
  uint64_t seed = 0;                   // dropout masks: what the single-device run binds to get the same
  LossFn loss;                         // one micro-batch's mean loss; needed by train_step
  std::string fingerprint{};           // more "key=value" fields every rank must agree on (flags)
  Communicator* replicas = nullptr;    // this stage's data-parallel replicas (grid.h), if any: the
                                       // profiled cut is replica 0's, so every replica cuts alike
  std::vector<int> stage_replicas{};   // 1F1B-RR: ranks per stage (empty: one each). Stage s runs on
                                       // R_s ranks, numbered stage by stage; micro-batch m on replica
                                       // m mod R_s; the communicator has sum(R_s) ranks. gpipe or 1f1b.
  int window = 0;                      // 2bw: micro-batches per weight update, >= P - 1 or all M (0: all M)
  bool weight_stashing = true;         // pipedream: B reads the weights its F read (false: the newest; for
                                       // teaching what stashing fixes)
  bool vertical_sync = false;          // pipedream: every stage reads the version stage 0 read
  bool async_sends = true;             // sends that do not wait for their receives (lower_async): a rank
                                       // waits only for data it needs next (false: blocking sends, lower())
  Device device = Device::cpu();       // where this rank's chunks compute (RankContext::device): its
                                       // layers move there; batches come and outputs go on the CPU
};

class Pipe {
 public:
  // Collective: every rank of `comm` calls it with the same model (built from the same seed) and
  // options — checked, the first difference is an error on every rank. Cuts the model into P·v
  // chunks (chunk c on rank c mod P), binds each of this rank's chunks to its own RandomContext,
  // then builds, lowers and validates the schedule.
  Pipe(std::shared_ptr<nn::Sequential> model, Communicator& comm, PipeOptions opts);

  // One training step (collective): the mean loss over the batch, on every rank. Gradients of this
  // rank's parameters accumulate over the M micro-batches and equal the full batch's; the caller
  // zeroes them between steps and steps its optimizer after this returns (after the flush).
  // Every rank passes the same batch (only the first stage reads inputs, the last targets).
  // `first_row`: the global index of the batch's row 0 — a data-parallel replica's shard starts
  // there — so dropout masks are those of the same rows in the whole batch.
  double train_step(const Tensor& inputs, const Tensor& targets, int64_t first_row = 0);
  // Forward only, in eval mode without a graph (collective): the model's output [B, ...] on the
  // last stage's rank (on the CPU), an undefined tensor elsewhere. Any B: cut into min(M, B) near-equal parts.
  Tensor predict(const Tensor& inputs);
  // Sum over the micro-batches of metric(output, targets) (e.g. correct predictions, or the
  // summed loss), computed on the last stage's rank and returned on every rank (collective).
  double evaluate(const Tensor& inputs, const Tensor& targets,
                  const std::function<double(const Tensor& output, const Tensor& targets)>& metric);

  // The asynchronous schedules (pipedream, 2bw) step this rank's optimizer inside train_step, after
  // the backwards weight_versions.h says: give it here, over exactly parameters(), before the first
  // step, and do not step it yourself. Each train_step then runs M micro-batches with no flush between
  // updates and drains once at its end, leaving the newest weights in the parameters.
  void set_optimizer(optim::Optimizer& opt);
  bool asynchronous() const { return async_.mode != AsyncMode::None; }
  const AsyncOptions& async_options() const { return async_; }
  int64_t updates() const { return updates_; }  // optimizer steps each stage has made (async)
  // Async: the most weight versions this rank held at once over the run, and their bytes (the
  // parameters' own copy included).
  int peak_weight_versions() const { return peak_versions_; }
  int64_t peak_weight_version_bytes() const { return peak_version_bytes_; }

  // Global-norm clipping across the pipeline (collective): the norm of every stage's gradients
  // together, all-reduced, so it means what optim::clip_grad_norm_ means on one device.
  double clip_grad_norm_(double max_norm);
  void zero_grad();
  void train(bool on = true);  // this rank's chunks
  void eval() { train(false); }

  std::vector<Tensor> parameters() const;                // this rank's, for its optimizer
  std::shared_ptr<nn::Sequential> local_layers() const;  // this rank's layers, model names kept

  // Checkpoints (collective): one safetensors file with the unpipelined model's tensor names,
  // gathered on rank 0 and written atomically; loaded by rank 0 and scattered. So a model trained
  // with P = 4 loads with P = 1 or 2, and the other way round.
  void save(const std::string& path, const nn::Metadata& metadata = {});
  void load(const std::string& path);
  // Copies every rank's parameters into rank 0's model (collective): afterwards rank 0 holds the
  // whole trained model, e.g. to sample from it.
  void gather();

  int rank() const { return comm_.rank(); }
  int stages() const { return opts_.stages; }
  int microbatches() const { return opts_.microbatches; }
  int num_chunks() const { return program_.num_chunks; }
  // The last stage's rank (its first replica): where predict() returns the output.
  int last_rank() const { return program_.rank_of(program_.num_chunks - 1); }
  bool is_last_stage() const { return rank() == last_rank(); }
  // With stage replicas: the ranks of this rank's stage (gradients are summed over them after every
  // step); null otherwise.
  Communicator* stage_group() const { return stage_comm_.get(); }
  uint64_t step() const { return step_; }
  const PipeOptions& options() const { return opts_; }
  const Partition& partition() const { return partition_; }
  const Program& program() const { return program_; }  // the lowered training program
  const std::vector<Chunk>& chunks() const { return chunks_; }
  const Executor& executor() const { return *train_exec_; }  // the last training step's records
  // The most activation bytes this rank stashed for backward at once, over every step so far.
  int64_t peak_stash_bytes() const { return peak_stash_; }
  // The partition table and the schedule in a few lines (every rank computes the same).
  std::string describe() const;

 private:
  const std::vector<TensorSpec>& specs_for(const Tensor& inputs);
  std::vector<TensorSpec> infer_specs(const Tensor& inputs);
  Executor& forward_executor(int M, const std::vector<TensorSpec>& specs);
  template <typename Fn>
  void for_each_local_tensor(int owner, Fn fn) const;
  void sum_replica_gradients();
  void check_replicas(const std::vector<Tensor>& params);  // this rank's parameters, before binding
  void check_async_options();  // pipedream / 2bw and their flags; sets async_
  bool counts_for_stage() const { return !stage_comm_ || stage_comm_->rank() == 0; }
  // Whether rank r is the first rank of some chunk (gather() collects from those).
  bool counts_as_owner(int r) const {
    for (int c = 0; c < program_.num_chunks; ++c)
      if (program_.rank_of(c) == r) return true;
    return false;
  }

  std::shared_ptr<nn::Sequential> model_;
  Communicator& comm_;
  PipeOptions opts_;
  Partition partition_;
  LayerCosts costs_;  // per layer, for describe(): profiled seconds (time) or parameters
  Program program_;
  std::vector<Chunk> chunks_;
  std::unique_ptr<Communicator> stage_comm_;  // stage replicas: this stage's ranks
  std::unique_ptr<Executor> train_exec_;
  std::map<int, std::unique_ptr<Executor>> forward_execs_;  // by micro-batch count
  std::vector<std::pair<TensorSpec, std::vector<TensorSpec>>> specs_;  // by the inputs' per-row spec
  uint64_t step_ = 0;
  int64_t peak_stash_ = 0;
  // Asynchronous schedules: the rule, the optimizer, this rank's weight versions, updates so far.
  AsyncOptions async_;
  optim::Optimizer* optimizer_ = nullptr;
  std::unique_ptr<WeightVersions> versions_;
  int64_t updates_ = 0;
  int peak_versions_ = 0;
  int64_t peak_version_bytes_ = 0;
};

}  // namespace minipipe::parallel
