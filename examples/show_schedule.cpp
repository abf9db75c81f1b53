// show_schedule: prints a pipeline schedule (generated, or read from a file), its simulated text
// Gantt chart, and per rank the bubble (both conventions, next to the closed forms) and peak
// in-flight activations; --svg draws the timeline as an SVG Gantt chart (parallel/gantt_svg.h).
// Run: ./build/show_schedule --schedule 1f1b --stages 4 --microbatches 8
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "examples/schedule_format.h"
#include "parallel/cost_model.h"
#include "parallel/gantt_svg.h"
#include "parallel/generators.h"
#include "parallel/lowering.h"
#include "parallel/simulator.h"
#include "parallel/validator.h"
#include "parallel/weight_versions.h"
#include "tensor/error.h"

namespace mp = minipipe::parallel;

using minipipe::examples::fmt;
using minipipe::examples::fmt_bytes;
using minipipe::examples::fmt_fixed;

namespace {

struct Options {
  std::string schedule = "1f1b", file, save, svg, checkpoint = "never";
  int stages = 4, microbatches = 8, virtual_stages = 0;
  std::vector<double> costs = {1.0, 2.0, 0.0};  // per stage: F, B, W
  std::vector<double> chunk_scale;
  std::vector<int> stage_replicas;
  double latency = 0.0, bandwidth = 0.0, act_bytes = 0.0, msg_bytes = -1.0, slot = 0.0;
  bool lowered = false, no_lower = false, blocking_sends = false;
  int window = 0;  // 2bw
  bool no_weight_stashing = false, vertical_sync = false;  // pipedream
};

// The asynchronous schedules' other half: when each stage steps its optimizer and which weight
// version each micro-batch reads, per rank, over the second step (so 2BW's delay shows), and how
// many versions each rank holds (parallel/weight_versions.h).
mp::AsyncOptions async_of(const Options& o, int M) {
  mp::AsyncOptions a;
  a.mode = mp::async_mode_of(o.schedule);
  a.window = o.window == 0 ? M : o.window;
  a.weight_stashing = !o.no_weight_stashing;
  a.vertical_sync = o.vertical_sync;
  return a;
}

void print_versions(const Options& o, const mp::Program& program) {
  const int P = program.num_ranks, M = program.num_microbatches;
  const mp::AsyncOptions a = async_of(o, M);
  const bool dream = a.mode == mp::AsyncMode::PipeDream;
  const int64_t k0 = dream ? M : M / a.window;  // updates (2BW: windows) in the first step
  std::cout << "\n" << o.schedule << ": 1F1B's order, but "
            << (dream ? "each stage steps its optimizer after every B (an update per micro-batch)"
                      : "each stage steps its optimizer after the last B of every window of " +
                            std::to_string(a.window) + " micro-batches, window t reading version t-1")
            << (dream && !a.weight_stashing ? ", and B reads the newest weights (no stashing)" : "")
            << (a.vertical_sync ? ", every stage reading the version stage 0 read (vertical sync)" : "")
            << ".\nThe step drains once at its end; the bubble above is paid once per M micro-batches.\n"
            << "weight version each F reads in the second step (version k = after k updates"
            << (dream && !a.weight_stashing ? "; B reads the newest, F's + the updates since" : "; B reads F's") << "):\n";
  for (int r = 0; r < P; ++r) {
    const mp::VersionPlan plan = mp::plan_versions(program, r, a, k0);
    std::vector<int64_t> reads(static_cast<size_t>(M), -1);
    for (size_t i = 0; i < plan.read.size(); ++i)
      if (program.on(r)[i].op == mp::Op::F) reads[static_cast<size_t>(program.on(r)[i].microbatch)] = plan.read[i];
    std::cout << "  rank " << r << ":";
    for (int64_t v : reads) std::cout << ' ' << v;
    std::cout << "   (" << plan.peak_held << (plan.peak_held == 1 ? " version" : " versions") << " held at most)\n";
  }
}

// A stage's costs split evenly over its v chunks; --chunk-scale makes chunks unequal.
mp::Costs make_costs(const Options& o, const mp::Program& p) {
  const int C = p.num_chunks;
  const double v = p.replicated() ? 1.0 : static_cast<double>(C) / p.num_ranks;  // replicas run whole stages
  MP_CHECK(o.costs.size() == 3, "--costs takes three numbers F,B,W, got ", o.costs.size());
  mp::Costs c = mp::Costs::uniform(C, o.costs[0] / v, o.costs[1] / v, o.costs[2] / v);
  if (!o.chunk_scale.empty()) {
    MP_CHECK(static_cast<int>(o.chunk_scale.size()) == C, "--chunk-scale needs one factor per ",
             "chunk (", C, "), got ", o.chunk_scale.size());
    for (size_t i = 0; i < static_cast<size_t>(C); ++i) {
      c.forward[i] *= o.chunk_scale[i];
      c.backward[i] *= o.chunk_scale[i];
      c.weight[i] *= o.chunk_scale[i];
    }
  }
  c.latency = o.latency;
  if (o.bandwidth > 0.0) c.bandwidth = o.bandwidth;
  c.activation_bytes.assign(static_cast<size_t>(C), o.act_bytes / v);
  if (o.msg_bytes >= 0.0) c.message_bytes.assign(static_cast<size_t>(C), o.msg_bytes);
  return c;
}

void print_program(const char* title, const mp::Program& p) {
  std::cout << title << '\n';
  for (int r = 0; r < p.num_ranks; ++r) {
    std::cout << "rank " << r << ':';
    for (const mp::Action& a : p.on(r)) std::cout << ' ' << mp::to_string(a);
    std::cout << '\n';
  }
  std::cout << '\n';
}

int run(const Options& o) {
  mp::Program program =
      !o.file.empty()               ? mp::read_program(o.file)
      : !o.stage_replicas.empty()   ? mp::replicated(o.schedule, o.stage_replicas, o.microbatches)
                                    : mp::make_schedule(
                o.schedule, o.stages, o.microbatches,
                o.virtual_stages > 0 ? o.virtual_stages : (o.schedule == "interleaved" ? 2 : 1));
  const int P = program.num_ranks, C = program.num_chunks, M = program.num_microbatches;
  const double v = program.replicated() ? 1.0 : static_cast<double>(C) / P;
  if (mp::async_mode_of(o.schedule) != mp::AsyncMode::None)  // a 2BW window too short: an error before any output
    for (int r = 0; r < P; ++r) mp::plan_versions(program, r, async_of(o, M), 0);
  std::cout << (o.file.empty() ? "schedule " + o.schedule : "program file " + o.file) << ": P=" << P
            << " ranks, " << C << " chunks (v=" << fmt(v) << "), M=" << M << " micro-batches"
            << (program.forward_only ? ", forward only" : "") << "\n\n";
  if (!o.save.empty()) mp::write_program(program, o.save);

  print_program(program.has_comm() ? "program (lowered):" : "program (compute only):", program);
  mp::validate(program);  // an invalid file stops here: the error prints the marked grid
  const bool lower = !program.has_comm() && !o.no_lower;
  const mp::Costs costs = mp::with_checkpointing(make_costs(o, program), mp::parse_checkpoint(o.checkpoint), C);
  const mp::Program run = !lower ? program : o.blocking_sends ? mp::lower(program, costs) : mp::lower_async(program);
  if (lower && o.lowered)
    print_program(o.blocking_sends ? "lowered (blocking send/recv):" : "lowered (sends that do not block):", run);

  const mp::Simulation sim = mp::simulate(run, costs);
  std::cout << "costs per stage and micro-batch: F=" << fmt(o.costs[0]) << " B=" << fmt(o.costs[1])
            << " W=" << fmt(o.costs[2])
            << (o.checkpoint == "never" ? "" : "; checkpoint " + o.checkpoint + ": B runs F again, stash = input")
            << (run.has_w() || o.costs[2] == 0.0 ? "" : " (no W actions: B costs B+W)")
            << "; link: latency " << fmt(costs.latency) << ", bandwidth " << fmt(costs.bandwidth)
            << " bytes/unit\n";
  std::cout << "timeline ("
            << (!run.has_comm()     ? "compute only, asynchronous messages"
                : run.async_sends ? "sends that do not block"
                                  : "blocking send/recv")
            << "):\n"
            << mp::gantt(run, sim, o.slot) << '\n';
  if (!o.svg.empty()) {
    mp::SvgOptions svg;
    svg.title = (o.file.empty() ? o.schedule : o.file) + ", P=" + std::to_string(P) + ", M=" + std::to_string(M) +
                (v != 1.0 ? ", v=" + fmt(v) : "") + (o.checkpoint == "never" ? "" : ", checkpoint " + o.checkpoint) +
                ": simulated";
    svg.subtitle = "show_schedule: F=" + fmt(o.costs[0]) + " B=" + fmt(o.costs[1]) + " W=" + fmt(o.costs[2]) +
                   " per stage and micro-batch, time in those units";
    mp::write_text_file(o.svg, mp::gantt_svg(run, sim, svg), "show_schedule --svg");
  }

  // Closed forms for equal stages and free messages: GPipe / 1F1B (v = 1) and interleaved 1F1B
  // (Megatron, exact when P divides M) have idle = (P-1)/v stage-slots of F+B, so
  //   over ideal = (P-1) / (v·M),   of total = (P-1) / (v·M + P-1).
  bool round_robin = C % P == 0;
  for (int c = 0; c < C; ++c) round_robin = round_robin && program.rank_of(c) == c % P;
  const bool plain = !program.has_w() && !program.replicated() && o.file.empty();
  const bool closed = plain && round_robin && o.chunk_scale.empty() && (v == 1.0 || M % P == 0);
  std::string over = closed ? fmt_fixed((P - 1) / (v * M)) : "-";
  std::string total = closed ? fmt_fixed((P - 1) / (v * M + P - 1)) : "-";
  // Zero bubble (Qi et al. 2024): ZB-H1 idles (P-1)(T_F + T_B - T_W) on every rank when T_W <= T_F;
  // ZB-H2 at equal costs idles (P-1)T, all of it before its first or after its last action.
  const double tf = o.costs[0], tb = o.costs[1], tw = o.costs[2];
  const bool zb_closed = o.file.empty() && o.chunk_scale.empty() && M >= P &&
                         ((o.schedule == "zb-h1" && tw > 0 && tw <= tf) ||
                          (o.schedule == "zb-h2" && tf == tb && tb == tw && M >= 2 * P - 1));
  if (zb_closed) {
    const double idle = o.schedule == "zb-h1" ? (P - 1) * (tf + tb - tw) : (P - 1) * tf, work = M * (tf + tb + tw);
    total = fmt_fixed(idle / (work + idle));
    over = fmt_fixed(idle / work);
  }
  std::cout << "step time (makespan): " << fmt(sim.makespan, 6) << "\n";
  if (lower) {  // what blocking sends cost, against sends that do not block
    const double async = mp::simulate(program, costs).makespan;
    const double blocking = mp::simulate(mp::lower(program, costs), costs).makespan;
    if (o.blocking_sends && async != sim.makespan)
      std::cout << "  (with sends that do not block, the default: " << fmt(async, 6) << ")\n";
    if (!o.blocking_sends && blocking != sim.makespan)
      std::cout << "  (with blocking sends, --blocking-sends: " << fmt(blocking, 6) << ")\n";
  }
  std::printf("%-5s %9s %9s | %-22s | %-22s | %s\n", "", "", "", "bubble of total time",
              "bubble over ideal time", "peak in-flight");
  std::printf("%-5s %9s %9s | %10s %11s | %10s %11s | %8s %12s\n", "rank", "busy", "idle",
              "simulated", "closed form", "simulated", "closed form", "micro-b.", "bytes");
  for (int r = 0; r < P; ++r) {
    const mp::RankStats& s = sim.ranks[static_cast<size_t>(r)];
    std::printf("%-5d %9.4g %9.4g | %10.4f %11s | %10.4f %11s | %8d %12s\n", r, s.busy, s.idle,
                s.bubble_of_total, total.c_str(), s.bubble_over_ideal, over.c_str(),
                s.peak_inflight, fmt_bytes(s.peak_inflight_bytes).c_str());
  }
  std::cout << "bubble = idle / makespan (of total time) and idle / busy (over ideal time);\n";
  if (zb_closed && o.schedule == "zb-h1")
    std::cout << "closed form (ZB-H1, T_W <= T_F): every rank idles (P-1)(T_F+T_B-T_W) = "
              << fmt((P - 1) * (tf + tb - tw)) << " a step; 1F1B idles (P-1)(T_F+T_B+T_W) = "
              << fmt((P - 1) * (tf + tb + tw)) << '\n';
  else if (zb_closed)
    std::cout << "closed form (ZB-H2, equal costs): (P-1)T idle per rank, none of it between a rank's first and "
                 "last action\n";
  else if (program.has_w())
    std::cout << "closed forms: ZB-H1 with T_W <= T_F, ZB-H2 with equal F, B, W (none for these costs)\n";
  else
    std::cout << "closed forms for equal stages and free messages: (P-1)/(v*M+P-1) of total, "
              << "(P-1)/(v*M) over ideal" << (v == 1.0 ? "" : " = (1/v)(P-1)/M") << '\n';
  if (o.file.empty() && mp::async_mode_of(o.schedule) != mp::AsyncMode::None) print_versions(o, program);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Print a pipeline schedule, its simulated Gantt chart, bubble and memory"};
  Options o;
  app.add_option("--schedule", o.schedule, "gpipe, 1f1b, interleaved, forward, zb-h1, zb-h2, pipedream or 2bw")
      ->check(CLI::IsMember({"gpipe", "1f1b", "interleaved", "forward", "zb-h1", "zb-h2", "pipedream", "2bw"}));
  app.add_option("--window", o.window, "2bw: micro-batches per weight update (0: all M)");
  app.add_flag("--no-weight-stashing", o.no_weight_stashing, "pipedream: B reads the newest weights");
  app.add_flag("--vertical-sync", o.vertical_sync, "pipedream: every stage reads stage 0's version");
  app.add_option("--stages", o.stages, "pipeline ranks P");
  app.add_option("--microbatches", o.microbatches, "micro-batches M");
  app.add_option("--virtual", o.virtual_stages, "chunks per rank v (interleaved; default 2)");
  app.add_option("--costs", o.costs, "F,B,W time of one stage for one micro-batch")->delimiter(',');
  app.add_option("--chunk-scale", o.chunk_scale, "per-chunk cost factors, e.g. 1,1,2,1")
      ->delimiter(',');
  app.add_option("--stage-replicas", o.stage_replicas,
                 "ranks per stage, e.g. 2,1 (1F1B-RR: micro-batch m on replica m mod R_s; replaces --stages)")
      ->delimiter(',');
  app.add_option("--latency", o.latency, "per-message latency");
  app.add_option("--bandwidth", o.bandwidth, "bytes per time unit (default: free link)");
  app.add_option("--act-bytes", o.act_bytes, "activation bytes a stage stashes per micro-batch");
  app.add_option("--msg-bytes", o.msg_bytes, "bytes of one message (default: --act-bytes / v)");
  app.add_option("--slot", o.slot, "Gantt slot width (default: the shortest compute action)");
  app.add_option("--checkpoint", o.checkpoint, "activation checkpointing: B runs F again, stash = the input")
      ->check(CLI::IsMember({"never", "except_last", "always"}));
  app.add_option("--svg", o.svg, "also draw the simulated timeline as an SVG Gantt chart in this file");
  app.add_option("--file", o.file, "simulate a hand-written program file instead");
  app.add_option("--save", o.save, "write the program to this file (a starting point to edit)");
  app.add_flag("--lowered", o.lowered, "also print the program with its send/recv actions");
  app.add_flag("--blocking-sends", o.blocking_sends,
               "lower for sends that wait for their receives (lower(), placed by the costs); default: sends that "
               "do not block (lower_async, what the Pipe runs)");
  app.add_flag("--no-lower", o.no_lower,
               "simulate the compute-only program (asynchronous messages) instead of lowering");
  CLI11_PARSE(app, argc, argv);
  try {
    const mp::AsyncMode am = mp::async_mode_of(o.schedule);
    MP_CHECK(o.window == 0 || am == mp::AsyncMode::TwoBW, "--window ", o.window, " applies to --schedule 2bw, not ",
             o.schedule);
    MP_CHECK((!o.no_weight_stashing && !o.vertical_sync) || am == mp::AsyncMode::PipeDream,
             "--no-weight-stashing and --vertical-sync apply to --schedule pipedream, not ", o.schedule);
    MP_CHECK(!(o.no_weight_stashing && o.vertical_sync), "--vertical-sync and --no-weight-stashing do not combine");
    MP_CHECK(am == mp::AsyncMode::None || (o.file.empty() && o.stage_replicas.empty()), "--schedule ", o.schedule,
             " and ", o.file.empty() ? "--stage-replicas" : "--file", " do not combine");
    return run(o);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << '\n';
    return 1;
  }
}
