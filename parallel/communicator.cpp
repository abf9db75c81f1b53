// What every Communicator backend shares: argument checks, the wording of its errors, and the
// small collectives built on all_reduce (gathering strings, checking a configuration is the same
// on every rank).
#include "parallel/communicator.h"

#include <cmath>
#include <map>
#include <sstream>

#include "tensor/factory.h"

namespace minipipe::parallel {

std::string TensorSpec::str() const {
  return std::string(dtype_name(dtype)) + " " + shape_str(shape) + (device.is_cpu() ? "" : " on " + device.str());
}

namespace {
class Finished : public Request {
 public:
  Tensor wait() override { return {}; }
  bool test() override { return true; }
};
}  // namespace

std::unique_ptr<Request> Communicator::iall_reduce(const Tensor& t, ReduceOp op) {
  all_reduce(t, op);
  return std::make_unique<Finished>();
}

void Communicator::set_timeout(double seconds) {
  MP_CHECK(std::isfinite(seconds) && seconds > 0, "communicator: timeout must be a positive number of seconds, got ",
           seconds);
  timeout_ = seconds;
}

void Communicator::check_peer(const char* op, int peer) const {
  MP_CHECK(peer >= 0 && peer < size() && peer != rank(), op, " on rank ", rank(), ": peer rank ", peer,
           " is not another rank of this group of ", size());
}

void Communicator::check_tag(const char* op, int tag) {
  MP_CHECK(tag >= 0 && tag < kMaxTag, op, ": tag ", tag, " is outside [0, ", kMaxTag, ")");
}

std::string Communicator::describe(const char* op, int peer, int tag, const std::string& what) const {
  std::ostringstream os;
  os << "rank " << rank() << " " << op << (op[0] == 's' ? " to" : " from") << " rank " << peer << " (tag " << tag;
  if (!what.empty()) os << ", " << what;
  os << ")";
  return os.str();
}

std::vector<std::string> all_gather_strings(Communicator& comm, const std::string& mine) {
  const int P = comm.size();
  Tensor lengths = zeros({P}, DType::Int64);
  lengths.data_ptr<int64_t>()[comm.rank()] = static_cast<int64_t>(mine.size());
  comm.all_reduce(lengths);
  int64_t longest = 0;
  for (int64_t n : lengths.to_vector<int64_t>()) longest = std::max(longest, n);
  Tensor bytes = zeros({P, std::max<int64_t>(longest, 1)}, DType::Int64);
  int64_t* row = bytes.data_ptr<int64_t>() + comm.rank() * bytes.size(1);
  for (size_t i = 0; i < mine.size(); ++i) row[i] = static_cast<unsigned char>(mine[i]);
  comm.all_reduce(bytes);
  std::vector<std::string> out(static_cast<size_t>(P));
  const int64_t* all = bytes.data_ptr<int64_t>();
  for (int r = 0; r < P; ++r)
    for (int64_t i = 0; i < lengths.data_ptr<int64_t>()[r]; ++i)
      out[static_cast<size_t>(r)].push_back(static_cast<char>(all[r * bytes.size(1) + i]));
  return out;
}

namespace {
std::map<std::string, std::string> fields_of(const std::string& s) {
  std::map<std::string, std::string> out;
  std::istringstream in(s);
  std::string token;
  while (in >> token) {
    const size_t eq = token.find('=');
    out[token.substr(0, eq)] = eq == std::string::npos ? "" : token.substr(eq + 1);
  }
  return out;
}
}  // namespace

void check_same_on_all_ranks(Communicator& comm, const std::string& fields, const std::string& what) {
  const std::vector<std::string> all = all_gather_strings(comm, fields);
  for (size_t r = 1; r < all.size(); ++r) {
    if (all[r] == all[0]) continue;
    const auto a = fields_of(all[0]), b = fields_of(all[r]);
    std::string key;
    for (const auto& [k, v] : a)
      if (!b.count(k) || b.at(k) != v) {
        key = k;
        break;
      }
    if (key.empty())
      for (const auto& [k, v] : b)
        if (!a.count(k)) {
          key = k;
          break;
        }
    MP_CHECK(!key.empty(), what, " differ across ranks: rank ", r, " has '", all[r], "', rank 0 has '", all[0], "'");
    auto value = [&](const std::map<std::string, std::string>& m) {
      return m.count(key) ? key + "=" + m.at(key) : "no " + key;
    };
    MP_CHECK(false, what, " differ across ranks: rank ", r, " has ", value(b), ", rank 0 has ", value(a),
             " (every rank must be started with the same flags)");
  }
}

}  // namespace minipipe::parallel
