// Schedule generators: pure functions from (P ranks, M micro-batches[, v chunks per rank]) to a
// compute-only Program (F/B actions only). lower() in lowering.h adds the communication.
#pragma once

#include <string_view>
#include <vector>

#include "parallel/schedule.h"

namespace minipipe::parallel {

// GPipe: every rank runs all M forwards, then all M backwards. Bubble of total time
// (P-1)/(M+P-1) with equal costs; every rank holds all M micro-batches' activations at the peak.
Program gpipe(int P, int M);

// 1F1B (PipeDream-Flush): rank r warms up with min(P-r-1, M) forwards, then alternates one
// forward and one backward, then drains the backwards. Same bubble as GPipe, but rank r holds
// at most min(P-r, M) micro-batches.
Program one_f_one_b(int P, int M);

// Interleaved 1F1B (Megatron-LM): P·v chunks, chunk c on rank c mod P. Micro-batches go in
// groups of G: each rank runs a group through its first chunk, then its second, and so on.
// Megatron uses G = P and needs M % P == 0; like PyTorch's Interleaved1F1B we take
// G = M / max(1, floor(M/P)), which accepts every M with M % max(1, floor(M/P)) == 0 (all M < 2P
// included). With G = P the bubble over ideal time drops to (1/v)(P-1)/M.
Program interleaved_1f1b(int P, int M, int v);
// Whether interleaved_1f1b accepts M micro-batches on P ranks.
bool interleaved_accepts(int P, int M);

// Inference: every rank runs its chunk's forward for micro-batches 0..M-1 (with v chunks per rank,
// chunk r for every micro-batch, then chunk P + r, ...). No B.
Program forward_only(int P, int M, int v = 1);

// Zero-bubble schedules (Qi et al., "Zero Bubble Pipeline Parallelism", ICLR 2024): the backward
// is split into B (input gradient, what the previous stage waits for) and W (weight gradient,
// needed by nobody downstream), and W passes fill the idle time. Both follow 1F1B's pattern —
// k(P-1-r) warm-up forwards on rank r, then F B pairs — and hold back k·r W passes on rank r, doing
// them as the tail frees time:
//   ZB-H1 (k = 1): 1F1B's peak memory: from F to B rank r holds min(P - r, M) micro-batches, as in
//     1F1B; counting what W still needs (a Linear's input and output gradient) until W, every rank
//     holds up to min(P, M), the most 1F1B holds on rank 0. With F, B, W costs T_F, T_B, T_W
//     (T_W <= T_F) every rank idles (P-1)(T_F + T_B - T_W) per step, against 1F1B's
//     (P-1)(T_F + T_B + T_W): a third of it at equal costs.
//   ZB-H2 (k = 2): up to 2P - 1 micro-batches in flight (from F to B on rank 0; until W on every
//     rank); at equal costs no rank idles between its first and its last action (a parallelogram:
//     consecutive steps would tile without a bubble if the optimizer step did not wait for the
//     whole pipeline).
Program zb_h1(int P, int M);
Program zb_h2(int P, int M);

// By name, for command lines: "gpipe", "1f1b", "interleaved", "forward", "zb-h1", "zb-h2", and the
// asynchronous "pipedream" and "2bw", whose action order is 1F1B's (weight_versions.h adds when the
// optimizer steps and which weight version each F and B reads).
Program make_schedule(std::string_view name, int P, int M, int v = 1);

// Stage replicas in the spirit of PipeDream's 1F1B-RR: stage s runs on replicas[s] ranks, numbered
// stage by stage (stage 0 on ranks 0 .. R_0 - 1, then stage 1's, ...), and micro-batch m goes to
// replica m mod R_s of every stage, its F and B on the same replica. Each rank runs its own
// micro-batches in order, in the pattern of `schedule`: "gpipe" (all F, then all B), "1f1b" (a
// replica of stage s keeps at most ceil(W_s / R_s) micro-batches in flight, W_s = the ranks from
// stage s to the last: P - s without replicas, plain 1F1B) or "forward" (F only). With every
// R_s = 1 this is gpipe / one_f_one_b / forward_only itself. Needs R_s <= M (no idle replica).
// Replicating the slowest stage R times divides its share of the step by R: the pipeline's pace
// is max over stages of (F_s + B_s) / R_s per micro-batch.
Program replicated(std::string_view schedule, const std::vector<int>& replicas, int M);

}  // namespace minipipe::parallel
