// SmallVector (tensor/small_vector.h), the type of every shape and stride: std::vector's behaviour
// inline and on the heap, inserts that fit stay inline, arguments that alias the vector itself.
#include <gtest/gtest.h>

#include <vector>

#include "tensor/small_vector.h"

namespace minipipe {
namespace {

using V = SmallVector<int64_t, 4>;

std::vector<int64_t> as_std(const V& v) { return std::vector<int64_t>(v.begin(), v.end()); }

TEST(SmallVector, BehavesLikeStdVectorInlineAndOnTheHeap) {
  V v{1, 2};
  EXPECT_EQ(v.capacity(), 4u);  // inline
  v.insert(v.begin() + 1, {7, 8});
  EXPECT_EQ(as_std(v), (std::vector<int64_t>{1, 7, 8, 2}));
  EXPECT_EQ(v.capacity(), 4u);  // the insert fit: still inline
  v.push_back(3);                // past N: the heap
  EXPECT_GT(v.capacity(), 4u);
  v.erase(v.begin(), v.begin() + 2);
  EXPECT_EQ(as_std(v), (std::vector<int64_t>{8, 2, 3}));
  V moved = std::move(v);
  EXPECT_EQ(as_std(moved), (std::vector<int64_t>{8, 2, 3}));
  EXPECT_TRUE(v.empty());
  V copy = moved;
  copy.resize(6, 5);
  EXPECT_EQ(as_std(copy), (std::vector<int64_t>{8, 2, 3, 5, 5, 5}));
  EXPECT_EQ(as_std(moved), (std::vector<int64_t>{8, 2, 3}));
  const std::vector<int64_t> back = copy;  // converts both ways
  EXPECT_EQ(V(back), copy);
  EXPECT_THROW(copy.at(6), std::out_of_range);
}

TEST(SmallVector, RepeatedInsertsGrowGeometricallyNotForever) {
  V v{1, 2};
  for (int i = 0; i < 100; ++i) v.insert(v.end(), {int64_t{i}});
  EXPECT_EQ(v.size(), 102u);
  EXPECT_LE(v.capacity(), 256u);  // doubling when full, not on every insert
}

TEST(SmallVector, ArgumentsThatAliasTheVector) {
  V v{7, 8, 9, 10, 11};  // on the heap
  v.resize(12, v[0]);    // reserve moves the data before the value is read
  EXPECT_EQ(v[11], 7);
  v.assign(20, v[1]);
  EXPECT_EQ(v[19], 8);
  V w{1, 2, 3};
  w.insert(w.begin(), w.begin(), w.end());
  EXPECT_EQ(as_std(w), (std::vector<int64_t>{1, 2, 3, 1, 2, 3}));
  w.push_back(w[0]);
  EXPECT_EQ(w.back(), 1);
}

}  // namespace
}  // namespace minipipe
