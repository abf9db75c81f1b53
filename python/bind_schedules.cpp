// Python bindings, schedule area (minipipe.parallel): Programs and their generators, lowering, the
// validator, the timed simulator (timelines as lists of dicts), the text and SVG Gantt charts, and
// the partitioner. Everything here is pure data: no ranks run, so a notebook can draw and compare.
#include <pybind11/stl.h>

#include "parallel/cost_model.h"
#include "parallel/gantt_svg.h"
#include "parallel/generators.h"
#include "parallel/lowering.h"
#include "parallel/partition.h"
#include "parallel/profile.h"
#include "parallel/validator.h"
#include "python/bind.h"

namespace minipipe::python {

namespace {

using namespace parallel;

std::vector<std::vector<std::string>> action_text(const Program& p) {
  std::vector<std::vector<std::string>> out;
  for (const auto& rank : p.actions) {
    std::vector<std::string> row;
    for (const Action& a : rank) row.push_back(to_string(a));
    out.push_back(std::move(row));
  }
  return out;
}

// Replaces every rank's list with parsed actions ("0F0", "1SEND_B3"); one list per rank.
void set_actions(Program& p, const std::vector<std::vector<std::string>>& text) {
  MP_CHECK(static_cast<int>(text.size()) == p.num_ranks, "actions: expected one list per rank (", p.num_ranks,
           " ranks), got ", text.size(), " lists");
  std::vector<std::vector<Action>> actions;
  for (const auto& rank : text) {
    std::vector<Action> row;
    for (const auto& token : rank) row.push_back(parse_action(token));
    actions.push_back(std::move(row));
  }
  p.actions = std::move(actions);
}

py::dict action_dict(const Action& a) {
  py::dict d;
  d["action"] = to_string(a);
  d["chunk"] = a.chunk;
  d["op"] = op_name(a.op);
  d["microbatch"] = a.microbatch;
  return d;
}

py::list timeline_of(const Simulation& s) {
  py::list ranks;
  for (const auto& rank : s.timeline) {
    py::list row;
    for (const TimedAction& t : rank) {
      py::dict d = action_dict(t.action);
      d["start"] = t.start;
      d["end"] = t.end;
      row.append(d);
    }
    ranks.append(row);
  }
  return ranks;
}

py::list rank_stats_of(const Simulation& s) {
  py::list out;
  for (const RankStats& r : s.ranks) {
    py::dict d;
    d["busy"] = r.busy;
    d["comm"] = r.comm;
    d["idle"] = r.idle;
    d["bubble_of_total"] = r.bubble_of_total;
    d["bubble_over_ideal"] = r.bubble_over_ideal;
    d["peak_inflight"] = r.peak_inflight;
    d["peak_inflight_bytes"] = r.peak_inflight_bytes;
    out.append(d);
  }
  return out;
}

Costs costs_or_uniform(const Program& p, const std::optional<Costs>& c) {
  return c ? *c : Costs::uniform(p.num_chunks, 1.0, 1.0, p.has_w() ? 1.0 : 0.0);
}

void bind_program(py::module_& m) {
  py::class_<Program>(m, "Program",
                      "One action list per rank (schedule.h). actions: lists of strings in PyTorch pipelining's "
                      "notation ('2F0': chunk 2, forward, micro-batch 0; '1SEND_B3'). str(p) is the program file text.")
      .def(py::init([](int ranks, int chunks, int microbatches, std::optional<std::vector<std::vector<std::string>>> a) {
             Program p = Program::empty(ranks, chunks, microbatches);
             if (a) set_actions(p, *a);
             return p;
           }),
           py::arg("ranks"), py::arg("chunks"), py::arg("microbatches"), py::arg("actions") = py::none(),
           "chunk c on rank c mod ranks; no actions unless given")
      .def_static("parse", &parse_program, py::arg("text"), py::arg("source") = "<string>",
                  "a program from the program file format (docs/schedules.md)")
      .def_static("read", &read_program, py::arg("path"))
      .def("write", [](const Program& p, const std::string& path) { write_program(p, path); }, py::arg("path"))
      .def_readonly("num_ranks", &Program::num_ranks)
      .def_readonly("num_chunks", &Program::num_chunks)
      .def_readonly("num_microbatches", &Program::num_microbatches)
      .def_readonly("forward_only", &Program::forward_only)
      .def_readonly("async_sends", &Program::async_sends)
      .def_readonly("chunk_rank", &Program::chunk_rank)
      .def_property("actions", &action_text, &set_actions, "per rank, a list of action strings (settable)")
      .def("rank_of", [](const Program& p, int c) { return p.rank_of(c); }, py::arg("chunk"))
      .def("has_comm", &Program::has_comm, "lowered: it holds SEND/RECV actions")
      .def("has_w", &Program::has_w, "B is the input gradient only and W the weight gradient")
      .def("num_actions", &Program::num_actions)
      .def("count", [](const Program& p, const std::string& op, int rank) {
        for (int i = 0; i < kNumOps; ++i)
          if (op == op_name(static_cast<Op>(i))) return p.count(static_cast<Op>(i), rank);
        throw Error("count: unknown op '" + op + "' (F, B, W, SEND_F, RECV_F, SEND_B, RECV_B)");
      }, py::arg("op"), py::arg("rank"))
      .def("__str__", [](const Program& p) { return to_string(p); })
      .def("__repr__", [](const Program& p) {
        return "<Program " + std::to_string(p.num_ranks) + " ranks, " + std::to_string(p.num_chunks) + " chunks, " +
               std::to_string(p.num_microbatches) + " micro-batches, " + std::to_string(p.num_actions()) + " actions>";
      });

  m.def("gpipe", &gpipe, py::arg("P"), py::arg("M"), "all M forwards, then all M backwards");
  m.def("one_f_one_b", &one_f_one_b, py::arg("P"), py::arg("M"), "1F1B (PipeDream-Flush)");
  m.def("interleaved_1f1b", &interleaved_1f1b, py::arg("P"), py::arg("M"), py::arg("v"),
        "Megatron's interleaved 1F1B: P*v chunks, chunk c on rank c mod P");
  m.def("interleaved_accepts", &interleaved_accepts, py::arg("P"), py::arg("M"));
  m.def("forward_only", &forward_only, py::arg("P"), py::arg("M"), py::arg("v") = 1);
  m.def("zb_h1", &zb_h1, py::arg("P"), py::arg("M"), "zero bubble, 1F1B's memory: B and W split");
  m.def("zb_h2", &zb_h2, py::arg("P"), py::arg("M"), "zero bubble, up to 2P-1 micro-batches in flight");
  m.def("make_schedule", [](const std::string& n, int P, int M, int v) { return make_schedule(n, P, M, v); },
        py::arg("name"), py::arg("P"), py::arg("M"), py::arg("v") = 1,
        "by name: gpipe, 1f1b, interleaved, forward, zb-h1, zb-h2");
  m.def("replicated", [](const std::string& s, const std::vector<int>& r, int M) { return replicated(s, r, M); },
        py::arg("schedule"), py::arg("replicas"), py::arg("M"),
        "PipeDream's 1F1B-RR: stage s on replicas[s] ranks, micro-batch m on replica m mod R_s");
  m.def("lower", [](const Program& p, std::optional<Costs> c) { return c ? lower(p, *c) : lower(p); },
        py::arg("program"), py::arg("costs") = py::none(),
        "adds the SEND/RECV actions so that blocking sends cannot deadlock (costs only steer placement)");
  m.def("lower_async", &lower_async, py::arg("program"),
        "adds the SEND/RECV actions for sends that do not block: each send right after its producer, each "
        "receive right before its consumer (the compute-only program's timeline)");
}

void bind_validator(py::module_& m) {
  py::class_<Violation>(m, "Violation")
      .def_property_readonly("rule", [](const Violation& v) { return rule_name(v.rule); })
      .def_readonly("rank", &Violation::rank)
      .def_readonly("index", &Violation::index)
      .def_readonly("message", &Violation::message)
      .def("__repr__", [](const Violation& v) { return std::string(rule_name(v.rule)) + ": " + v.message; });
  py::class_<ValidationReport>(m, "ValidationReport")
      .def_property_readonly("ok", &ValidationReport::ok)
      .def_readonly("lowered", &ValidationReport::lowered)
      .def_readonly("violations", &ValidationReport::violations)
      .def_readonly("grid", &ValidationReport::grid, "step x rank grid, offending actions marked [1B3]!")
      .def("__bool__", &ValidationReport::ok)
      .def("__str__", &ValidationReport::to_string);
  m.def("check", &check, py::arg("program"), "every rule checked; never raises for a bad program");
  m.def("validate", &validate, py::arg("program"), "raises minipipe.Error with the report when a rule breaks");
  m.def("step_grid", &step_grid, py::arg("program"), py::arg("marks") = std::vector<std::pair<int, int>>{},
        "the program run step by step with blocking sends, as a step x rank grid");
}

void bind_simulator(py::module_& m) {
  py::class_<Costs>(m, "Costs",
                    "Per-chunk F, B, W times (any unit), a link latency + bytes / bandwidth, and activation bytes")
      .def(py::init([](std::vector<double> f, std::vector<double> b, std::vector<double> w, double latency,
                       double bandwidth, std::vector<double> act, std::vector<double> msg) {
             Costs c;
             c.forward = std::move(f);
             c.backward = std::move(b);
             c.weight = std::move(w);
             c.latency = latency;
             c.bandwidth = bandwidth;
             c.activation_bytes = std::move(act);
             c.message_bytes = std::move(msg);
             return c;
           }),
           py::arg("forward"), py::arg("backward"), py::arg("weight") = std::vector<double>{},
           py::arg("latency") = 0.0, py::arg("bandwidth") = std::numeric_limits<double>::infinity(),
           py::arg("activation_bytes") = std::vector<double>{}, py::arg("message_bytes") = std::vector<double>{})
      .def_static("uniform", &Costs::uniform, py::arg("chunks"), py::arg("f"), py::arg("b"), py::arg("w") = 0.0)
      .def_readwrite("forward", &Costs::forward)
      .def_readwrite("backward", &Costs::backward)
      .def_readwrite("weight", &Costs::weight)
      .def_readwrite("latency", &Costs::latency)
      .def_readwrite("bandwidth", &Costs::bandwidth)
      .def_readwrite("activation_bytes", &Costs::activation_bytes)
      .def_readwrite("message_bytes", &Costs::message_bytes)
      .def("message_time", &Costs::message_time, py::arg("chunk"))
      .def("with_checkpointing",
           [](const Costs& c, const std::string& mode, int chunks) { return with_checkpointing(c, parse_checkpoint(mode), chunks); },
           py::arg("mode"), py::arg("chunks"), "never, except_last or always: B costs B + F, the stash is the input");

  py::class_<Simulation>(m, "Simulation", "what simulate() returns: the step time, the timeline, per-rank stats")
      .def_readonly("makespan", &Simulation::makespan)
      .def_property_readonly("timeline", &timeline_of,
                             "per rank, per action: {action, chunk, op, microbatch, start, end}")
      .def_property_readonly("ranks", &rank_stats_of,
                             "per rank: {busy, comm, idle, bubble_of_total, bubble_over_ideal, peak_inflight, "
                             "peak_inflight_bytes}")
      .def("bubble", [](const Simulation& s, int rank) {
        MP_CHECK(rank >= 0 && rank < static_cast<int>(s.ranks.size()), "bubble: rank ", rank, " out of range for ",
                 s.ranks.size(), " ranks");
        return s.ranks[static_cast<size_t>(rank)].bubble_of_total;
      }, py::arg("rank") = 0, "idle / makespan on that rank (the bubble of total time)");

  m.def("simulate", [](const Program& p, std::optional<Costs> c) { return simulate(p, costs_or_uniform(p, c)); },
        py::arg("program"), py::arg("costs") = py::none(),
        "validates, then runs every action as early as possible (costs None: F = B = 1, W = 1 when present)");
  m.def("gantt", [](const Program& p, const Simulation& s, double slot) { return gantt(p, s, slot); },
        py::arg("program"), py::arg("simulation"), py::arg("slot") = 0.0, "a text Gantt chart");
  m.def("gantt_svg",
        [](const Program& p, const Simulation& s, std::string title, std::string subtitle, double time_scale,
           std::string unit, double makespan) {
          return gantt_svg(p, s, {.title = std::move(title), .subtitle = std::move(subtitle), .time_scale = time_scale,
                                  .time_unit = std::move(unit), .makespan = makespan});
        },
        py::arg("program"), py::arg("simulation"), py::arg("title") = "", py::arg("subtitle") = "",
        py::arg("time_scale") = 1.0, py::arg("time_unit") = "", py::arg("makespan") = 0.0,
        "the SVG chart as text; charts given the same makespan share a time axis");
  m.def("write_text_file", &write_text_file, py::arg("path"), py::arg("text"), py::arg("what") = "file",
        "atomic: a reader sees the old file or the whole new one");
}

py::list stage_rows(const PartitionReport& r) {
  py::list out;
  for (const StageReport& s : r.stages) {
    py::dict d;
    d["first_layer"] = s.first_layer;
    d["last_layer"] = s.last_layer;
    d["params"] = s.params;
    d["cost"] = s.cost;
    d["cut_bytes"] = s.cut_bytes;
    out.append(d);
  }
  return out;
}

void bind_partition(py::module_& m) {
  py::class_<Partition>(m, "Partition", "stage s holds layers [bounds[s], bounds[s+1])")
      .def_static("from_bounds", &Partition::from_bounds, py::arg("bounds"))
      .def_readonly("bounds", &Partition::bounds)
      .def("num_stages", &Partition::num_stages)
      .def("num_layers", &Partition::num_layers)
      .def("begin", &Partition::begin, py::arg("stage"))
      .def("end", &Partition::end, py::arg("stage"))
      .def("stage_of", &Partition::stage_of, py::arg("layer"))
      .def("__repr__", [](const Partition& p) {
        std::string s = "<Partition bounds [";
        for (size_t i = 0; i < p.bounds.size(); ++i) s += (i ? ", " : "") + std::to_string(p.bounds[i]);
        return s + "]>";
      });
  py::class_<LayerCosts>(m, "LayerCosts", "per layer and micro-batch: cost, parameters, output bytes")
      .def(py::init([](std::vector<double> cost, std::vector<int64_t> params, std::vector<int64_t> out) {
             return LayerCosts{std::move(cost), std::move(params), std::move(out)};
           }),
           py::arg("cost"), py::arg("params") = std::vector<int64_t>{}, py::arg("output_bytes") = std::vector<int64_t>{})
      .def_readwrite("cost", &LayerCosts::cost)
      .def_readwrite("params", &LayerCosts::params)
      .def_readwrite("output_bytes", &LayerCosts::output_bytes);
  py::class_<PartitionReport>(m, "PartitionReport")
      .def_property_readonly("stages", &stage_rows, "per stage: {first_layer, last_layer, params, cost, cut_bytes}")
      .def_readonly("bottleneck", &PartitionReport::bottleneck)
      .def_readonly("total_cost", &PartitionReport::total_cost)
      .def_readonly("balance", &PartitionReport::balance, "mean stage cost / slowest stage cost")
      .def("table", &PartitionReport::table)
      .def("__str__", &PartitionReport::table);

  m.def("uniform", &parallel::uniform, py::arg("num_layers"), py::arg("num_stages"), "equal layer counts");
  m.def("by_params", &by_params, py::arg("params"), py::arg("num_stages"), "minimise the largest stage's parameters");
  m.def("by_cost", &by_cost, py::arg("cost"), py::arg("num_stages"), "minimise the slowest stage (exact DP)");
  m.def("report", &report, py::arg("partition"), py::arg("layers"));
  m.def("profile_layers",
        [](nn::Sequential& model, const Tensor& sample, int warmup, int repeats) {
          py::gil_scoped_release release;
          return profile_layers(model, sample, {.warmup = warmup, .repeats = repeats});
        },
        py::arg("model"), py::arg("sample"), py::arg("warmup") = 1, py::arg("repeats") = 5,
        "time each layer's forward + backward on one micro-batch shaped like sample (seconds, median)");
  m.def("by_time",
        [](nn::Sequential& model, const Tensor& sample, int stages) {
          py::gil_scoped_release release;
          return by_time(model, sample, stages);
        },
        py::arg("model"), py::arg("sample"), py::arg("num_stages"));
}

}  // namespace

void bind_schedules(py::module_& m) {
  py::module_ par = m.def_submodule("parallel", "schedules, simulator, partitioner, launch and Pipe (parallel/)");
  bind_program(par);
  bind_validator(par);
  bind_simulator(par);
  bind_partition(par);
}

}  // namespace minipipe::python
