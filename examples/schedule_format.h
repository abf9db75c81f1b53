// How show_schedule prints numbers — shared with make_explorer, whose page must show the very
// strings show_schedule prints for the same schedule.
#pragma once

#include <cstdio>
#include <sstream>
#include <string>

namespace minipipe::examples {

// An ostream's default notation at `precision` significant digits: fmt(0.25) = "0.25".
inline std::string fmt(double x, int precision = 4) {
  std::ostringstream os;
  os.precision(precision);
  os << x;
  return os.str();
}

// Four decimals: a bubble fraction.
inline std::string fmt_fixed(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", x);
  return buf;
}

// Bytes in B, KiB, MiB, GiB or TiB: "0 B", "5.50 MiB".
inline std::string fmt_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024.0 && u < 4) b /= 1024.0, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", b, units[u]);
  return buf;
}

}  // namespace minipipe::examples
