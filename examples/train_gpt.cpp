// train_gpt: a GPT-2-style character-level language model (nn/transformer.h) trained on English
// text — by default the fortunes of Debian's `fortunes` package, or any --data FILE — on one device
// or as a pipeline (--stages, --microbatches, --schedule, ...: examples/pipeline_flags.h). AdamW with
// weight decay on matmul weights only, warm-up + cosine lr, gradient clipping across all stages;
// prints the baselines, then step / train loss / val loss / tokens/s per eval interval, and a sample.
// Run: build/train_gpt [--steps 1000] [--sample 500 --prompt "The "]; build/train_gpt --help.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "examples/pipeline_flags.h"
#include "examples/trace_flags.h"
#include "nn/checkpoint.h"
#include "nn/text_data.h"
#include "nn/transformer.h"
#include "tensor/threads.h"

using namespace minipipe;

namespace {

struct Config {
  // Small enough for two CPU cores in a few minutes (docs/gpt.md has the curve): 0.83M
  // parameters, 2048 tokens a step. Context 64 learns faster per step than 128 at this budget.
  int64_t layers = 4, d_model = 128, heads = 4, context = 64, batch = 32;
  int64_t steps = 1000, warmup = 50;
  double lr = 3e-3, min_lr = -1, weight_decay = 0.1, dropout = 0.0, clip = 1.0;
  uint64_t seed = 1337;
  int64_t eval_interval = 100, eval_iters = 20;
  bool tie_weights = false;
  std::string data, vocab = "char", save, load;
  int64_t sample = 300;
  std::string prompt = "The ";
  double temperature = 0.8;
  int64_t top_k = 0;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string to_hex(const std::string& s) {
  static const char* digits = "0123456789abcdef";
  std::string h;
  for (unsigned char c : s) {
    h.push_back(digits[c >> 4]);
    h.push_back(digits[c & 15]);
  }
  return h;
}

std::string from_hex(const std::string& h) {
  MP_CHECK(h.size() % 2 == 0, "checkpoint: malformed vocabulary (odd hex length ", h.size(), ")");
  std::string s;
  for (size_t i = 0; i < h.size(); i += 2) s.push_back(static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16)));
  return s;
}

// What a checkpoint records besides the tensors: the model shape and the vocabulary.
nn::Metadata describe(const nn::GPTConfig& m, const std::string& vocab_kind, const std::string& symbols) {
  return {{"minipipe.model", "gpt"},
          {"layers", std::to_string(m.n_layer)},
          {"d_model", std::to_string(m.d_model)},
          {"heads", std::to_string(m.n_head)},
          {"context", std::to_string(m.context)},
          {"vocab_size", std::to_string(m.vocab_size)},
          {"tie_weights", m.tie_weights ? "1" : "0"},
          {"vocab", vocab_kind},
          {"vocab_hex", to_hex(symbols)}};
}

// Mean loss over `iters` batches of a split, forward only in eval mode (through the pipeline). The
// batches come from a generator seeded the same way at every evaluation, so successive evaluations
// are comparable. Each micro-batch's mean loss is weighted by its rows.
double estimate_loss(parallel::Pipe& pipe, const std::vector<int64_t>& tokens, const Config& cfg, uint64_t seed,
                     const char* split) {
  Generator gen(seed);
  double total = 0;
  for (int64_t i = 0; i < cfg.eval_iters; ++i) {
    nn::Batch b = nn::sample_batch(tokens, cfg.batch, cfg.context, gen, split);
    total += pipe.evaluate(b.x, b.y, [](const Tensor& out, const Tensor& y) {
      return nn::gpt_loss(out, y).item() * static_cast<double>(y.size(0));
    }) / static_cast<double>(cfg.batch);
  }
  return total / static_cast<double>(cfg.eval_iters);
}

int run(const Config& cfg, const examples::PipelineFlags& flags, const examples::TraceFlags& trace,
        const std::string& fingerprint) {
  MP_CHECK(cfg.steps >= 0, "--steps must be >= 0, got ", cfg.steps);
  MP_CHECK(cfg.batch > 0, "--batch must be positive, got ", cfg.batch);
  MP_CHECK(cfg.eval_interval > 0 && cfg.eval_iters > 0, "--eval-interval and --eval-iters must be positive, got ",
           cfg.eval_interval, " and ", cfg.eval_iters);
  MP_CHECK(cfg.vocab == "char" || cfg.vocab == "byte", "--vocab must be char or byte, got '", cfg.vocab, "'");
  MP_CHECK(cfg.lr > 0, "--lr must be positive, got ", cfg.lr);
  MP_CHECK(cfg.sample >= 0, "--sample must be >= 0, got ", cfg.sample);
  flags.check();
  flags.check_batch(cfg.batch);
  MP_CHECK(parallel::async_mode_of(flags.schedule) == parallel::AsyncMode::None || cfg.clip == 0, "--clip ", cfg.clip,
           " and --schedule ", flags.schedule, " do not combine: each stage steps its optimizer inside the pipeline, "
           "where no global gradient norm exists (pass --clip 0)");
  nn::GPTConfig mc;  // the vocabulary size comes from the corpus below
  mc.context = cfg.context;
  mc.n_layer = cfg.layers;
  mc.n_head = cfg.heads;
  mc.d_model = cfg.d_model;
  mc.dropout = cfg.dropout;
  mc.tie_weights = cfg.tie_weights;
  mc.validate();  // heads dividing d_model etc., before any work

  // ---- corpus and vocabulary ----
  std::vector<std::string> files;
  const std::string text = cfg.data.empty() ? nn::load_fortunes(nn::kFortunesDir, &files) : nn::read_text_file(cfg.data);
  const std::string source = cfg.data.empty() ? std::string(nn::kFortunesDir) + " (" + std::to_string(files.size()) +
                                                    " fortune files)"
                                              : cfg.data;
  MP_CHECK(!text.empty(), "corpus '", source, "' is empty");
  nn::Metadata ckpt_meta;
  if (!cfg.load.empty()) nn::load_tensors(cfg.load, &ckpt_meta);  // validates the file, reads the metadata
  std::string vocab_kind = cfg.vocab;
  nn::Vocabulary vocab = cfg.vocab == "byte" ? nn::Vocabulary::bytes() : nn::Vocabulary::chars(text);
  if (ckpt_meta.count("vocab_hex")) {  // a checkpoint's embedding rows mean its own symbols
    vocab_kind = ckpt_meta["vocab"];
    vocab = vocab_kind == "byte" ? nn::Vocabulary::bytes() : nn::Vocabulary::chars(from_hex(ckpt_meta["vocab_hex"]));
  }
  const std::vector<int64_t> ids = vocab.encode(text);
  const nn::TextSplit split = nn::split_train_val(ids, 0.1);
  MP_CHECK(static_cast<int64_t>(split.val.size()) >= cfg.context + 1, "corpus '", source, "' is too short: ",
           ids.size(), " tokens leave ", split.val.size(), " for validation, fewer than context + 1 = ",
           cfg.context + 1, " (use a longer text or a smaller --context)");
  std::printf("corpus: %s, %zu bytes; %s vocabulary of %lld symbols\n", source.c_str(), text.size(),
              vocab_kind.c_str(), static_cast<long long>(vocab.size()));
  std::printf("split: %zu train / %zu val tokens (every 10th 8 KiB block is validation)\n", split.train.size(),
              split.val.size());
  const double unigram = nn::unigram_entropy(split.val, vocab.size());
  std::printf("baselines: ln(vocab) = %.4f nats (uniform guess); unigram entropy of val = %.4f nats (%.3f bits/char)\n",
              std::log(static_cast<double>(vocab.size())), unigram, unigram / std::log(2.0));
  std::printf("           bigram entropy of val, H(next | current) = %.4f nats (the best loss from one token of context)\n",
              nn::bigram_entropy(split.val, vocab.size()));

  const std::vector<int64_t> prompt = vocab.encode(cfg.prompt);  // fails now, not after training
  MP_CHECK(cfg.sample == 0 || !prompt.empty(), "--prompt must not be empty when sampling");

  // ---- model: built whole from the seed (one per replica this process runs), then cut by the pipeline ----
  mc.vocab_size = vocab.size();
  std::vector<std::shared_ptr<nn::Sequential>> replicas;
  for (int i = 0; i < flags.model_copies(); ++i) {
    Generator init_gen(cfg.seed);
    replicas.push_back(nn::make_gpt(mc, &init_gen));
  }
  const auto& model = replicas[0];
  const nn::Metadata meta = describe(mc, vocab_kind, vocab.symbols());
  if (!cfg.load.empty())
    for (const char* key : {"layers", "d_model", "heads", "context", "vocab_size", "tie_weights"}) {
      auto it = ckpt_meta.find(key);
      MP_CHECK(it == ckpt_meta.end() || it->second == meta.at(key), "checkpoint '", cfg.load, "' holds a model with ",
               key, "=", it == ckpt_meta.end() ? "" : it->second, ", this run builds ", key, "=", meta.at(key),
               " (", mc.str(), "): pass the flags it was trained with");
    }
  Generator sample_probe(cfg.seed + 1);
  const Tensor profile_sample =
      nn::sample_batch(split.train, cfg.batch / flags.dp / flags.microbatches, cfg.context, sample_probe, "train").x;

  // Every rank runs this: a thread each under --comm local, a process each under mpirun.
  parallel::launch(flags.launch(), [&](parallel::RankContext& ctx) {
    const bool lead = ctx.comm.rank() == 0;
    parallel::Grid grid = flags.grid(ctx.comm);
    auto mine = replicas[static_cast<size_t>(flags.copy_of(ctx.comm.rank(), grid))];
    parallel::Pipe pipe(mine, *grid.pipeline,
                        flags.pipe(ctx, grid, cfg.seed + 2, [](const Tensor& out, const Tensor& y) { return nn::gpt_loss(out, y); },
                                   profile_sample, fingerprint));
    parallel::DataParallel dp(pipe.parameters(), *grid.data, flags.data_parallel());
    if (!cfg.load.empty()) {
      pipe.load(cfg.load);  // names, shapes and dtypes checked tensor by tensor, on rank 0
      if (lead) std::printf("loaded %s\n", cfg.load.c_str());
    }
    const int64_t flops_per_token = nn::gpt_flops_per_token(*model, mc);
    if (lead)
      std::printf("model: %s\nparameters: %lld; %.2f MFLOP per training token (6N + 12LTC)\n", mc.str().c_str(),
                  static_cast<long long>(model->num_parameters()), flops_per_token / 1e6);
    examples::print_start(ctx, grid, pipe);
    trace.check_within(cfg.steps);
    examples::TraceFlags traced = trace;  // replica 0's pipeline traces; the others run the same steps
    if (grid.replica != 0) traced.dir.clear();
    examples::StepTracer tracer(traced, *grid.pipeline);

    // ---- training ----
    // This rank's layers (with --zero1, its share of them).
    auto groups = dp.optimizer_groups(nn::gpt_param_groups(*pipe.local_layers(), cfg.weight_decay));
    if (lead)
      std::printf("AdamW: lr %.2e (warm-up %lld, cosine to %.2e), weight decay %.2f on matmul weights, none on "
                  "biases/norms/embeddings; clip %.1f (global norm over every stage)\n",
                  cfg.lr, static_cast<long long>(cfg.warmup), cfg.min_lr < 0 ? cfg.lr / 10 : cfg.min_lr,
                  cfg.weight_decay, cfg.clip);
    optim::AdamW opt(groups, optim::AdamWOptions{.lr = cfg.lr, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8,
                                                 .weight_decay = cfg.weight_decay});
    if (pipe.asynchronous()) pipe.set_optimizer(opt);  // pipedream / 2bw step it inside train_step
    Generator data_gen(cfg.seed + 1);  // the same batches on every rank
    const double min_lr = cfg.min_lr < 0 ? cfg.lr / 10 : cfg.min_lr;
    const bool live = lead && isatty(fileno(stderr));
    const auto t0 = std::chrono::steady_clock::now();
    double train_time = 0;  // seconds spent in training steps since the last report
    int64_t tokens_since = 0;
    double loss_since = 0;
    if (lead) std::printf("%6s  %10s  %8s  %8s  %10s  %9s\n", "step", "train-loss", "val-loss", "lr", "tokens/s", "elapsed");
    for (int64_t step = 0; step <= cfg.steps; ++step) {
      opt.set_lr(optim::cosine_lr(step, std::max<int64_t>(cfg.steps, 1), cfg.lr, min_lr, cfg.warmup));  // this step's
      if (step % cfg.eval_interval == 0 || step == cfg.steps) {
        if (live) std::fprintf(stderr, "\r%100s\r", "");
        const double tl = estimate_loss(pipe, split.train, cfg, cfg.seed + 10, "train");
        const double vl = estimate_loss(pipe, split.val, cfg, cfg.seed + 11, "val");
        if (lead) {
          std::printf("%6lld  %10.4f  %8.4f  %8.2e  %10.0f  %8.1fs\n", static_cast<long long>(step), tl, vl, opt.lr(),
                      train_time > 0 ? tokens_since / train_time : 0.0, seconds_since(t0));
          std::fflush(stdout);
        }
        train_time = 0;
        tokens_since = 0;
        loss_since = 0;
      }
      if (step == cfg.steps) break;
      const auto ts = std::chrono::steady_clock::now();
      nn::Batch b = nn::sample_batch(split.train, cfg.batch, cfg.context, data_gen, "train");
      dp.zero_grad();  // every gradient: with --zero1 the optimizer holds only a share
      // This replica's shard; gradients averaged over the replicas, then clipped over every stage.
      const int64_t part = cfg.batch / flags.dp, first = grid.replica * part;
      double loss = pipe.train_step(ops::narrow(b.x, 0, first, part), ops::narrow(b.y, 0, first, part), first);
      tracer.after_step(pipe, step + 1, ctx.comm.backend());
      dp.finish_gradients();
      loss = dp.average(loss);
      if (cfg.clip > 0) pipe.clip_grad_norm_(cfg.clip);
      if (!pipe.asynchronous()) opt.step();
      dp.after_step();
      train_time += seconds_since(ts);
      tokens_since += cfg.batch * cfg.context;
      loss_since += loss;
      if (live) {
        const int64_t in_interval = step % cfg.eval_interval + 1;
        std::fprintf(stderr, "\r  step %lld/%lld  loss %.4f  lr %.2e  %.0f tokens/s ", static_cast<long long>(step + 1),
                     static_cast<long long>(cfg.steps), loss_since / in_interval, opt.lr(), tokens_since / train_time);
      }
    }
    if (cfg.steps > 0) {
      examples::print_memory(ctx, pipe, opt, flags.zero1);
      examples::print_data_parallel(ctx, dp);
    }
    if (!cfg.save.empty()) {
      if (grid.replica == 0) pipe.save(cfg.save, meta);  // the replicas hold the same weights
      ctx.comm.barrier();
      if (lead) std::printf("saved %s\n", cfg.save.c_str());
    }

    // ---- sample, on rank 0 with the whole model gathered ----
    if (cfg.sample > 0) {
      if (grid.replica == 0) pipe.gather();
      if (lead) {
        model->to(ctx.device);  // the gathered layers, each where its stage computed, to this rank's device
        nn::SampleOptions so;
        so.temperature = cfg.temperature;
        so.top_k = cfg.top_k;
        Generator sample_gen(cfg.seed + 3);
        const auto out = nn::gpt_generate(*model, mc, prompt, cfg.sample, so, sample_gen);
        std::printf("---- sample (%lld characters, temperature %.2f, top-k %lld) ----\n%s\n----\n",
                    static_cast<long long>(cfg.sample), cfg.temperature, static_cast<long long>(cfg.top_k),
                    vocab.decode(out).c_str());
      }
    }
  });
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  minipipe::init_runtime(argv);  // passive OpenMP waits unless the user chose (tensor/threads.h)
  CLI::App app{"Train a GPT-style character-level language model with minipipe, on one device or as a pipeline"};
  Config cfg;
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // a repeated flag: the last wins
  app.add_option("--layers", cfg.layers, "transformer blocks")->capture_default_str();
  app.add_option("--d-model", cfg.d_model, "embedding width C")->capture_default_str();
  app.add_option("--heads", cfg.heads, "attention heads (must divide d-model)")->capture_default_str();
  app.add_option("--context", cfg.context, "context length T (tokens per sequence)")->capture_default_str();
  app.add_option("--batch", cfg.batch, "sequences per step B")->capture_default_str();
  app.add_option("--steps", cfg.steps, "optimizer steps")->capture_default_str();
  app.add_option("--lr", cfg.lr, "peak learning rate")->capture_default_str();
  app.add_option("--min-lr", cfg.min_lr, "learning rate at the end of the cosine decay (-1: lr / 10)")->capture_default_str();
  app.add_option("--warmup", cfg.warmup, "linear warm-up steps")->capture_default_str();
  app.add_option("--seed", cfg.seed, "random seed (init, batches, dropout, sampling)")->capture_default_str();
  app.add_option("--eval-interval", cfg.eval_interval, "steps between evaluations")->capture_default_str();
  app.add_option("--eval-iters", cfg.eval_iters, "batches per loss estimate")->capture_default_str();
  app.add_option("--dropout", cfg.dropout, "dropout on embeddings, attention weights and residual branches")
      ->capture_default_str();
  app.add_option("--weight-decay", cfg.weight_decay, "AdamW weight decay (matmul weights only)")->capture_default_str();
  app.add_option("--clip", cfg.clip, "global gradient-norm clip (0: off)")->capture_default_str();
  app.add_flag("--tie-weights", cfg.tie_weights, "share the token embedding with the LM head");
  app.add_option("--data", cfg.data, "a text file to train on (default: the fortunes in /usr/share/games/fortunes)");
  app.add_option("--vocab", cfg.vocab, "char (sorted unique bytes of the corpus) or byte (256)")->capture_default_str();
  app.add_option("--save", cfg.save, "write a safetensors checkpoint here at the end");
  app.add_option("--load", cfg.load, "start from this safetensors checkpoint (same model flags)");
  app.add_option("--sample", cfg.sample, "characters to generate at the end (0: none)")->capture_default_str();
  app.add_option("--prompt", cfg.prompt, "text the sample starts from")->capture_default_str();
  app.add_option("--temperature", cfg.temperature, "sampling temperature (0: greedy)")->capture_default_str();
  app.add_option("--top-k", cfg.top_k, "sample among the k most likely characters (0: all)")->capture_default_str();
  examples::PipelineFlags flags;
  flags.add_to(app);
  examples::TraceFlags trace;
  trace.add_to(app);
  CLI11_PARSE(app, argc, argv);
  try {
    return run(cfg, flags, trace, examples::fingerprint(app));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_gpt: error: %s\n", e.what());
    return 1;
  }
}
