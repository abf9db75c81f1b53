// End-to-end tests of the programs that show and measure pipelines: the explorer page's numbers
// against the simulator for every configuration and against show_schedule's printout, the page in
// headless Chromium (it loads without errors, and moving a slider shows show_schedule's bubble),
// show_schedule --svg, the trainers' --trace (local and mpi) and bench_schedules' tiny sweep.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "parallel/cost_model.h"
#include "parallel/generators.h"
#include "parallel/lowering.h"
#include "parallel/trace.h"
#include "tests/run_program.h"
#include "tests/temp_dir_test.h"

namespace mp = minipipe::parallel;
using minipipe::test_util::mpirun;
using minipipe::test_util::ProgramResult;
using minipipe::test_util::run_command;
using minipipe::test_util::run_program;

namespace {

class TraceCli : public minipipe::test_util::TempDirTest {
 protected:
  TraceCli() : TempDirTest("minipipe_trace_cli_") {}
};

std::string read(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

bool has(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

// show_schedule's per-rank rows: rank, busy, idle, bubble of total (simulated, closed form), over
// ideal (simulated, closed form), peak in-flight micro-batches and bytes.
std::vector<std::vector<std::string>> table_rows(const std::string& out) {
  std::vector<std::vector<std::string>> rows;
  const std::regex row(R"(\n(\d+) +(\S+) +(\S+) \| +(\S+) +(\S+) \| +(\S+) +(\S+) \| +(\d+) +([0-9.]+ \w+))");
  for (auto it = std::sregex_iterator(out.begin(), out.end(), row); it != std::sregex_iterator(); ++it) {
    std::vector<std::string> r;
    for (size_t i = 1; i < it->size(); ++i) r.push_back((*it)[i].str());
    rows.push_back(r);
  }
  return rows;
}

nlohmann::json explorer_data(const std::string& html) {
  const std::string start = "const DATA = ", end = ";\nconst $";
  const size_t a = html.find(start), b = html.find(end);
  if (a == std::string::npos || b == std::string::npos) return {};
  return nlohmann::json::parse(html.substr(a + start.size(), b - a - start.size()));
}

std::string show_schedule_args(const std::string& s, int P, int M, int v, bool ck) {
  return "--schedule " + s + " --stages " + std::to_string(P) + " --microbatches " + std::to_string(M) +
         (s == "interleaved" ? " --virtual " + std::to_string(v) : "") +
         (s == "zb-h1" || s == "zb-h2" ? " --costs 1,1,1" : "") + " --act-bytes 1048576" +
         (ck ? " --checkpoint always" : "");
}

// bench_schedules' CSV below its header: each line with its fields (every line must have all 27).
std::vector<std::pair<std::string, std::vector<std::string>>> csv_rows(const std::string& file) {
  std::vector<std::pair<std::string, std::vector<std::string>>> out;
  std::ifstream csv(file);
  std::string line;
  std::getline(csv, line);
  while (std::getline(csv, line)) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    for (std::string x; std::getline(ss, x, ',');) f.push_back(x);
    EXPECT_EQ(f.size(), 27u) << line;
    f.resize(27);
    out.emplace_back(line, f);
  }
  return out;
}

std::string f4(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", x);
  return buf;
}

}  // namespace

TEST_F(TraceCli, ExplorerNumbersAreTheSimulatorsForEveryConfiguration) {
  const ProgramResult r = run_program("make_explorer", "--out " + path("e.html"));
  ASSERT_EQ(r.status, 0) << r.output;
  const nlohmann::json data = explorer_data(read(path("e.html")));
  // gpipe, 1f1b, zb-h1, zb-h2, pipedream, 2bw; interleaved v = 2..4; x checkpoint
  ASSERT_EQ(data.size(), 6u * (8 * 16 * 2) + 8 * 16 * 3 * 2);
  int checked = 0;
  for (const auto& [key, e] : data.items()) {
    std::smatch m;
    ASSERT_TRUE(std::regex_match(key, m, std::regex(R"(([\w-]+)/(\d+)/(\d+)/(\d+)/(never|always))"))) << key;
    const std::string s = m[1];
    const int P = std::stoi(m[2]), M = std::stoi(m[3]), v = std::stoi(m[4]);
    mp::Program prog;
    try {
      prog = mp::make_schedule(s, P, M, v);
    } catch (const minipipe::Error& err) {
      EXPECT_EQ(e.at("err").get<std::string>(), err.what()) << key;
      continue;
    }
    if (s == "pipedream" || s == "2bw")  // weight versions: P - r in PipeDream's steady state, 2 in 2BW's
      for (int rank = 0; rank < P; ++rank)
        if (s == "2bw" || M >= 2 * (P - 1 - rank) + 1) {
          EXPECT_EQ(e.at("wv")[static_cast<size_t>(rank)].get<int>(), s == "2bw" ? 2 : P - rank) << key;
        }
    // Independently of make_explorer: show_schedule's costs for --act-bytes 1048576 (a stage's F=1,
    // B=2 and bytes split over its v chunks), checkpointing, lowering, simulation.
    const int C = prog.num_chunks;
    mp::Costs c = prog.has_w() ? mp::Costs::uniform(C, 1.0, 1.0, 1.0) : mp::Costs::uniform(C, 1.0 / v, 2.0 / v);
    c.activation_bytes.assign(static_cast<size_t>(C), 1048576.0 / v);
    c = mp::with_checkpointing(c, m[5] == "always" ? mp::Checkpoint::Always : mp::Checkpoint::Never, C);
    const mp::Simulation sim = mp::simulate(mp::lower_async(prog), c);
    ASSERT_EQ(e.at("r").size(), static_cast<size_t>(P)) << key;
    for (int rank = 0; rank < P; ++rank) {
      const auto& got = e.at("r")[static_cast<size_t>(rank)];
      const mp::RankStats& want = sim.ranks[static_cast<size_t>(rank)];
      EXPECT_EQ(got[2].get<std::string>(), f4(want.bubble_of_total)) << key << " rank " << rank;
      EXPECT_EQ(got[3].get<std::string>(), f4(want.bubble_over_ideal)) << key << " rank " << rank;
      EXPECT_EQ(got[4].get<int>(), want.peak_inflight) << key << " rank " << rank;
      // Every compute action drawn, where the simulator put it.
      const auto& line = e.at("t")[static_cast<size_t>(rank)];
      size_t k = 0;
      for (const mp::TimedAction& t : sim.timeline[static_cast<size_t>(rank)]) {
        if (!mp::is_compute(t.action.op)) continue;
        ASSERT_LT(k + 4, line.size()) << key;
        EXPECT_EQ(line[k].get<int>(), t.action.chunk);
        EXPECT_NEAR(line[k + 3].get<double>(), t.start, 1e-4) << key;
        EXPECT_NEAR(line[k + 4].get<double>(), t.end, 1e-4) << key;
        k += 5;
      }
      EXPECT_EQ(k, line.size()) << key;
    }
    ++checked;
  }
  EXPECT_GT(checked, 1000);
  // The versions lines, as show_schedule prints them.
  for (const std::string s : {"pipedream", "2bw"}) {
    const ProgramResult r = run_program("show_schedule", show_schedule_args(s, 4, 8, 1, false));
    ASSERT_EQ(r.status, 0) << r.output;
    const nlohmann::json& e = data.at(s + "/4/8/1/never");
    for (int rank = 0; rank < 4; ++rank) {
      std::string line = "  rank " + std::to_string(rank) + ":";
      for (const auto& v : e.at("fr")[static_cast<size_t>(rank)]) line += " " + std::to_string(v.get<int>());
      const int held = e.at("wv")[static_cast<size_t>(rank)].get<int>();
      line += "   (" + std::to_string(held) + (held == 1 ? " version" : " versions") + " held at most)\n";
      EXPECT_TRUE(has(r.output, line)) << line << r.output;
    }
  }
}

TEST_F(TraceCli, ExplorerPrintsWhatShowSchedulePrints) {
  ASSERT_EQ(run_program("make_explorer", "--out " + path("e.html")).status, 0);
  const nlohmann::json data = explorer_data(read(path("e.html")));
  struct Case { std::string s; int P, M, v; bool ck; };
  for (const Case& c : {Case{"1f1b", 4, 8, 1, false}, Case{"gpipe", 3, 5, 1, true}, Case{"interleaved", 4, 8, 2, false},
                        Case{"interleaved", 3, 6, 3, true}, Case{"1f1b", 1, 1, 1, false}, Case{"gpipe", 8, 16, 1, false}}) {
    const ProgramResult r = run_program("show_schedule", show_schedule_args(c.s, c.P, c.M, c.v, c.ck));
    ASSERT_EQ(r.status, 0) << r.output;
    const auto rows = table_rows(r.output);
    const nlohmann::json& e = data.at(c.s + "/" + std::to_string(c.P) + "/" + std::to_string(c.M) + "/" +
                                      std::to_string(c.v) + "/" + (c.ck ? "always" : "never"));
    ASSERT_EQ(rows.size(), static_cast<size_t>(c.P)) << r.output;
    EXPECT_TRUE(has(r.output, "step time (makespan): " + e.at("mk").get<std::string>() + "\n")) << r.output;
    for (int rank = 0; rank < c.P; ++rank) {
      const auto& got = e.at("r")[static_cast<size_t>(rank)];
      const auto& want = rows[static_cast<size_t>(rank)];
      EXPECT_EQ(got[0].get<std::string>(), want[1]);  // busy
      EXPECT_EQ(got[1].get<std::string>(), want[2]);  // idle
      EXPECT_EQ(got[2].get<std::string>(), want[3]);  // bubble of total
      EXPECT_EQ(e.contains("cf") ? e.at("cf")[0].get<std::string>() : "-", want[4]);
      EXPECT_EQ(got[3].get<std::string>(), want[5]);  // over ideal
      EXPECT_EQ(std::to_string(got[4].get<int>()), want[7]);
      EXPECT_EQ(got[5].get<std::string>(), want[8]);  // bytes
    }
  }
}

// The page in a real browser: Debian's chromium, headless, the DOM dumped after the scripts ran.
TEST_F(TraceCli, ExplorerInHeadlessChromium) {
  const ProgramResult which = run_command("command -v chromium || command -v chromium-browser");
  const std::string browser = which.output.empty() ? "" : which.output.substr(0, which.output.find('\n'));
  if (which.status != 0 || browser.empty()) {
    if (std::getenv("CI")) FAIL() << "chromium is not installed (scripts/setup.sh installs it)";
    GTEST_SKIP() << "chromium not installed";
  }
  ASSERT_EQ(run_program("make_explorer", "--out " + path("e.html")).status, 0);
  std::filesystem::create_directories(path("profile"));
  const auto dom = [&](const std::string& query) {
    return run_command(browser + " --headless --no-sandbox --disable-gpu --disable-background-networking "
                       "--no-first-run --enable-logging=stderr --v=0 --user-data-dir=" + path("profile") +
                       " --virtual-time-budget=5000 --dump-dom 'file://" + path("e.html") + "?" + query + "'");
  };
  const auto bubble0 = [](const std::string& args) {
    const auto rows = table_rows(run_program("show_schedule", args).output);
    return rows.empty() ? std::string("?") : rows[0][3];
  };
  struct Case { std::string query, before_args, after_args; };
  for (const Case& c :
       {Case{"schedule=interleaved&P=4&M=8&v=2&move=M:12", show_schedule_args("interleaved", 4, 8, 2, false),
             show_schedule_args("interleaved", 4, 12, 2, false)},
        Case{"schedule=1f1b&P=4&M=8&move=P:6", show_schedule_args("1f1b", 4, 8, 1, false),
             show_schedule_args("1f1b", 6, 8, 1, false)},
        // (Checkpointing adds F to every B: the bubble moves only where the costs shape the schedule,
        // as ZB-H1's, whose idle is (P-1)(T_F + T_B - T_W).)
        Case{"schedule=zb-h1&P=4&M=8&move=checkpoint:1", show_schedule_args("zb-h1", 4, 8, 1, false),
             show_schedule_args("zb-h1", 4, 8, 1, true)}}) {
    const ProgramResult r = dom(c.query);
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_TRUE(has(r.output, ">rendered</div>")) << "the page's script did not finish: " << r.output.substr(0, 2000);
    EXPECT_TRUE(has(r.output, "<pre id=\"errors\"></pre>")) << r.output.substr(0, 4000);
    EXPECT_FALSE(std::regex_search(r.output, std::regex("CONSOLE.*(Uncaught|rror)"))) << r.output.substr(0, 4000);
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.output, m, std::regex(R"re(data-before="([^"]*)" data-after="([^"]*)")re"))) << r.output;
    const std::string before = bubble0(c.before_args), after = bubble0(c.after_args);
    EXPECT_EQ(m[1].str(), before) << c.query;
    EXPECT_EQ(m[2].str(), after) << c.query;
    EXPECT_NE(before, after) << c.query;  // the slider moved the figure
    EXPECT_TRUE(has(r.output, "id=\"bubble-total-0\">" + after + "<")) << c.query;
  }
}

TEST_F(TraceCli, ShowScheduleSvg) {
  const ProgramResult r = run_program("show_schedule", "--schedule gpipe --stages 3 --microbatches 4 --svg " + path("g.svg"));
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string svg = read(path("g.svg"));
  EXPECT_EQ(svg.rfind("<svg ", 0), 0u);
  EXPECT_TRUE(has(svg, "gpipe, P=3, M=4: simulated")) << svg.substr(0, 500);
  const std::regex row("<g class=\"rank\"");
  EXPECT_EQ(std::distance(std::sregex_iterator(svg.begin(), svg.end(), row), std::sregex_iterator()), 3);
  // Checkpointing: each B runs F again (F=1, B=2 -> 3): GPipe's step grows by M + P - 1 = 6 slots.
  const ProgramResult ck = run_program("show_schedule", "--schedule gpipe --stages 3 --microbatches 4 --checkpoint always");
  EXPECT_TRUE(has(r.output, "step time (makespan): 18\n")) << r.output;
  EXPECT_TRUE(has(ck.output, "step time (makespan): 24\n")) << ck.output;
}

TEST_F(TraceCli, TrainMlpTracesTheChosenStep) {
  const ProgramResult r = run_program("train_mlp", "--epochs 1 --max-steps 3 --stages 2 --microbatches 4 --threads 1 "
                                                   "--trace " + path("t") + " --trace-step 2");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(has(r.output, "trace: 1f1b P=2 M=4 v=1 checkpoint never (local), step 2\n")) << r.output;
  EXPECT_TRUE(std::regex_search(r.output, std::regex(R"(\n1 +[0-9.]+ +[0-9.]+ +0\.\d{4} +0\.\d{4} +0\.2000\n)")))
      << r.output;
  const nlohmann::json doc = nlohmann::json::parse(read(path("t/trace.json")));
  size_t x = 0;
  for (const auto& e : doc.at("traceEvents")) x += e.at("ph") == "X";
  EXPECT_EQ(x, mp::lower(mp::one_f_one_b(2, 4)).num_actions());
  for (const char* f : {"measured.svg", "predicted.svg", "bubble.txt"}) EXPECT_TRUE(std::filesystem::exists(path("t/") + f));
  const ProgramResult bad = run_program("train_mlp", "--max-steps 1 --trace " + path("u") + " --trace-step 0");
  EXPECT_EQ(bad.status, 1);
  EXPECT_TRUE(has(bad.output, "--trace-step must be >= 1, got 0")) << bad.output;
  const ProgramResult late = run_program("train_mlp", "--max-steps 3 --trace " + path("v") + " --trace-step 4");
  EXPECT_EQ(late.status, 1);
  EXPECT_TRUE(has(late.output, "--trace-step 4 is past the run's last step 3")) << late.output;
  EXPECT_FALSE(std::filesystem::exists(path("v/trace.json")));
  const ProgramResult gpt = run_program("train_gpt", "--steps 2 --trace " + path("w") + " --trace-step 3");
  EXPECT_EQ(gpt.status, 1);
  EXPECT_TRUE(has(gpt.output, "--trace-step 3 is past the run's last step 2")) << gpt.output;
}

TEST_F(TraceCli, TrainMlpTracesUnderMpiWithAlignedClocks) {
  if (mpirun().empty()) GTEST_SKIP() << "built without MPI";
  const ProgramResult r = run_command(mpirun() + " -np 2 " + minipipe::test_util::program_path("train_mlp") +
                                      " --epochs 1 --max-steps 2 --stages 2 --microbatches 2 --comm mpi --trace " +
                                      path("t") + " --trace-step 2");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(has(r.output, "(mpi), step 2\n")) << r.output;
  const nlohmann::json doc = nlohmann::json::parse(read(path("t/trace.json")));
  double first = 1e9;
  for (const auto& e : doc.at("traceEvents"))
    if (e.at("ph") == "X") first = std::min(first, e.at("ts").get<double>());
  EXPECT_GE(first, 0.0);
  EXPECT_LT(first, 1e5);  // aligned: the step starts at 0, not at a process's own clock reading
}

TEST_F(TraceCli, TrainGptTraces) {
  const ProgramResult r = run_program("train_gpt", "--steps 2 --eval-interval 2 --eval-iters 1 --batch 4 --layers 2 "
                                                   "--d-model 16 --heads 2 --context 8 --sample 0 --threads 1 "
                                                   "--stages 2 --microbatches 2 --checkpoint always --trace " +
                                                       path("t") + " --trace-step 1");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(has(r.output, "trace: 1f1b P=2 M=2 v=1 checkpoint always (local), step 1\n")) << r.output;
  EXPECT_TRUE(has(read(path("t/measured.svg")), "checkpoint always (local), step 1: measured, bubble "));
}

TEST_F(TraceCli, BenchSchedulesTinySweep) {
  const ProgramResult r = run_program("bench_schedules", "--tiny --csv " + path("b.csv") + " --svg-dir " + path("svg"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(has(r.output, "MEASURED on the local communicator")) << r.output;
  EXPECT_TRUE(has(r.output, "baseline (P=1, M=1) again after the sweep: ")) << r.output;
  EXPECT_EQ(read(path("b.csv")).rfind("mode,schedule,P,M,v,dp,checkpoint,step_ms", 0), 0u);
  int rows = 0;
  for (const auto& [line, f] : csv_rows(path("b.csv"))) {
    const int P = std::stoi(f[2]), M = std::stoi(f[3]), v = std::stoi(f[4]);
    EXPECT_EQ(f[5], "1") << line;  // no --dp: one replica
    EXPECT_NEAR(std::stod(f[13]), mp::closed_form_bubble(mp::make_schedule(f[1], P, M, v)), 1e-5) << line;
    const double measured = std::stod(f[12]), simulated = std::stod(f[14]);
    EXPECT_GE(measured, 0.0) << line;
    EXPECT_LT(measured, P == 1 ? 0.25 : 1.0) << line;
    EXPECT_GE(simulated, 0.0) << line;
    EXPECT_GT(std::stod(f[7]), 0.0) << line;
    // The stages' own bubble: the same simulation with free messages, so never above it; nothing
    // to wait for on one rank; the ideal it gives is P dp (1 - bubble) x GEMM efficiency.
    const double stages = std::stod(f[24]);
    EXPECT_GE(stages, 0.0) << line;
    EXPECT_LE(stages, simulated + 1e-9) << line;
    if (P == 1) {
      EXPECT_NEAR(stages, 0.0, 1e-9) << line;
    }
    EXPECT_NEAR(std::stod(f[25]), P * std::stoi(f[5]) * (1 - stages) * std::stod(f[17]), 1e-4) << line;
    EXPECT_NEAR(std::stod(f[26]), std::stod(f[9]) / std::stod(f[25]), 1e-4) << line;
    // Each rank's compute in the traced step: more than nothing, less than the step (1 + its bubble).
    for (int k : {22, 23}) {
      EXPECT_GT(std::stod(f[static_cast<size_t>(k)]), 0.0) << line;
      EXPECT_LT(std::stod(f[static_cast<size_t>(k)]), 2 * std::stod(f[7])) << line;
    }
    if (std::stoi(f[2]) > 1) {
      EXPECT_TRUE(std::filesystem::exists(path("svg/") + f[1] + "_P" + f[2] + "_M" + f[3] + "_v" + f[4] + "_" + f[6] +
                                          "_measured.svg"));
    }
    ++rows;
  }
  EXPECT_GE(rows, 20);
  const ProgramResult replay = run_program("bench_schedules", "--tiny --replay --schedules 1f1b --csv " + path("r.csv"));
  ASSERT_EQ(replay.status, 0) << replay.output;
  EXPECT_TRUE(has(replay.output, "REPLAY: each chunk's F and B timed alone")) << replay.output;
  // --rounds: the sweep three times, one line per row, said in the header.
  const ProgramResult rounds =
      run_program("bench_schedules", "--tiny --rounds 3 --schedules 1f1b --checkpoint never --csv " + path("rounds.csv"));
  ASSERT_EQ(rounds.status, 0) << rounds.output;
  EXPECT_TRUE(has(rounds.output, "the median of 3 rounds of the sweep")) << rounds.output;
  EXPECT_EQ(csv_rows(path("rounds.csv")).size(), 6u) << read(path("rounds.csv"));  // P = 1, 2 x M = 1, 2, 4
  const ProgramResult bad = run_program("bench_schedules", "--tiny --replay --rounds 2");
  EXPECT_NE(bad.status, 0);
  EXPECT_TRUE(has(bad.output, "--rounds repeats measured runs")) << bad.output;
  EXPECT_TRUE(has(read(path("r.csv")), "\nreplay,1f1b,2,4,1,1,never,")) << read(path("r.csv"));
}

// --dp: replicas of each pipeline; their rows report the all-reduce's time and the hidden share.
TEST_F(TraceCli, BenchSchedulesDataParallelAxis) {
  const ProgramResult r = run_program("bench_schedules", "--tiny --dp 1,2 --schedules 1f1b --checkpoint never --csv " +
                                                             path("dp.csv"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(has(r.output, "allreduce ms  hidden")) << r.output;
  int dp_rows = 0;
  for (const auto& [line, f] : csv_rows(path("dp.csv"))) {
    if (f[5] != "2") continue;
    ++dp_rows;
    EXPECT_GT(std::stod(f[18]), 0.0) << line;  // the all-reduce took time
    EXPECT_GE(std::stod(f[19]), 0.0) << line;  // a share in [0, 1]
    EXPECT_LE(std::stod(f[19]), 1.0) << line;
  }
  EXPECT_EQ(dp_rows, 6);  // dp 2 with P 1 and 2 x M 1, 2, 4
  const ProgramResult bad = run_program("bench_schedules", "--tiny --dp 2 --replay");
  EXPECT_EQ(bad.status, 1) << bad.output;
  EXPECT_TRUE(has(bad.output, "--dp needs a measured run")) << bad.output;
}

// pipedream and 2bw: their rows report the weight versions' bytes; rank 0 of PipeDream holds P - r = 2
// versions of its stage's weights, the last rank one; 2BW two on both.
TEST_F(TraceCli, BenchSchedulesAsynchronousRowsReportWeightVersions) {
  const ProgramResult r = run_program("bench_schedules", "--tiny --schedules pipedream,2bw --checkpoint never --csv " +
                                                             path("a.csv"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(has(r.output, "wver first  wver last")) << r.output;
  int rows = 0;
  for (const auto& [line, f] : csv_rows(path("a.csv"))) {
    if (f[1] != "pipedream" && f[1] != "2bw") continue;
    ++rows;
    const double first = std::stod(f[20]), last = std::stod(f[21]);
    EXPECT_GT(first, 0) << line;
    // 4 blocks of Linear(64, 64): 2 a stage, 2 x (64 x 64 + 64) floats.
    const double stage = 2 * (64 * 64 + 64) * 4.0;
    if (f[1] == "2bw") {
      EXPECT_EQ(first, 2 * stage) << line;
      EXPECT_EQ(last, 2 * stage) << line;
    } else {
      EXPECT_EQ(first, (f[3] == "1" ? 1 : 2) * stage) << line;
      EXPECT_EQ(last, stage) << line;
    }
  }
  EXPECT_EQ(rows, 6);  // P = 2 x M 1, 2, 4 each
  const ProgramResult bad = run_program("bench_schedules", "--tiny --schedules pipedream --replay");
  EXPECT_EQ(bad.status, 1) << bad.output;
  EXPECT_TRUE(has(bad.output, "--replay and pipedream do not combine")) << bad.output;
}

TEST_F(TraceCli, BenchSchedulesUnderMpi) {
  if (mpirun().empty()) GTEST_SKIP() << "built without MPI";
  const ProgramResult r = run_command(mpirun() + " -np 2 " + minipipe::test_util::program_path("bench_schedules") +
                                      " --tiny --comm mpi --schedules 1f1b --checkpoint never");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(has(r.output, "MEASURED on the mpi communicator")) << r.output;
  EXPECT_TRUE(std::regex_search(r.output, std::regex(R"(\n1f1b +2 +4 1 +1 never)"))) << r.output;
}
