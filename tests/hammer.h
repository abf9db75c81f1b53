// For the tests of writes that must be safe from many threads at once: run a function on several
// threads together, many rounds each, and collect what they threw.
#pragma once

#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace minipipe::test_util {

// Calls fn(t) `rounds` times on each of `threads` threads t = 0 .. threads-1, all at once; returns
// the messages of the exceptions thrown.
inline std::vector<std::string> hammer(int threads, int rounds, const std::function<void(int)>& fn) {
  std::mutex mu;
  std::vector<std::string> errors;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      for (int r = 0; r < rounds; ++r) {
        try {
          fn(t);
        } catch (const std::exception& e) {
          std::lock_guard<std::mutex> lock(mu);
          errors.push_back(e.what());
        }
      }
    });
  for (auto& th : pool) th.join();
  return errors;
}

}  // namespace minipipe::test_util
