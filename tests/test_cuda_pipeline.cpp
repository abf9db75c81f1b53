// Communicators and pipelines on GPUs: `local` ranks moving CUDA tensors (several ranks may share
// one GPU), the `nccl` communicator's contract on device tensors (a GPU per rank), and pipelined
// and data-parallel training on GPUs against one CPU device, to float32 rounding. Each test skips
// itself, saying why, where the GPUs it needs are missing — never passes without running.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "parallel/data_parallel.h"
#include "nn/idx.h"
#include "parallel/nccl/comm_nccl.h"
#include "tensor/device.h"
#include "tests/pipeline_models.h"
#include "tests/run_program.h"

namespace minipipe {
namespace {

using parallel::Backend;
using parallel::Communicator;
using parallel::RankContext;
using test_util::ModelKind;
using test_util::ProgramResult;
using test_util::run_program;

std::string gpus_missing(int need) {
  const int n = cuda_device_count();
  if (n >= need) return "";
  return std::string(cuda_is_built() ? "" : "no CUDA backend in this build; ") + "needs " + std::to_string(need) +
         " CUDA device" + (need == 1 ? "" : "s") + ", found " + std::to_string(n) +
         (n == 0 && cuda_is_built() ? " (cudaGetDeviceCount failed or returned 0)" : "");
}

#define SKIP_WITHOUT_GPUS(n)                                     \
  do {                                                           \
    const std::string why_ = gpus_missing(n);                    \
    if (!why_.empty()) GTEST_SKIP() << why_;                     \
  } while (0)

void launch_on(Backend backend, int ranks, const std::string& device, const std::function<void(RankContext&)>& fn,
               double timeout = 60) {
  parallel::LaunchOptions lo;
  lo.backend = backend;
  lo.ranks = ranks;
  lo.threads_per_rank = 1;
  lo.timeout_s = timeout;
  lo.device = device;
  parallel::launch(lo, fn);
}

std::vector<double> host_values(const Tensor& t) { return ops::to(t.to(Device::cpu()), DType::Float64).to_vector<double>(); }

// ---- communicators ----

// Device tensors through `comm`: point to point in any tag order, receives matched in posting
// order, into the receiver's device; all_reduce (sum and average) and broadcast; CPU tensors too.
void device_contract(Communicator& c, Device mine, bool rank_order_sums) {
  const int P = c.size(), r = c.rank();
  // Rank-valued all_reduce: exact in every dtype.
  for (DType dt : {DType::Float32, DType::Int64}) {
    Tensor t = full({3, 5}, r + 1, {dt, mine});
    c.all_reduce(t);
    EXPECT_EQ(t.device(), mine);
    for (double v : host_values(t)) EXPECT_EQ(v, P * (P + 1) / 2) << dtype_name(dt);
  }
  Tensor avg = full({7}, r + 1, {DType::Float32, mine});
  c.iall_reduce(avg, parallel::ReduceOp::Avg)->wait();
  for (double v : host_values(avg)) EXPECT_EQ(v, (P + 1) / 2.0);
  // Values that round: every rank ends with the same bits; on local, those of the sum in rank order.
  auto values_of = [](int q) {
    return ops::add_scalar(ops::mul_scalar(arange(4097, {DType::Float32, Device::cpu()}), 0.1), 0.37 * q);
  };
  Tensor sum = values_of(r).to(mine);
  c.all_reduce(sum);
  const std::vector<double> mine_bits = host_values(sum);
  Tensor check = sum.to(Device::cpu());
  c.broadcast(check, 0);  // rank 0's result, as a CPU tensor: every rank must hold the same
  EXPECT_EQ(host_values(check), mine_bits);
  if (rank_order_sums) {
    Tensor want = values_of(0);
    for (int q = 1; q < P; ++q) want = ops::add(want, values_of(q));
    EXPECT_EQ(host_values(want), mine_bits);
  }
  // Broadcast from every root.
  for (int root = 0; root < P; ++root) {
    Tensor b = full({1000}, r == root ? 42.5 + root : -1.0, {DType::Float32, mine});
    c.broadcast(b, root);
    for (double v : host_values(b)) ASSERT_EQ(v, 42.5 + root);
  }
  // Point to point around a ring, three tags sent 0, 1, 2 and received 2, 0, 1; two messages on one
  // tag received by receives posted in order.
  const int next = (r + 1) % P, prev = (r + P - 1) % P;
  if (P > 1) {
    std::vector<std::unique_ptr<parallel::Request>> sends;
    for (int tag = 0; tag < 3; ++tag)
      sends.push_back(c.isend(full({2, 3}, 100 * r + tag, {DType::Float32, mine}), next, tag));
    sends.push_back(c.isend(full({4}, 7, {DType::Int64, mine}), next, 9));
    sends.push_back(c.isend(full({4}, 8, {DType::Int64, mine}), next, 9));
    sends.push_back(c.isend(full({2}, 5.5 + r, DType::Float64), next, 11));  // a CPU tensor
    for (int tag : {2, 0, 1}) {
      Tensor got = c.recv({{2, 3}, DType::Float32, mine}, prev, tag);
      EXPECT_EQ(got.device(), mine);
      for (double v : host_values(got)) EXPECT_EQ(v, 100 * prev + tag);
    }
    auto first = c.irecv({{4}, DType::Int64, mine}, prev, 9);
    auto second = c.irecv({{4}, DType::Int64, mine}, prev, 9);
    for (double v : host_values(second->wait())) EXPECT_EQ(v, 8);
    for (double v : host_values(first->wait())) EXPECT_EQ(v, 7);
    Tensor cpu = c.recv({{2}, DType::Float64}, prev, 11);
    EXPECT_TRUE(cpu.device().is_cpu());
    for (double v : cpu.to_vector<double>()) EXPECT_EQ(v, 5.5 + prev);
    for (auto& s : sends) s->wait();
    // A large tensor (16 MiB) both ways round the ring.
    Tensor big = ops::add_scalar(arange(int64_t{4} << 20, {DType::Float32, Device::cpu()}), r).to(mine);
    auto s = c.isend(big, next, 20);
    Tensor got = c.recv({{int64_t{4} << 20}, DType::Float32, mine}, prev, 20);
    s->wait();
    const std::vector<double> v = host_values(got);
    for (int64_t i : {int64_t{0}, int64_t{12345}, (int64_t{4} << 20) - 1})
      EXPECT_EQ(v[static_cast<size_t>(i)], static_cast<double>(static_cast<float>(i)) + prev);
    // A shape the receiver does not expect: an error naming what came.
    if (r == 0) c.send(full({3}, 1, {DType::Float32, mine}), 1, 30);
    if (r == 1) {
      try {
        c.recv({{4}, DType::Float32, mine}, 0, 30);
        ADD_FAILURE() << "no error";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("float32 [3]"), std::string::npos) << e.what();
      }
    }
  }
  // Sub-groups: even and odd ranks, each reduces its own.
  auto sub = c.split(r % 2, r);
  Tensor one = full({5}, 1, {DType::Float32, mine});
  sub->all_reduce(one);
  for (double v : host_values(one)) EXPECT_EQ(v, sub->size());
  c.barrier();
}

// The same checks with CPU tensors, on every machine: so the checks themselves are known to hold
// where they can be run (a GPU run then differs only in where the tensors live).
TEST(CudaComm, TheDeviceContractHoldsOnTheCpu) {
  launch_on(Backend::Local, 3, "cpu", [&](RankContext& ctx) { device_contract(ctx.comm, ctx.device, true); });
}

TEST(CudaComm, LocalRanksMoveDeviceTensorsOnOneGpu) {
  SKIP_WITHOUT_GPUS(1);
  launch_on(Backend::Local, 3, "cuda:0", [&](RankContext& ctx) {
    EXPECT_EQ(ctx.device, Device::cuda(0));
    device_contract(ctx.comm, ctx.device, true);
  });
}

TEST(CudaComm, LocalRanksMoveDeviceTensorsAcrossGpus) {
  SKIP_WITHOUT_GPUS(2);
  launch_on(Backend::Local, 2, "cuda", [&](RankContext& ctx) {
    EXPECT_EQ(ctx.device, Device::cuda(ctx.comm.rank()));
    device_contract(ctx.comm, ctx.device, true);
  });
}

TEST(CudaComm, NcclContract) {
  SKIP_WITHOUT_GPUS(2);
  ASSERT_TRUE(parallel::nccl_is_built());
  const int P = std::min(cuda_device_count(), 4);
  launch_on(Backend::Nccl, P, "cuda", [&](RankContext& ctx) {
    EXPECT_STREQ(ctx.comm.backend(), "nccl");
    EXPECT_EQ(ctx.comm.device(), Device::cuda(ctx.comm.rank()));
    device_contract(ctx.comm, ctx.device, false);
  });
}

TEST(CudaComm, NcclReceiveTimesOutNamingTheRanks) {
  SKIP_WITHOUT_GPUS(2);
  try {
    launch_on(Backend::Nccl, 2, "cuda", [&](RankContext& ctx) {
      ctx.comm.set_timeout(1);
      if (ctx.comm.rank() == 1) ctx.comm.recv({{4}, DType::Float32, ctx.device}, 0, 3, "the missing one");
    });
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("rank 1 recv from rank 0 (tag 3, the missing one)"), std::string::npos) << m;
    EXPECT_NE(m.find("nothing after 1 s"), std::string::npos) << m;
  }
}

TEST(CudaComm, NcclRefusesTwoRanksOnOneGpu) {
  SKIP_WITHOUT_GPUS(1);
  if (!parallel::nccl_is_built()) GTEST_SKIP() << "this build has no NCCL backend (the launch says so first)";
  parallel::LaunchOptions lo;
  lo.backend = Backend::Nccl;
  lo.ranks = cuda_device_count() + 1;
  try {
    parallel::launch(lo, [](RankContext&) {});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("needs one GPU per rank"), std::string::npos) << e.what();
  }
}

// ---- training ----

// P stages, M micro-batches on `device` (one per rank) against the whole batch on one CPU device:
// the loss and every gradient after one step, to float32 rounding (the GPU adds in other orders).
void pipeline_matches_cpu(Backend backend, const std::string& device, ModelKind kind, const std::string& schedule,
                          int P, int v) {
  const DType dt = DType::Float32;
  const test_util::Batch batch = test_util::make_batch(kind, dt, 8, 5);
  test_util::Reference ref(kind, dt, 0.1, 1, 7);
  const double want_loss = ref.forward_backward(batch, test_util::loss_of(kind), 0);
  const auto want = test_util::grads_by_name(*ref.model);
  auto model = test_util::build_model(kind, dt, 0.1, 1);
  launch_on(backend, P, device, [&](RankContext& ctx) {
    parallel::Pipe pipe(model, ctx.comm,
                        {.stages = P, .microbatches = 4, .schedule = schedule, .virtual_chunks = v, .seed = 7,
                         .loss = test_util::loss_of(kind), .device = ctx.device});
    for (const Tensor& p : pipe.parameters()) EXPECT_EQ(p.device(), ctx.device);
    const double loss = pipe.train_step(batch.x, batch.y);
    EXPECT_NEAR(loss, want_loss, 1e-5 * std::max(1.0, std::abs(want_loss)));
    for (const auto& [name, g] : pipe.local_layers()->named_parameters())
      EXPECT_LT(test_util::rel_diff(g.grad(), want.at(name)), 1e-4) << name << " on " << ctx.device.str();
    const Tensor out = pipe.predict(batch.x);
    if (pipe.is_last_stage()) {
      EXPECT_TRUE(out.device().is_cpu());
    }
  });
}

TEST(CudaPipeline, LocalStagesSharingOneGpuMatchOneCpuDevice) {
  SKIP_WITHOUT_GPUS(1);
  for (ModelKind kind : {ModelKind::Mlp, ModelKind::Gpt})
    for (const char* s : {"gpipe", "1f1b", "zb-h1"}) pipeline_matches_cpu(Backend::Local, "cuda:0", kind, s, 2, 1);
  pipeline_matches_cpu(Backend::Local, "cuda:0", ModelKind::Mlp, "interleaved", 2, 2);
}

TEST(CudaPipeline, NcclStagesMatchOneCpuDevice) {
  SKIP_WITHOUT_GPUS(2);
  for (ModelKind kind : {ModelKind::Mlp, ModelKind::Gpt})
    for (const char* s : {"gpipe", "1f1b"}) pipeline_matches_cpu(Backend::Nccl, "cuda", kind, s, 2, 1);
  pipeline_matches_cpu(Backend::Nccl, "cuda", ModelKind::Mlp, "interleaved", 2, 2);
}

// Two data-parallel replicas on GPUs, each half the batch: their averaged gradients are the whole
// batch's on one CPU device.
void data_parallel_matches_cpu(Backend backend, const std::string& device) {
  const DType dt = DType::Float32;
  const test_util::Batch batch = test_util::make_batch(ModelKind::Mlp, dt, 8, 5);
  test_util::Reference ref(ModelKind::Mlp, dt, 0.0, 1, 7);
  ref.forward_backward(batch, test_util::loss_of(ModelKind::Mlp), 0);
  const auto want = test_util::grads_by_name(*ref.model);
  std::vector<std::shared_ptr<nn::Sequential>> copies = {test_util::build_model(ModelKind::Mlp, dt, 0.0, 1),
                                                         test_util::build_model(ModelKind::Mlp, dt, 0.0, 1)};
  launch_on(backend, 2, device, [&](RankContext& ctx) {
    const int r = ctx.comm.rank();
    auto& model = *copies[static_cast<size_t>(r)];
    model.to(ctx.device);
    parallel::DataParallel dp(model.parameters(), ctx.comm, {.bucket_mb = 0.001});
    Tensor loss = cross_entropy(model.forward(ops::narrow(batch.x, 0, 4 * r, 4).to(ctx.device)),
                                ops::narrow(batch.y, 0, 4 * r, 4).to(ctx.device));
    loss.backward();
    dp.finish_gradients();
    for (const auto& [name, p] : model.named_parameters())
      EXPECT_LT(test_util::rel_diff(p.grad(), want.at(name)), 1e-4) << name << " on " << ctx.device.str();
  });
}

TEST(CudaPipeline, TheChecksHoldOnTheCpu) {
  pipeline_matches_cpu(Backend::Local, "cpu", ModelKind::Mlp, "1f1b", 2, 1);
  pipeline_matches_cpu(Backend::Local, "cpu", ModelKind::Gpt, "interleaved", 2, 2);
  data_parallel_matches_cpu(Backend::Local, "cpu");
}

TEST(CudaDataParallel, LocalReplicasOnOneGpuMatchOneCpuDevice) {
  SKIP_WITHOUT_GPUS(1);
  data_parallel_matches_cpu(Backend::Local, "cuda:0");
}

TEST(CudaDataParallel, NcclReplicasMatchOneCpuDevice) {
  SKIP_WITHOUT_GPUS(2);
  data_parallel_matches_cpu(Backend::Nccl, "cuda");
}

// The trainers with --device: the same short run on the CPU and on GPUs ends at the same loss to a
// few digits (the GPU adds in other orders), as a pipeline of ranks sharing GPU 0 and over nccl.
double last_loss(const std::string& output) {
  const size_t at = output.rfind("train loss ");
  return at == std::string::npos ? -1 : std::stod(output.substr(at + 11));
}

TEST(CudaTrainers, TrainMlpOnGpusMatchesTheCpu) {
  SKIP_WITHOUT_GPUS(1);
  // A GPU machine may lack Debian's dataset package: MINIPIPE_FASHION_MNIST names another folder.
  const char* env = std::getenv("MINIPIPE_FASHION_MNIST");
  const std::string data = env && *env ? env : nn::kFashionMnistDir;
  if (!std::filesystem::exists(data + "/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "no Fashion-MNIST in " << data << " (apt-get install dataset-fashion-mnist, or set MINIPIPE_FASHION_MNIST)";
  const std::string run = "--epochs 1 --max-steps 20 --threads 1 --stages 2 --microbatches 2 --data " + data + " ";
  const ProgramResult cpu = run_program("train_mlp", run);
  ASSERT_EQ(cpu.status, 0) << cpu.output;
  std::vector<std::string> gpu_runs = {run + "--device cuda:0"};
  if (cuda_device_count() >= 2) gpu_runs.push_back(run + "--comm nccl");
  for (const std::string& args : gpu_runs) {
    const ProgramResult gpu = run_program("train_mlp", args);
    ASSERT_EQ(gpu.status, 0) << args << "\n" << gpu.output;
    EXPECT_NEAR(last_loss(gpu.output), last_loss(cpu.output), 1e-3) << args << "\n" << gpu.output;
    EXPECT_NE(gpu.output.find("GPU memory in the caching allocator's blocks (per device), peak over the run:"),
              std::string::npos) << args << "\n" << gpu.output;
  }
  EXPECT_EQ(cpu.output.find("GPU memory"), std::string::npos) << cpu.output;
}

}  // namespace
}  // namespace minipipe
