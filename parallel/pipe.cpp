// Pipe: options checked on every rank, the cut (uniform / params / profiled time), this rank's
// chunks with their own random contexts, the lowered schedule, the boundary shapes (inferred by
// one forward pass along the pipeline), then training, evaluation, clipping and checkpoints.
#include "parallel/pipe.h"

#include <cmath>
#include <iomanip>
#include <set>
#include <sstream>

#include "nn/transformer.h"
#include "parallel/generators.h"
#include "parallel/lowering.h"
#include "parallel/profile.h"
#include "parallel/simulator.h"
#include "parallel/validator.h"

namespace minipipe::parallel {

namespace {

// Tags above the executor's: the boundary shapes and the checkpoint transfers.
int spec_tag(int chunk) { return Communicator::kMaxTag - 1 - chunk; }
constexpr int kCheckpointTag = Communicator::kMaxTag / 2;

constexpr int64_t kSpecLen = 10;  // dtype, ndim, up to 8 sizes
Tensor encode(const TensorSpec& s) {
  MP_CHECK(s.shape.size() <= 8, "Pipe: stage boundaries of up to 9 dims are supported, got ", s.str());
  Tensor t = zeros({kSpecLen}, DType::Int64);
  int64_t* p = t.data_ptr<int64_t>();
  p[0] = static_cast<int64_t>(s.dtype);
  p[1] = static_cast<int64_t>(s.shape.size());
  for (size_t i = 0; i < s.shape.size(); ++i) p[2 + i] = s.shape[i];
  return t;
}
TensorSpec decode(const Tensor& t) {
  const int64_t* p = t.data_ptr<int64_t>();
  TensorSpec s{Shape(p + 2, p + 2 + p[1]), static_cast<DType>(p[0])};
  return s;
}
TensorSpec per_row(const Tensor& t) { return {Shape(t.sizes().begin() + 1, t.sizes().end()), t.dtype()}; }

// Rows [lo, hi) of each micro-batch: near-equal parts (equal when M divides the rows); offsets are
// global row indices (first_row + lo), the dropout keys.
MicroBatches split(const Tensor& inputs, const Tensor& targets, int M, int64_t first_row = 0) {
  MicroBatches mb;
  const int64_t B = inputs.size(0);
  for (int m = 0; m < M; ++m) {
    const int64_t lo = B * m / M, hi = B * (m + 1) / M;
    mb.rows.push_back(hi - lo);
    mb.offsets.push_back(first_row + lo);
    mb.inputs.push_back(ops::narrow(inputs, 0, lo, hi - lo));
    if (targets.defined()) mb.targets.push_back(ops::narrow(targets, 0, lo, hi - lo));
  }
  return mb;
}

}  // namespace

Pipe::Pipe(std::shared_ptr<nn::Sequential> model, Communicator& comm, PipeOptions opts)
    : model_(std::move(model)), comm_(comm), opts_(std::move(opts)) {
  MP_CHECK(model_ && model_->size() > 0, "Pipe: the model has no layers");
  const int P = opts_.stages, M = opts_.microbatches, v = opts_.virtual_chunks;
  const int L = static_cast<int>(model_->size()), C = P * v;
  MP_CHECK(P >= 1 && M >= 1 && v >= 1, "Pipe: stages, micro-batches and virtual chunks must be >= 1, got ", P, ", ",
           M, ", ", v);
  MP_CHECK(opts_.schedule == "gpipe" || opts_.schedule == "1f1b" || opts_.schedule == "interleaved" ||
               opts_.schedule == "zb-h1" || opts_.schedule == "zb-h2" || opts_.schedule == "pipedream" ||
               opts_.schedule == "2bw",
           "Pipe: unknown schedule '", opts_.schedule,
           "' (expected gpipe, 1f1b, interleaved, zb-h1, zb-h2, pipedream or 2bw)");
  MP_CHECK(v == 1 || opts_.schedule == "interleaved", "Pipe: --virtual ", v, " needs --schedule interleaved, got ",
           opts_.schedule);
  const bool rr = !opts_.stage_replicas.empty();
  int world = P;
  if (rr) {
    MP_CHECK(static_cast<int>(opts_.stage_replicas.size()) == P, "Pipe: --stage-replicas lists ",
             opts_.stage_replicas.size(), " stages but --stages is ", P);
    MP_CHECK(opts_.schedule == "1f1b" || opts_.schedule == "gpipe", "Pipe: stage replicas run gpipe or 1f1b, got ",
             opts_.schedule);
    MP_CHECK(opts_.replicas == nullptr || opts_.replicas->size() == 1,
             "Pipe: stage replicas and data-parallel replicas (--dp) do not combine");
    world = 0;
    for (int R : opts_.stage_replicas) {
      MP_CHECK(R >= 1, "Pipe: every stage needs at least one replica, got ", R);
      world += R;
    }
  }
  MP_CHECK(comm_.size() == world, "Pipe: ", rr ? "the stage replicas need" : "--stages " + std::to_string(P) + " needs",
           " a communicator of ", world, " ranks, got ", comm_.size(),
           std::string(comm_.backend()) == "mpi" ? " (run mpirun -np " + std::to_string(world) + ")" : "");
  MP_CHECK(C <= L, "Pipe: cannot cut a model of ", L, " layers into ", C, " chunks (", P, " stages x ", v,
           " virtual chunks): every chunk needs at least one layer");
  check_async_options();
  MP_CHECK(opts_.partition == "uniform" || opts_.partition == "params" || opts_.partition == "time",
           "Pipe: unknown partition '", opts_.partition, "' (expected uniform, params or time)");
  MP_CHECK(opts_.partition != "time" || opts_.profile_sample.defined(),
           "Pipe: partition 'time' needs a micro-batch of inputs to profile on (PipeOptions::profile_sample)");

  // The same options and the same model on every rank: a difference is an error on all of them.
  std::ostringstream fields;
  uint64_t names = 0;
  for (const auto& [name, t] : model_->named_parameters()) names = mix64(names ^ hash64(name + shape_str(t.sizes())));
  fields << "stages=" << P << " microbatches=" << M << " schedule=" << opts_.schedule << " virtual=" << v
         << " checkpoint=" << checkpoint_name(opts_.checkpoint) << " partition=" << opts_.partition
         << " seed=" << opts_.seed << " layers=" << L << " parameters=" << model_->num_parameters()
         << " parameter_names=" << names << " stage_replicas=" << shape_str(Shape(opts_.stage_replicas.begin(), opts_.stage_replicas.end()))
         << " window=" << opts_.window << " weight_stashing=" << opts_.weight_stashing
         << " vertical_sync=" << opts_.vertical_sync << " async_sends=" << opts_.async_sends << " "
         << opts_.fingerprint;
  check_same_on_all_ranks(comm_, fields.str(), "pipeline options");

  // The schedule: generated, lowered (sends and receives that cannot deadlock), validated.
  const Program compute = rr ? replicated(opts_.schedule, opts_.stage_replicas, M) : make_schedule(opts_.schedule, P, M, v);
  program_ = opts_.async_sends ? lower_async(compute) : lower(compute);
  validate(program_);
  if (program_.replicated()) {  // each stage's replicas sum their gradients after every step
    int stage = 0;
    while (!program_.runs_on(rank(), stage)) ++stage;
    stage_comm_ = comm_.split(stage, rank());
  }
  MP_CHECK(2 * C * M < kCheckpointTag, "Pipe: ", C, " chunks x ", M, " micro-batches need more message tags than a "
                                                                    "communicator has");

  // The cut. With a sample micro-batch, rank 0 measures each layer's output (and with partition
  // time, its forward + backward time) once and broadcasts them: timings differ from run to run.
  for (size_t i = 0; i < model_->size(); ++i) costs_.params.push_back((*model_)[i]->num_parameters());
  costs_.cost.assign(costs_.params.begin(), costs_.params.end());
  if (opts_.profile_sample.defined()) {
    // With replicas, replica 0's stage 0 measures; every replica takes its numbers (one cut for all).
    const bool measures = rank() == 0 && (!opts_.replicas || opts_.replicas->rank() == 0);
    Tensor cost = zeros({L}, DType::Float64), bytes = zeros({L}, DType::Int64);
    if (measures) {
      LayerCosts measured;
      if (opts_.partition == "time") {
        measured = profile_layers(*model_, opts_.profile_sample);
      } else {  // sizes only: one forward without a graph
        NoGradGuard no_grad;
        const bool was_training = model_->is_training();
        model_->eval();
        Tensor h = opts_.profile_sample;
        for (size_t i = 0; i < model_->size(); ++i) {
          h = (*model_)[i]->forward(h);
          measured.output_bytes.push_back(static_cast<int64_t>(h.nbytes()));
        }
        model_->train(was_training);
        measured.cost = costs_.cost;
      }
      for (int i = 0; i < L; ++i) {
        cost.data_ptr<double>()[i] = measured.cost[static_cast<size_t>(i)];
        bytes.data_ptr<int64_t>()[i] = measured.output_bytes[static_cast<size_t>(i)];
      }
    }
    comm_.broadcast(cost, 0);
    comm_.broadcast(bytes, 0);
    if (opts_.replicas) {
      opts_.replicas->broadcast(cost, 0);
      opts_.replicas->broadcast(bytes, 0);
    }
    costs_.cost = cost.to_vector<double>();
    costs_.output_bytes = bytes.to_vector<int64_t>();
  }
  if (opts_.partition == "uniform") partition_ = uniform(L, C);
  if (opts_.partition == "params") partition_ = by_params(costs_.params, C);
  if (opts_.partition == "time") partition_ = by_cost(costs_.cost, C);

  // Tied weights would need their gradients summed across the ranks that share them.
  std::map<const Storage*, std::pair<int, std::string>> owner;
  for (int c = 0; c < C; ++c) {
    auto slice = model_->slice(partition_.begin(c), partition_.end(c));
    for (const auto& [name, t] : slice->named_parameters()) {
      auto [it, fresh] = owner.emplace(t.storage().get(), std::make_pair(c, name));
      MP_CHECK(fresh || program_.rank_of(it->second.first) == program_.rank_of(c), "Pipe: parameter '", name,
               "' (chunk ", c, ") is the same tensor as '", it->second.second, "' (chunk ", it->second.first,
               "), and the two chunks run on different ranks: tied weights across stages are not supported");
    }
    for (size_t i = 0; i < slice->size(); ++i) {
      auto* head = dynamic_cast<nn::LMHead*>((*slice)[i].get());
      MP_CHECK(!(head && head->tied && P > 1), "Pipe: the LM head shares the token embedding (tie_weights), and the "
                                               "two sit on different ranks when cut into ",
               P, " stages: tied weights across stages are not supported (train with --stages 1 or without "
               "--tie-weights)");
    }
  }

  // Replicas must own their weights before anything writes to the layers (binding random contexts).
  if (stage_comm_) {
    std::vector<Tensor> mine;
    for (int c = 0; c < C; ++c)
      if (program_.runs_on(rank(), c))
        for (const Tensor& t : model_->slice(partition_.begin(c), partition_.end(c))->parameters()) mine.push_back(t);
    check_replicas(mine);
  }

  // This rank's chunks: slices sharing the model's layers, each with its own random context.
  for (int c = 0; c < C; ++c) {
    if (!program_.runs_on(rank(), c)) continue;
    Chunk ch{c, model_->slice(partition_.begin(c), partition_.end(c)), std::make_shared<RandomContext>(opts_.seed),
             opts_.device};
    ch.module->to(opts_.device);  // in place: the model's own handles follow
    ch.random->generator.manual_seed(mix64(opts_.seed + static_cast<uint64_t>(c) + 1));
    ch.module->set_random_context(ch.random);
    chunks_.push_back(std::move(ch));
  }
  train_exec_ = std::make_unique<Executor>(program_, rank(), chunks_, comm_, opts_.checkpoint,
                                           std::vector<TensorSpec>(static_cast<size_t>(C)));
}

void Pipe::check_async_options() {
  // The asynchronous schedules and what they do not combine with: each named, never run silently
  // with other semantics.
  const std::string& s = opts_.schedule;
  async_.mode = async_mode_of(s);
  if (async_.mode == AsyncMode::None) {
    MP_CHECK(opts_.window == 0, "Pipe: --window ", opts_.window, " applies to --schedule 2bw, not ", s);
    MP_CHECK(opts_.weight_stashing, "Pipe: --no-weight-stashing applies to --schedule pipedream, not ", s);
    MP_CHECK(!opts_.vertical_sync, "Pipe: --vertical-sync applies to --schedule pipedream, not ", s);
    return;
  }
  const int P = opts_.stages, M = opts_.microbatches;
  MP_CHECK(opts_.stage_replicas.empty(), "Pipe: --schedule ", s, " and --stage-replicas do not combine (each "
           "replica would step its own optimizer after its own micro-batches)");
  MP_CHECK(opts_.replicas == nullptr || opts_.replicas->size() == 1, "Pipe: --schedule ", s, " and --dp ",
           opts_.replicas ? opts_.replicas->size() : 1, " do not combine: each stage steps its optimizer inside "
           "the pipeline, before an all-reduce across replicas could average its gradient");
  if (async_.mode == AsyncMode::TwoBW) {
    const int W = opts_.window == 0 ? M : opts_.window;
    MP_CHECK(W >= 1 && M % W == 0, "Pipe: --window ", W, " does not divide --microbatches ", M,
             " (2bw runs whole windows in a step)");
    MP_CHECK(W >= P - 1 || W == M, "Pipe: --window ", W, " is shorter than P - 1 = ", P - 1, ": with --stages ", P,
             " the first stage starts window t + 1 before window t - 1's update exists, so 2bw's one-step delay "
             "cannot hold (a window of all M micro-batches, --window 0, always can: the step drains between windows)");
    MP_CHECK(opts_.weight_stashing, "Pipe: --schedule 2bw and --no-weight-stashing do not combine (2bw keeps two "
             "versions by construction)");
    MP_CHECK(!opts_.vertical_sync, "Pipe: --schedule 2bw and --vertical-sync do not combine (every 2bw stage reads "
             "the same version already)");
    async_.window = W;
  } else {
    MP_CHECK(opts_.window == 0, "Pipe: --window ", opts_.window, " applies to --schedule 2bw, not pipedream (which "
             "updates after every micro-batch)");
    MP_CHECK(opts_.weight_stashing || opts_.checkpoint == Checkpoint::Never, "Pipe: --no-weight-stashing and "
             "--checkpoint ", checkpoint_name(opts_.checkpoint), " do not combine: recomputing the forward in B "
             "would read other weights than the forward did");
    MP_CHECK(opts_.weight_stashing || !opts_.vertical_sync, "Pipe: --vertical-sync and --no-weight-stashing do "
             "not combine (vertical sync picks which stashed version a micro-batch reads)");
  }
  async_.weight_stashing = opts_.weight_stashing;
  async_.vertical_sync = opts_.vertical_sync;
}

void Pipe::set_optimizer(optim::Optimizer& opt) {
  MP_CHECK(asynchronous(), "Pipe::set_optimizer: schedule ", opts_.schedule, " leaves the optimizer to the caller "
           "(step it after train_step); only pipedream and 2bw step it inside the pipeline");
  std::set<const TensorImpl*> mine, its;
  for (const Tensor& p : parameters()) mine.insert(p.impl());
  for (const optim::ParamGroup& g : opt.param_groups())
    for (const Tensor& p : g.params) its.insert(p.impl());
  MP_CHECK(mine == its, "Pipe::set_optimizer: the optimizer must hold exactly this rank's parameters "
           "(pipe.parameters(): ", mine.size(), " tensors), it holds ", its.size(),
           mine.size() == its.size() ? " others" : "");
  MP_CHECK(!versions_, "Pipe::set_optimizer: the optimizer is set once, before the first step");
  optimizer_ = &opt;
}

void Pipe::check_replicas(const std::vector<Tensor>& params) {
  // The replicas of a stage sum their gradients in one flat buffer (one dtype), and each must own
  // its weights: under `local` the ranks are threads, and replicas that share one model's tensors
  // would run the same layers at once and race. Every rank learns of a problem on any rank.
  std::string problem;
  for (const Tensor& p : params)
    if (p.dtype() != params.front().dtype())
      problem = "stage replicas need every parameter of a stage in one dtype, got " +
                std::string(dtype_name(params.front().dtype())) + " and " + dtype_name(p.dtype());
  if (!params.empty() && std::string(comm_.backend()) == "local") {
    std::ostringstream mine;
    mine << static_cast<const void*>(params.front().storage().get());
    const std::vector<std::string> all = all_gather_strings(*stage_comm_, mine.str());
    for (size_t i = 0; i < all.size(); ++i)
      for (size_t j = i + 1; j < all.size(); ++j)
        if (all[i] == all[j])
          problem = "replicas " + std::to_string(i) + " and " + std::to_string(j) + " of a stage hold the same "
                    "parameter tensors (one model object): under the local communicator each replica needs its "
                    "own copy of the model (one per replica index, as the trainers build)";
  }
  const std::vector<std::string> problems = all_gather_strings(comm_, problem);
  for (size_t r = 0; r < problems.size(); ++r)
    MP_CHECK(problems[r].empty(), "Pipe: rank ", r, ": ", problems[r]);
}

std::vector<TensorSpec> Pipe::infer_specs(const Tensor& inputs) {
  // One forward of one row along the pipeline, in chunk order (so it cannot deadlock): each rank
  // learns the shape of what it will receive from the rank that will send it.
  const int C = program_.num_chunks;
  std::vector<TensorSpec> specs(static_cast<size_t>(C));
  specs[0] = per_row(inputs);
  NoGradGuard no_grad;
  for (const Chunk& ch : chunks_) {
    const int c = ch.index;
    if (c > 0 && program_.crosses(c - 1))
      specs[static_cast<size_t>(c)] = decode(comm_.recv({{kSpecLen}, DType::Int64}, program_.rank_of(c - 1),
                                                        spec_tag(c), "the shape of chunk " + std::to_string(c) + "'s input"));
    const TensorSpec& in = specs[static_cast<size_t>(c)];
    Shape one = in.shape;
    one.insert(one.begin(), 1);
    Tensor x = c == 0 ? ops::narrow(inputs, 0, 0, 1).to(ch.device) : zeros(one, {in.dtype, ch.device});
    const bool was_training = ch.module->is_training();
    ch.module->eval();
    Tensor y = ch.module->forward(x);
    ch.module->train(was_training);
    MP_CHECK(y.dim() >= 1 && y.size(0) == 1, "Pipe: chunk ", c, " maps one row to ", shape_str(y.sizes()),
             "; every layer must keep dim 0 as the batch dim");
    if (c + 1 == C) continue;
    if (!program_.crosses(c)) specs[static_cast<size_t>(c + 1)] = per_row(y);
    else if (program_.rank_of(c) == rank())  // a stage's first replica tells every replica of the next
      for (int q : program_.ranks_of(c + 1)) comm_.send(encode(per_row(y)), q, spec_tag(c + 1));
  }
  return specs;
}

const std::vector<TensorSpec>& Pipe::specs_for(const Tensor& inputs) {
  MP_CHECK(inputs.defined() && inputs.dim() >= 1 && inputs.size(0) >= 1, "Pipe: expected inputs with a batch dim, got ",
           inputs.defined() ? shape_str(inputs.sizes()) : "undefined");
  const TensorSpec key = per_row(inputs);
  for (const auto& [k, specs] : specs_)
    if (k == key) return specs;
  specs_.emplace_back(key, infer_specs(inputs));
  return specs_.back().second;
}

double Pipe::train_step(const Tensor& inputs, const Tensor& targets, int64_t first_row) {
  MP_CHECK(opts_.loss != nullptr, "Pipe::train_step: no loss function (PipeOptions::loss)");
  const int M = opts_.microbatches;
  const std::vector<TensorSpec>& specs = specs_for(inputs);
  const int64_t B = inputs.size(0);
  MP_CHECK(targets.defined() && targets.dim() >= 1 && targets.size(0) == B, "Pipe::train_step: ", B,
           " input rows but targets ", targets.defined() ? shape_str(targets.sizes()) : "undefined");
  MP_CHECK(B % M == 0, "Pipe::train_step: a batch of ", B, " rows does not split into ", M,
           " micro-batches of equal size (", B, " % ", M, " = ", B % M,
           "); equal micro-batches keep the summed gradients equal to the whole batch's");
  train_exec_->set_input_specs(specs);
  MP_CHECK(first_row >= 0, "Pipe::train_step: first_row must be >= 0, got ", first_row);
  if (stage_comm_)  // the replicas sum whole .grad()s: a gradient left from before would count R times
    for (const Chunk& ch : chunks_)
      for (const auto& [name, t] : ch.module->named_parameters())
        MP_CHECK(!t.grad().defined(), "Pipe::train_step: with stage replicas every gradient must be cleared "
                 "(zero_grad) before a step, but '", name, "' of chunk ", ch.index, " on rank ", rank(),
                 " still holds one");
  double sum = 0;
  if (asynchronous()) {
    MP_CHECK(optimizer_ != nullptr, "Pipe::train_step: --schedule ", opts_.schedule, " steps the optimizer inside "
             "the pipeline: give it to set_optimizer() before the first step");
    if (!versions_) versions_ = std::make_unique<WeightVersions>(parameters(), *optimizer_);
    const VersionPlan plan = plan_versions(program_, rank(), async_, updates_);
    const AsyncStep async{versions_.get(), &plan, async_.mode == AsyncMode::PipeDream ? 1.0 : 1.0 / async_.window};
    sum = train_exec_->train_step(split(inputs, targets, M, first_row), opts_.loss, step_, async);
    versions_->use(versions_->latest());  // the step drained: the newest weights are the model's
    updates_ += plan.updates;
    peak_versions_ = std::max(peak_versions_, train_exec_->peak_versions());
    peak_version_bytes_ = std::max(peak_version_bytes_, train_exec_->peak_version_bytes());
  } else {
    sum = train_exec_->train_step(split(inputs, targets, M, first_row), opts_.loss, step_);
  }
  peak_stash_ = std::max(peak_stash_, train_exec_->peak_stash_bytes());
  ++step_;
  if (comm_.size() == 1) return sum / M;
  if (stage_comm_) {
    sum_replica_gradients();  // the step's gradients: .grad() was checked empty before it
    // Each replica of the last stage knows the loss of its micro-batches: add them up.
    Tensor loss = full({1}, program_.runs_on(rank(), program_.num_chunks - 1) ? sum / M : 0.0, DType::Float64);
    comm_.all_reduce(loss);
    return loss.item();
  }
  // The last stage knows the loss; every rank reports it.
  Tensor loss = full({1}, rank() == last_rank() ? sum / M : 0.0, DType::Float64);
  comm_.broadcast(loss, last_rank());
  return loss.item();
}

void Pipe::sum_replica_gradients() {
  // Every replica's gradients hold its own micro-batches' share (each loss scaled by 1/M): summed
  // over the stage's replicas they are the whole batch's, the same on every replica, so the
  // replicas' optimizers keep their weights equal. One flat buffer, one all-reduce.
  std::vector<Tensor> params = parameters();
  int64_t n = 0;
  for (const Tensor& p : params) n += p.numel();
  if (n == 0) return;
  const DType dtype = params.front().dtype();  // one dtype: checked in the constructor
  Tensor flat = zeros({n}, {dtype, opts_.device});
  int64_t at = 0;
  for (const Tensor& p : params) {
    if (p.grad().defined()) ops::copy_(ops::narrow(flat, 0, at, p.numel()), ops::reshape(p.grad(), {-1}));
    at += p.numel();
  }
  stage_comm_->all_reduce(flat);
  at = 0;
  for (Tensor p : params) {
    Tensor g = ops::reshape(ops::narrow(flat, 0, at, p.numel()), p.sizes());
    if (p.grad().defined()) ops::copy_(p.mutable_grad(), g);
    else p.mutable_grad() = ops::contiguous(g);
    at += p.numel();
  }
}

Executor& Pipe::forward_executor(int M, const std::vector<TensorSpec>& specs) {
  auto it = forward_execs_.find(M);
  if (it == forward_execs_.end()) {
    const Program compute = forward_only(opts_.stages, M, opts_.virtual_chunks);
    Program p = opts_.async_sends ? lower_async(compute) : lower(compute);
    if (program_.replicated()) {
      // Inference runs on each stage's first replica; the other replicas sit it out.
      Program on_firsts = Program::empty(comm_.size(), p.num_chunks, M);
      on_firsts.forward_only = true;
      on_firsts.async_sends = p.async_sends;
      for (int c = 0; c < p.num_chunks; ++c) {
        on_firsts.chunk_rank[static_cast<size_t>(c)] = program_.rank_of(c);
        on_firsts.on(program_.rank_of(c)) = p.on(c);
      }
      p = std::move(on_firsts);
    }
    validate(p);
    std::vector<Chunk> mine;
    for (const Chunk& ch : chunks_)
      if (p.runs_on(rank(), ch.index)) mine.push_back(ch);
    it = forward_execs_.emplace(M, std::make_unique<Executor>(p, rank(), mine, comm_, opts_.checkpoint, specs)).first;
  }
  it->second->set_input_specs(specs);
  return *it->second;
}

Tensor Pipe::predict(const Tensor& inputs) {
  const std::vector<TensorSpec>& specs = specs_for(inputs);
  const int M = static_cast<int>(std::min<int64_t>(opts_.microbatches, inputs.size(0)));
  std::vector<bool> was;
  for (const Chunk& ch : chunks_) was.push_back(ch.module->is_training());
  eval();
  std::vector<Tensor> out = forward_executor(M, specs).forward(split(inputs, {}, M), step_);
  for (size_t i = 0; i < chunks_.size(); ++i) chunks_[i].module->train(was[i]);
  return is_last_stage() ? ops::cat(out, 0).to(Device::cpu()) : Tensor();
}

double Pipe::evaluate(const Tensor& inputs, const Tensor& targets,
                      const std::function<double(const Tensor&, const Tensor&)>& metric) {
  MP_CHECK(targets.defined() && targets.dim() >= 1 && inputs.defined() && targets.size(0) == inputs.size(0),
           "Pipe::evaluate: inputs and targets must have the same number of rows, got ",
           inputs.defined() ? shape_str(inputs.sizes()) : "undefined", " and ",
           targets.defined() ? shape_str(targets.sizes()) : "undefined");
  Tensor out = predict(inputs);
  Tensor total = zeros({1}, DType::Float64);
  if (is_last_stage()) {
    // The same near-equal parts predict used: a metric that sums over rows sees every row once.
    const MicroBatches parts = split(out, targets, static_cast<int>(std::min<int64_t>(opts_.microbatches, out.size(0))));
    double sum = 0;
    for (int m = 0; m < parts.size(); ++m)
      sum += metric(parts.inputs[static_cast<size_t>(m)], parts.targets[static_cast<size_t>(m)]);
    total.data_ptr<double>()[0] = sum;
  }
  comm_.broadcast(total, last_rank());
  return total.item();
}

double Pipe::clip_grad_norm_(double max_norm) {
  MP_CHECK(max_norm > 0, "clip_grad_norm_: max_norm must be positive, got ", max_norm);
  MP_CHECK(!asynchronous(), "Pipe::clip_grad_norm_: --schedule ", opts_.schedule, " steps each stage's optimizer "
           "inside the pipeline, where no global gradient norm exists: clipping is not supported with it");
  const std::vector<Tensor> params = parameters();
  // Every stage's share of the squared norm, once per stage (its replicas hold the same gradients).
  Tensor sq = full({1}, counts_for_stage() ? optim::grad_norm_squared(params) : 0.0, DType::Float64);
  comm_.all_reduce(sq);
  const double norm = std::sqrt(sq.item());
  optim::clip_grads_to(params, norm, max_norm);
  return norm;
}

void Pipe::zero_grad() {
  for (const Chunk& ch : chunks_) ch.module->zero_grad();
}

void Pipe::train(bool on) {
  for (const Chunk& ch : chunks_) ch.module->train(on);
}

std::vector<Tensor> Pipe::parameters() const {
  std::vector<Tensor> out;
  for (const Chunk& ch : chunks_)
    for (const Tensor& t : ch.module->parameters()) out.push_back(t);
  return out;
}

std::shared_ptr<nn::Sequential> Pipe::local_layers() const {
  auto s = std::make_shared<nn::Sequential>();
  for (const Chunk& ch : chunks_)
    for (size_t i = 0; i < ch.module->size(); ++i) s->push_back(ch.module->name_at(i), (*ch.module)[i]);
  return s;
}

template <typename Fn>
void Pipe::for_each_local_tensor(int owner, Fn fn) const {
  // Rank `owner`'s parameters and buffers, chunk by chunk: the order both ends of a transfer use.
  for (int c = 0; c < program_.num_chunks; ++c) {
    if (!program_.runs_on(owner, c)) continue;
    auto slice = model_->slice(partition_.begin(c), partition_.end(c));
    for (const auto& [name, t] : slice->named_parameters()) fn(name, t);
    for (const auto& [name, t] : slice->named_buffers())
      if (t.defined()) fn(name, t);
  }
}

void Pipe::gather() {
  // Into rank 0's copy of the whole model (under `local` the very same tensors: a harmless copy).
  // From each stage's first replica (the others hold the same weights).
  if (rank() == 0) {
    // Checkpoint tensors travel as CPU tensors (on `nccl`, over the host communicator).
    for (int r = 1; r < comm_.size(); ++r) {
      if (!counts_as_owner(r)) continue;
      int tag = kCheckpointTag;  // each rank numbers its tensors from the same first tag
      for_each_local_tensor(r, [&](const std::string& name, const Tensor& t) {
        Tensor got = comm_.recv({t.sizes(), t.dtype()}, r, tag++, "checkpoint tensor '" + name + "'");
        NoGradGuard no_grad;
        ops::copy_(t, got);
      });
    }
  } else if (counts_as_owner(rank())) {
    int tag = kCheckpointTag;
    for_each_local_tensor(rank(), [&](const std::string& name, const Tensor& t) {
      comm_.send(t.detach().to(Device::cpu()), 0, tag++, "checkpoint tensor '" + name + "'");
    });
  }
}

void Pipe::save(const std::string& path, const nn::Metadata& metadata) {
  gather();
  if (rank() == 0) nn::save(*model_, path, metadata);
  comm_.barrier();  // the file is complete when save returns on any rank
}

void Pipe::load(const std::string& path) {
  // Loaded weights are version 0 of a fresh asynchronous run (the stashed versions belong to the old one).
  versions_.reset();
  updates_ = 0;
  // Rank 0 reads and checks the whole file, then every rank learns whether it could.
  std::string error;
  if (rank() == 0) {
    try {
      nn::load(*model_, path);
    } catch (const Error& e) {
      error = e.what();
    }
  }
  error = all_gather_strings(comm_, error)[0];
  MP_CHECK(error.empty(), error, rank() == 0 ? "" : " (read by rank 0)");
  if (rank() == 0) {
    for (int r = 1; r < comm_.size(); ++r) {  // to every rank, stage replicas included
      int tag = kCheckpointTag;
      for_each_local_tensor(r, [&](const std::string& name, const Tensor& t) {
        comm_.send(t.detach().to(Device::cpu()), r, tag++, "checkpoint tensor '" + name + "'");
      });
    }
  } else {
    int tag = kCheckpointTag;
    for_each_local_tensor(rank(), [&](const std::string& name, const Tensor& t) {
      Tensor got = comm_.recv({t.sizes(), t.dtype()}, 0, tag++, "checkpoint tensor '" + name + "'");
      NoGradGuard no_grad;
      ops::copy_(t, got);
    });
  }
  comm_.barrier();
}

std::string Pipe::describe() const {
  const int P = opts_.stages, M = opts_.microbatches, v = opts_.virtual_chunks, C = program_.num_chunks;
  std::ostringstream os;
  const bool timed = opts_.partition == "time";
  os << "partition " << opts_.partition << ": " << C << (C == 1 ? " chunk" : " chunks")
     << (v > 1 ? " (" + std::to_string(v) + " per rank, chunk c on rank c mod " + std::to_string(P) + ")" : "")
     << "; cost = " << (timed ? "seconds of forward + backward per micro-batch, profiled on rank 0" : "parameters")
     << (costs_.output_bytes.empty() ? "" : "; cut bytes per micro-batch") << "\n";
  os << report(partition_, costs_).table();
  // The schedule with equal F and B costs: its bubble and how many micro-batches each rank holds.
  const bool rr = program_.replicated();
  // Zero-bubble schedules split B: with equal F, B and W (a backward twice a forward, as here).
  const Program plan = rr ? replicated(opts_.schedule, opts_.stage_replicas, M) : make_schedule(opts_.schedule, P, M, v);
  const Simulation sim = simulate(plan, plan.has_w() ? Costs::uniform(C, 1.0, 1.0, 1.0) : Costs::uniform(C, 1.0, 1.0));
  const RankStats& r0 = sim.ranks[0];
  os << "schedule " << opts_.schedule << ": " << P << (rr ? (P == 1 ? " stage, " : " stages, ") : (P == 1 ? " rank, " : " ranks, "))
     << M << " micro-batches"
     << (v > 1 ? ", " + std::to_string(v) + " chunks per rank" : "");
  if (rr) {
    os << ", stage replicas (1F1B-RR: micro-batch m on replica m mod R) on ranks";
    for (int c = 0; c < C; ++c) {
      const std::vector<int> ranks = program_.ranks_of(c);
      for (size_t i = 0; i < ranks.size(); ++i) os << (i == 0 ? " " : "/") << ranks[i];
    }
  }
  os << ", checkpoint "
     << checkpoint_name(opts_.checkpoint) << "; " << program_.num_actions() << " actions after lowering\n";
  os << (plan.has_w() ? "  with equal F, B and W: bubble " : "  with equal F and B: bubble ") << std::fixed
     << std::setprecision(1) << 100 * r0.bubble_of_total << "% of the step on rank 0 (" << 100 * r0.bubble_over_ideal
     << "% over ideal); micro-batches in flight per rank:";
  for (const RankStats& r : sim.ranks) os << " " << r.peak_inflight;
  os << "\n";
  if (asynchronous()) {
    // The steady state of a run (a step after the first few): how many versions each rank holds.
    os << (async_.mode == AsyncMode::PipeDream
               ? std::string("  asynchronous: each stage steps its optimizer after every B (one update per "
                             "micro-batch)") +
                     (async_.weight_stashing ? ", B reads the weights its F read" : ", no weight stashing") +
                     (async_.vertical_sync ? ", vertical sync" : "")
               : "  asynchronous (2BW): one update per window of " + std::to_string(async_.window) +
                     " micro-batches, every window reading the weights one update behind")
       << "; no flush until the step's end; weight versions held per rank:";
    for (int r = 0; r < P; ++r) os << " " << plan_versions(program_, r, async_, 1).peak_held;
    os << "\n";
  }
  return os.str();
}

}  // namespace minipipe::parallel
