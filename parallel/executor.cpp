// The executor's loop: one action at a time, in program order. F runs a chunk's forward on one
// micro-batch and keeps what its B will need; B runs the backward from the loss (last chunk) or from
// the gradient that came back; SEND / RECV move an activation forward or its gradient back. Tensors
// wait between the action that makes them and the one that uses them in four per-(chunk,
// micro-batch) slots: in_f_, out_f_, in_b_, out_b_.
#include "parallel/executor.h"

#include <optional>

#include "autograd/functions.h"

namespace minipipe::parallel {

namespace {
using Clock = std::chrono::steady_clock;

Tensor take(Tensor& slot, const char* what, const Action& a) {
  MP_INTERNAL_ASSERT(slot.defined(), "executor: ", to_string(a), " found no ", what,
                     " (the program runs an action before the one that provides its input)");
  return std::exchange(slot, Tensor());
}
}  // namespace

Checkpoint parse_checkpoint(std::string_view name) {
  if (name == "never") return Checkpoint::Never;
  if (name == "except_last") return Checkpoint::ExceptLast;
  if (name == "always") return Checkpoint::Always;
  MP_CHECK(false, "unknown checkpoint mode '", name, "' (expected never, except_last or always)");
  return Checkpoint::Never;
}

const char* checkpoint_name(Checkpoint c) {
  switch (c) {
    case Checkpoint::Never: return "never";
    case Checkpoint::ExceptLast: return "except_last";
    case Checkpoint::Always: return "always";
  }
  return "?";
}

struct Executor::Run {
  Run(const MicroBatches& batches, const LossFn* loss_fn, uint64_t step_number, const AsyncStep* async_step = nullptr)
      : mb(batches), loss(loss_fn), step(step_number), async(async_step),
        loss_scale(async_step ? async_step->loss_scale : 1.0 / batches.size()) {}
  const MicroBatches& mb;
  const LossFn* loss;  // null: forward only
  uint64_t step;
  const AsyncStep* async;  // null: the optimizer steps outside, after the flush
  double loss_scale;       // of each micro-batch's loss: 1/M, so the summed gradients are the batch's
  double loss_sum = 0;
  std::vector<Tensor> outputs;
  Clock::time_point t0 = Clock::now();
};

Executor::Executor(Program program, int rank, std::vector<Chunk> chunks, Communicator& comm, Checkpoint mode,
                   std::vector<TensorSpec> input_specs)
    : program_(std::move(program)), rank_(rank), chunks_(std::move(chunks)), comm_(comm), mode_(mode),
      input_specs_(std::move(input_specs)), account_(current_memory_account()) {
  const int C = program_.num_chunks;
  MP_CHECK(rank_ >= 0 && rank_ < program_.num_ranks, "executor: rank ", rank_, " is not in a program of ",
           program_.num_ranks, " ranks");
  MP_CHECK(program_.has_comm() || program_.num_ranks == 1, "executor: the program must be lowered (lower()) first");
  MP_CHECK(static_cast<int>(input_specs_.size()) == C, "executor: ", input_specs_.size(), " input specs for ", C,
           " chunks");
  local_.assign(static_cast<size_t>(C), -1);
  for (size_t i = 0; i < chunks_.size(); ++i) {
    const int c = chunks_[i].index;
    MP_CHECK(c >= 0 && c < C && program_.runs_on(rank_, c), "executor: chunk ", c, " does not live on rank ", rank_);
    MP_CHECK(chunks_[i].module && chunks_[i].random, "executor: chunk ", c, " has no module or random context");
    local_[static_cast<size_t>(c)] = static_cast<int>(i);
  }
  for (int c = 0; c < C; ++c)
    MP_CHECK(!program_.runs_on(rank_, c) || local_[static_cast<size_t>(c)] >= 0, "executor: rank ", rank_,
             " runs chunk ", c, " but was not given it");
}

void Executor::set_input_specs(const std::vector<TensorSpec>& specs) {
  MP_CHECK(static_cast<int>(specs.size()) == program_.num_chunks, "executor: ", specs.size(), " input specs for ",
           program_.num_chunks, " chunks");
  if (specs != input_specs_) input_specs_ = specs;
}

bool Executor::checkpointed(int c) const {
  return mode_ == Checkpoint::Always || (mode_ == Checkpoint::ExceptLast && c != program_.num_chunks - 1);
}

const Chunk& Executor::chunk(int c) const {
  const int i = local_[static_cast<size_t>(c)];
  MP_INTERNAL_ASSERT(i >= 0, "executor: chunk ", c, " is not on rank ", rank_);
  return chunks_[static_cast<size_t>(i)];
}

double Executor::train_step(const MicroBatches& mb, const LossFn& loss, uint64_t step) {
  MP_CHECK(!program_.forward_only, "executor: train_step needs a training program, got a forward-only one");
  for (int64_t rows : mb.rows)  // the 1/M scale makes M micro-batch means the batch mean only then
    MP_CHECK(rows == mb.rows.front(), "executor: training micro-batches must have equal rows, got ",
             mb.rows.front(), " and ", rows);
  Run r(mb, &loss, step);
  run(r);
  return r.loss_sum;
}

double Executor::train_step(const MicroBatches& mb, const LossFn& loss, uint64_t step, const AsyncStep& async) {
  MP_CHECK(!program_.forward_only && !program_.has_w(), "executor: an asynchronous step runs F and B only");
  MP_CHECK(async.versions && async.plan && async.plan->read.size() == program_.on(rank_).size(),
           "executor: an asynchronous step needs the weight versions and a plan for this rank's ",
           program_.on(rank_).size(), " actions");
  for (int64_t rows : mb.rows)
    MP_CHECK(rows == mb.rows.front(), "executor: training micro-batches must have equal rows, got ",
             mb.rows.front(), " and ", rows);
  Run r(mb, &loss, step, &async);
  run(r);
  return r.loss_sum;
}

std::vector<Tensor> Executor::forward(const MicroBatches& mb, uint64_t step) {
  MP_CHECK(program_.forward_only, "executor: forward needs a forward-only program");
  NoGradGuard no_grad;
  Run r(mb, nullptr, step);
  run(r);
  return r.outputs;
}

void Executor::run(Run& r) {
  const int C = program_.num_chunks, M = program_.num_microbatches;
  MP_CHECK(r.mb.size() == M && static_cast<int>(r.mb.offsets.size()) == M, "executor: the program has ", M,
           " micro-batches, the step has ", r.mb.size());
  const size_t n = static_cast<size_t>(C * M);
  in_f_.assign(n, {});
  out_f_.assign(n, {});
  in_b_.assign(n, {});
  out_b_.assign(n, {});
  received_.assign(n, false);
  stash_.assign(n, {});
  stash_bytes_.assign(n, -1);
  weight_work_.assign(n, {});
  weight_bytes_.assign(n, 0);
  records_.clear();
  in_flight_.clear();
  step_origin_ = r.t0;
  live_at_start_ = account_->live();
  r.outputs.assign(static_cast<size_t>(M), {});
  WeightVersions* versions = r.async ? r.async->versions : nullptr;
  peak_versions_ = versions ? versions->held() : 0;
  peak_version_bytes_ = versions ? versions->held_bytes() : 0;

  const std::vector<Action>& list = program_.on(rank_);
  for (size_t i = 0; i < list.size(); ++i) {
    const Action& a = list[i];
    ActionRecord rec{a};
    rec.start = std::chrono::duration<double>(Clock::now() - r.t0).count();
    const int c = a.chunk, m = a.microbatch;
    if (versions && r.async->plan->read[i] >= 0) versions->use(r.async->plan->read[i]);
    if (!in_flight_.empty()) finish_sends(false);  // frees what receivers took (and lets MPI progress)
    switch (a.op) {
      case Op::F: forward_action(r, c, m); break;
      case Op::B: backward_action(r, c, m); break;
      case Op::SEND_F:
        rec.bytes = static_cast<int64_t>(out_f_[at(c, m)].nbytes());
        send_forward(r, c, m);
        break;
      case Op::RECV_F:
        recv_forward(c, m, static_cast<int>(r.mb.rows[static_cast<size_t>(m)]));
        rec.bytes = static_cast<int64_t>(in_f_[at(c, m)].nbytes());
        break;
      case Op::SEND_B:
        rec.bytes = static_cast<int64_t>(out_b_[at(c, m)].nbytes());
        send_backward(c, m);
        break;
      case Op::RECV_B:
        recv_backward(c, m);
        rec.bytes = static_cast<int64_t>(in_b_[at(c, m)].nbytes());
        break;
      case Op::W: weight_work_[at(c, m)].run(); break;  // the weight gradients B left for later
    }
    if (versions) {  // async: the optimizer steps inside the pipeline; versions nobody needs go
      if (r.async->plan->update_after[i]) versions->update();
      for (int64_t v : r.async->plan->release[i]) versions->release(v);
      peak_versions_ = std::max(peak_versions_, versions->held());
      peak_version_bytes_ = std::max(peak_version_bytes_, versions->held_bytes());
    }
    rec.end = std::chrono::duration<double>(Clock::now() - r.t0).count();
    rec.live_bytes = account_->live();
    records_.push_back(rec);
  }
  finish_sends(true);  // every receiver takes its message by the end of its own step
  // Every tensor a slot received was consumed: anything left means the program skipped an action.
  for (size_t i = 0; i < n; ++i)
    MP_INTERNAL_ASSERT(!in_f_[i].defined() && !out_f_[i].defined() && !in_b_[i].defined() && !out_b_[i].defined() &&
                           !stash_[i].root.defined() && !stash_[i].x.defined() && weight_work_[i].empty(),
                       "executor: rank ", rank_, " ended a step with (chunk ", i / static_cast<size_t>(M),
                       ", micro-batch ", i % static_cast<size_t>(M), ") still holding a tensor");
  // Stashed bytes over the action list: (c, m) holds its measured bytes from its F to its B.
  int64_t now = 0;
  peak_stash_ = 0;
  for (ActionRecord& rec : records_) {
    const size_t i = at(rec.action.chunk, rec.action.microbatch);
    const int64_t b = stash_bytes_[i];
    if (r.loss && rec.action.op == Op::F) now += b;
    if (rec.action.op == Op::B) now += weight_bytes_[i] - b;  // a split B keeps W's inputs until W
    if (rec.action.op == Op::W) now -= weight_bytes_[i];
    rec.stash_bytes = now;
    peak_stash_ = std::max(peak_stash_, now);
  }
}

void Executor::forward_action(Run& r, int c, int m) {
  const Chunk& ch = chunk(c);
  const int C = program_.num_chunks;
  const bool train = r.loss != nullptr, last = c == C - 1, keep_graph = train && !checkpointed(c);
  const Action a{c, Op::F, m};
  Tensor x = c == 0 ? r.mb.inputs[static_cast<size_t>(m)] : take(in_f_[at(c, m)], "input", a);
  MP_CHECK(x.defined(), "executor: rank ", rank_, " has no inputs for micro-batch ", m);
  x = x.to(ch.device);  // the batch arrives on the CPU; the chunk may sit on a GPU
  MP_CHECK(c == 0 || !train || is_floating(x.dtype()), "executor: chunk ", c, "'s input is ", dtype_name(x.dtype()),
           "; a stage boundary must be floating point to carry a gradient back");
  // The same dropout masks as the whole batch on one device: keyed by this step and the rows' global index.
  RandomContext& rc = *ch.random;
  rc.step = r.step;
  rc.sample_offset = r.mb.offsets[static_cast<size_t>(m)];
  Stash& s = stash_[at(c, m)];
  if (train) s.generator = rc.generator;  // replayed if this chunk recomputes its forward in B
  const int64_t live0 = account_->live();
  Tensor y, loss;
  {
    std::optional<NoGradGuard> no_grad;
    if (!keep_graph) no_grad.emplace();  // checkpointing: no graph now, recomputed in B
    if (keep_graph && c > 0) x.set_requires_grad(true);
    y = ch.module->forward(x);
    // A chunk that hands its input back unchanged (a Dropout(0) alone) still needs an output of
    // its own: a view, whose backward passes the gradient to the input.
    if (y.is_same(x)) y = view(x, x.sizes());
    if (train && last) {
      loss = (*r.loss)(y, r.mb.targets[static_cast<size_t>(m)].to(ch.device));
      MP_CHECK(loss.defined() && loss.numel() == 1, "executor: the loss must be a scalar, got ",
               loss.defined() ? shape_str(loss.sizes()) : "undefined");
      r.loss_sum += loss.item();
    }
  }
  if (last && !train) r.outputs[static_cast<size_t>(m)] = y;
  if (!last) {
    if (program_.crosses(c)) out_f_[at(c, m)] = y;
    else in_f_[at(c + 1, m)] = y.detach();  // the next chunk is on this rank: a boundary all the same
  }
  if (!train) return;
  s.x = x;
  s.out_shape = y.sizes();
  s.out_dtype = y.dtype();
  if (keep_graph) s.root = last ? loss : y;
  y = Tensor();
  loss = Tensor();
  stash_bytes_[at(c, m)] = account_->live() - live0 + (received_[at(c, m)] ? static_cast<int64_t>(x.nbytes()) : 0);
}

void Executor::backward_action(Run& r, int c, int m) {
  MP_INTERNAL_ASSERT(r.loss != nullptr, "executor: B in a forward-only run");
  const int C = program_.num_chunks;
  const bool last = c == C - 1;
  Stash& s = stash_[at(c, m)];
  Tensor grad = last ? Tensor() : take(in_b_[at(c, m)], "output gradient", {c, Op::B, m});
  Tensor x = s.x, root = s.root;
  if (checkpointed(c)) {
    // Recompute the forward with a graph: same step and rows (so the same counter-based masks) and
    // the sequential generator as it was before F; then leave the generator where it had got to.
    RandomContext& rc = *chunk(c).random;
    const Generator now = rc.generator;
    rc.generator = s.generator;
    rc.step = r.step;
    rc.sample_offset = r.mb.offsets[static_cast<size_t>(m)];
    x = x.detach();
    if (c > 0) x.set_requires_grad(true);
    Tensor y = chunk(c).module->forward(x);
    root = last ? (*r.loss)(y, r.mb.targets[static_cast<size_t>(m)].to(chunk(c).device)) : y;
    rc.generator = now;
  }
  // The loss of one micro-batch is a mean over its rows: scaled by 1/M, the gradients summed over
  // the M micro-batches are those of the mean over the whole batch (async: r.loss_scale per update).
  {
    // A program with W actions splits the backward: this B computes the input gradient (what the
    // previous stage waits for) and leaves the weight gradients it can to the W action.
    std::optional<autograd::DeferWeightGrads> split;
    if (program_.has_w()) split.emplace(&weight_work_[at(c, m)]);
    if (last) root.backward(scalar_tensor(r.loss_scale, root.dtype()));
    else root.backward(grad);
  }
  weight_bytes_[at(c, m)] = weight_work_[at(c, m)].bytes();
  Tensor gx = c > 0 ? x.grad() : Tensor();
  s = Stash{};  // the activations are free now
  root = Tensor();
  x = Tensor();
  if (c == 0) return;
  MP_CHECK(gx.defined(), "executor: chunk ", c, "'s output does not depend on its input: no gradient to send back");
  if (program_.crosses(c - 1)) out_b_[at(c, m)] = gx;
  else in_b_[at(c - 1, m)] = gx;
}

void Executor::send_forward(Run& r, int c, int m) {
  const Action a{c, Op::SEND_F, m};
  Tensor y = take(out_f_[at(c, m)], "output to send", a);
  auto request = comm_.isend(y, program_.rank_of(c + 1, m), forward_tag(c, m), to_string(a));
  // Sent: backward keeps only the output's autograd node. What that frees is counted when the send
  // finishes (finish_sends): at once with blocking sends, when the receiver took it otherwise.
  Stash& s = stash_[at(c, m)];
  const bool training = r.loss != nullptr;
  if (training && s.root.defined() && s.root.is_same(y)) s.root = autograd::without_data(s.root);
  post(std::move(request), std::move(y), training ? static_cast<int64_t>(at(c, m)) : -1);
}

void Executor::recv_forward(int c, int m, int rows) {
  const Action a{c, Op::RECV_F, m};
  TensorSpec want = input_specs_[static_cast<size_t>(c)];
  want.shape.insert(want.shape.begin(), rows);
  want.device = chunk(c).device;
  in_f_[at(c, m)] = comm_.recv(want, program_.rank_of(c - 1, m), forward_tag(c - 1, m), to_string(a));
  received_[at(c, m)] = true;
}

void Executor::send_backward(int c, int m) {
  const Action a{c, Op::SEND_B, m};
  Tensor g = take(out_b_[at(c, m)], "input gradient to send", a);
  auto request = comm_.isend(g, program_.rank_of(c - 1, m), backward_tag(c, m), to_string(a));
  post(std::move(request), std::move(g), -1);  // sent first: arguments have no order
}

void Executor::post(std::unique_ptr<Request> request, Tensor data, int64_t forward_slot) {
  in_flight_.push_back({std::move(request), std::move(data), forward_slot});
  if (!program_.async_sends) finish_sends(true);  // a blocking send waits for its receive here
}

void Executor::finish_sends(bool all) {
  std::vector<InFlight> still;
  for (InFlight& s : in_flight_) {
    if (!all && !s.request->test()) {
      still.push_back(std::move(s));
      continue;
    }
    s.request->wait();  // done (or, with `all`, waits: throws on a timeout naming the send)
    const int64_t live0 = account_->live();
    s.request.reset();
    s.data = Tensor();
    if (s.forward_slot >= 0) stash_bytes_[static_cast<size_t>(s.forward_slot)] -= live0 - account_->live();
  }
  in_flight_ = std::move(still);
}

void Executor::recv_backward(int c, int m) {
  const Action a{c, Op::RECV_B, m};
  const Stash& s = stash_[at(c, m)];
  in_b_[at(c, m)] = comm_.recv({s.out_shape, s.out_dtype, chunk(c).device}, program_.rank_of(c + 1, m), backward_tag(c + 1, m),
                               to_string(a));
}

}  // namespace minipipe::parallel
