// The communicator test suite shared by both backends: each check runs on every rank of a group
// (threads under `local` in test_comm.cpp, processes under mpirun in mpi_test_comm.cpp) and asserts
// exact values — rank-valued collectives, sums in rank order, per-tag message order, large tensors,
// sub-groups — and the errors (shape mismatch, timeout) that must name the ranks involved.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "parallel/communicator.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace minipipe::parallel::comm_suite {

inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Every rank fills with rank + 1: the sum is P(P+1)/2 exactly, in every dtype; the average (P+1)/2.
inline void rank_valued_all_reduce(Communicator& c) {
  const int P = c.size(), r = c.rank();
  for (DType dt : {DType::Float32, DType::Float64, DType::Int64}) {
    Tensor t = full({3, 5}, r + 1, dt);
    c.all_reduce(t);
    for (double v : ops::to(t, DType::Float64).to_vector<double>()) EXPECT_EQ(v, P * (P + 1) / 2) << dtype_name(dt);
  }
  Tensor a = full({7}, r + 1, DType::Float64);
  c.all_reduce(a, ReduceOp::Avg);
  for (double v : a.to_vector<double>()) EXPECT_EQ(v, (P + 1) / 2.0);
  // Different values per element and rank: element i gets sum_r (r * 100 + i).
  Tensor b = ops::add_scalar(arange(1000, DType::Float64), r * 100.0);
  c.all_reduce(b);
  const auto v = b.to_vector<double>();
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(v[static_cast<size_t>(i)], 100.0 * P * (P - 1) / 2 + P * i);
  EXPECT_THROW(c.all_reduce(full({2}, 1, DType::Int64), ReduceOp::Avg), Error);  // integer average
}

// Values that do not add exactly: every backend sums in rank order (rank 0's value first), so
// each rank holds exactly the bits of that sum computed here by hand — the same on `local` and
// `mpi`, and for the blocking and the non-blocking form alike.
inline void all_reduce_sums_in_rank_order(Communicator& c) {
  const int P = c.size(), r = c.rank();
  const int64_t n = 1001;
  // Every rank's values, made by one loop (so no rank rounds them differently: the compiler may
  // fuse a multiply-add in one place and not another).
  std::vector<double> value(static_cast<size_t>(P * n));
  for (int q = 0; q < P; ++q)
    for (int64_t i = 0; i < n; ++i)
      value[static_cast<size_t>(q * n + i)] = (0.1 * static_cast<double>(i) + 0.37 * q) / 3.0 + 1e-9 * q * i;
  auto v = [&](int q, int64_t i) { return value[static_cast<size_t>(q * n + i)]; };
  for (bool nonblocking : {false, true})
    for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Avg}) {
      Tensor t = empty({n}, DType::Float64);
      for (int64_t i = 0; i < n; ++i) t.data_ptr<double>()[i] = v(r, i);
      if (nonblocking) c.iall_reduce(t, op)->wait();
      else c.all_reduce(t, op);
      const double* got = t.data_ptr<double>();
      for (int64_t i = 0; i < n; ++i) {
        double want = v(0, i);
        for (int q = 1; q < P; ++q) want += v(q, i);
        if (op == ReduceOp::Avg) want /= P;
        ASSERT_EQ(got[i], want) << "element " << i << (nonblocking ? " (iall_reduce)" : "") << (op == ReduceOp::Avg ? " avg" : " sum");
      }
    }
}

// Several non-blocking all-reduces of uneven sizes outstanding at once, waited in reverse order,
// then a blocking one: exact rank-valued sums, collectives kept in order.
inline void nonblocking_all_reduce(Communicator& c) {
  const int P = c.size(), r = c.rank();
  std::vector<Tensor> ts;
  std::vector<std::unique_ptr<Request>> reqs;
  for (int64_t n : {1, 7, 1000, 33333}) {
    ts.push_back(ops::add_scalar(arange(n, DType::Float64), 1000.0 * r));
    reqs.push_back(c.iall_reduce(ts.back(), n == 7 ? ReduceOp::Avg : ReduceOp::Sum));
  }
  Tensor after = full({3}, r + 1, DType::Int64);
  for (size_t i = reqs.size(); i-- > 0;) reqs[i]->wait();
  c.all_reduce(after);
  for (size_t k = 0; k < ts.size(); ++k) {
    const auto v = ts[k].to_vector<double>();
    const bool avg = v.size() == 7;
    for (size_t i = 0; i < v.size(); ++i) {
      const double sum = 1000.0 * P * (P - 1) / 2 + P * static_cast<double>(i);
      ASSERT_EQ(v[i], avg ? sum / P : sum) << "tensor " << k << " element " << i;
    }
  }
  EXPECT_EQ(after.to_vector<int64_t>()[0], P * (P + 1) / 2);
}

inline void broadcast_from_every_root(Communicator& c) {
  for (int root = 0; root < c.size(); ++root) {
    Tensor t = full({4, 2}, c.rank() * 10 + 1, DType::Float64);
    c.broadcast(t, root);
    for (double v : t.to_vector<double>()) EXPECT_EQ(v, root * 10 + 1) << "root " << root;
  }
  for (int i = 0; i < 5; ++i) c.barrier();
}

// Rank 0 sends ten messages on each of two tags, interleaved; rank 1 drains tag 2 first, then
// tag 1: each tag keeps its order.
inline void message_order_per_tag(Communicator& c) {
  if (c.size() < 2 || c.rank() > 1) return;
  if (c.rank() == 0) {  // non-blocking: a blocking send may wait for its receive (rendezvous)
    std::vector<std::unique_ptr<Request>> sent;
    for (int i = 0; i < 10; ++i) {
      sent.push_back(c.isend(full({2}, i, DType::Int64), 1, 1));
      sent.push_back(c.isend(full({3}, 100 + i, DType::Int64), 1, 2));
    }
    for (auto& r : sent) r->wait();
  } else {
    for (int i = 0; i < 10; ++i) EXPECT_EQ(c.recv({{3}, DType::Int64}, 0, 2).to_vector<int64_t>()[0], 100 + i);
    for (int i = 0; i < 10; ++i) EXPECT_EQ(c.recv({{2}, DType::Int64}, 0, 1).to_vector<int64_t>()[0], i);
  }
}

// Receives posted before the sends match in posting order, whichever is waited on first.
inline void receives_match_in_posting_order(Communicator& c) {
  if (c.size() < 2 || c.rank() > 1) return;
  if (c.rank() == 1) {
    auto first = c.irecv({{1}, DType::Float64}, 0, 5);
    auto second = c.irecv({{1}, DType::Float64}, 0, 5);
    c.send(zeros({1}), 0, 6);  // go
    EXPECT_EQ(second->wait().item(), 2.0);
    EXPECT_EQ(first->wait().item(), 1.0);
  } else {
    c.recv({{1}, DType::Float32}, 1, 6);
    auto one = c.isend(full({1}, 1.0, DType::Float64), 1, 5);
    auto two = c.isend(full({1}, 2.0, DType::Float64), 1, 5);
    two->wait();
    one->wait();
  }
}

// The receiver's copy is its own: the sender overwriting its tensor after send changes nothing.
inline void receiver_never_aliases_the_sender(Communicator& c) {
  if (c.size() < 2 || c.rank() > 1) return;
  if (c.rank() == 0) {
    Tensor t = full({16}, 3.0);
    c.send(t, 1, 9);
    ops::fill_(t, -1.0);
    c.send(zeros({1}), 1, 10);  // the receiver looks only after this
  } else {
    Tensor got = c.recv({{16}, DType::Float32}, 0, 9);
    c.recv({{1}, DType::Float32}, 0, 10);
    for (float v : got.to_vector<float>()) EXPECT_EQ(v, 3.0f);
  }
}

// A ring of 64 MiB float32 tensors (16 Mi elements): rank r sends i + r to rank r + 1.
inline void large_tensors(Communicator& c) {
  if (c.size() < 2) return;
  const int64_t n = int64_t{1} << 24;
  const int P = c.size(), r = c.rank(), next = (r + 1) % P, prev = (r + P - 1) % P;
  Tensor mine = ops::add_scalar(arange(n, DType::Float32), r);
  auto in = c.irecv({{n}, DType::Float32}, prev, 3);
  auto out = c.isend(mine, next, 3);
  Tensor got = in->wait();
  out->wait();
  const float* g = got.data_ptr<float>();
  for (int64_t i : {int64_t{0}, int64_t{1}, n / 2, n - 1}) EXPECT_EQ(g[i], static_cast<float>(i + prev)) << i;
  int64_t wrong = 0;
  for (int64_t i = 0; i < n; ++i) wrong += g[i] != static_cast<float>(i) + static_cast<float>(prev);
  EXPECT_EQ(wrong, 0);
}

// Even and odd ranks form two groups, ranked in reverse (key = -rank); each group's collectives
// and messages stay inside it.
inline void sub_groups(Communicator& c) {
  const int P = c.size(), r = c.rank();
  auto sub = c.split(r % 2, -r);
  std::vector<int> members;
  for (int q = P - 1; q >= 0; --q)
    if (q % 2 == r % 2) members.push_back(q);  // by key -q: the highest rank first
  ASSERT_EQ(sub->size(), static_cast<int>(members.size()));
  EXPECT_EQ(members[static_cast<size_t>(sub->rank())], r);
  Tensor t = full({1}, r, DType::Int64);
  sub->all_reduce(t);
  int64_t expect = 0;
  for (int q : members) expect += q;
  EXPECT_EQ(t.item(), expect);
  if (sub->size() >= 2) {  // a message around the sub-group's ring, tagged like the world's
    const int n = sub->size(), me = sub->rank();
    auto in = sub->irecv({{1}, DType::Int64}, (me + n - 1) % n, 3);
    auto out = sub->isend(full({1}, r, DType::Int64), (me + 1) % n, 3);
    EXPECT_EQ(in->wait().item(), members[static_cast<size_t>((me + n - 1) % n)]);
    out->wait();
  }
  c.barrier();
}

// A receive expecting another shape fails on the receiver, naming both ranks and both shapes.
inline void shape_mismatch_names_both_ranks(Communicator& c) {
  if (c.size() < 2 || c.rank() > 1) return;
  if (c.rank() == 0) {
    c.send(zeros({2, 3}), 1, 4, "0SEND_F2");
  } else {
    try {
      c.recv({{3, 2}, DType::Float32}, 0, 4, "1RECV_F2");
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_TRUE(contains(m, "rank 1 recv from rank 0 (tag 4, 1RECV_F2)")) << m;
      EXPECT_TRUE(contains(m, "got float32 [2, 3]")) << m;
      EXPECT_TRUE(contains(m, "expected float32 [3, 2]")) << m;
    }
  }
}

// A receive nobody sends ends after the timeout, naming the rank, the peer, the tag and the action.
inline void receive_times_out(Communicator& c) {
  if (c.size() < 2 || c.rank() != 1) return;
  const double before = c.timeout();
  c.set_timeout(0.3);
  try {
    c.recv({{1}, DType::Float32}, 0, 77, "1RECV_B5");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), "rank 1 recv from rank 0 (tag 77, 1RECV_B5): nothing after 0.3 s")) << e.what();
  }
  c.set_timeout(before);
}

// Collectives over tensors of different shapes fail on every rank (nobody is left waiting).
inline void all_reduce_shape_mismatch_fails_everywhere(Communicator& c) {
  if (c.size() < 2) return;
  EXPECT_THROW(c.all_reduce(zeros({c.rank() == 0 ? 2 : 3})), Error);
  c.barrier();
  Tensor ok = full({2}, 1.0);
  c.all_reduce(ok);  // and the communicator still works
  EXPECT_EQ(ok.to_vector<float>()[0], static_cast<float>(c.size()));
}

inline void bad_arguments(Communicator& c) {
  EXPECT_THROW(c.send(zeros({1}), c.rank(), 0), Error);  // to itself
  EXPECT_THROW(c.send(zeros({1}), c.size(), 0), Error);  // no such rank
  EXPECT_THROW(c.irecv({{1}, DType::Float32}, -1, 0), Error);
  if (c.size() > 1) { EXPECT_THROW(c.send(zeros({1}), (c.rank() + 1) % c.size(), -3), Error); }  // bad tag
  EXPECT_THROW(c.set_timeout(0), Error);
}

}  // namespace minipipe::parallel::comm_suite
