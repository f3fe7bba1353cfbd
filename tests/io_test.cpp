// Checkpoints: bit-identical round trips, files exchanged with an independent Python peer, every
// kind of malformed file refused with a precise message and the destination left untouched, and
// writes that never damage the previous checkpoint.

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <xgrad/io/safetensors.hpp>

#include "test_util.hpp"

namespace xgrad {
namespace {

namespace fs = std::filesystem;
using test::expect_error;

const std::string kPeerScript = std::string(XGRAD_TEST_DATA_DIR) + "/safetensors_peer.py";
const std::string kPeerFixture = std::string(XGRAD_TEST_DATA_DIR) + "/peer.safetensors";

/// y = x W^T + b: two parameters, "weight" [out, in] and "bias" [out].
template <class T>
class Affine : public nn::Module<T> {
 public:
  Affine(std::size_t in, std::size_t out, std::uint64_t seed) {
    weight_ = this->register_parameter("weight", Tensor<T>::randn({out, in}, seed));
    bias_ = this->register_parameter("bias", Tensor<T>::randn({out}, seed + 1));
  }
  Tensor<T> forward(const Tensor<T>& x) override { return x.matmul(weight_.T()) + bias_; }
  std::string describe() const override { return "Affine"; }

 private:
  Tensor<T> weight_, bias_;
};

/// A scalar parameter of its own plus a child, for dotted names ("scale", "0.weight", "0.bias").
template <class T>
class Net : public nn::Module<T> {
 public:
  Net(std::size_t in, std::size_t out, std::uint64_t seed) {
    scale_ = this->register_parameter("scale", Tensor<T>::scalar(T(0.5) + T(seed)));
    inner_ = this->register_module("0", std::make_shared<Affine<T>>(in, out, seed));
  }
  Tensor<T> forward(const Tensor<T>& x) override { return (*inner_)(x)*scale_; }
  std::string describe() const override { return "Net"; }

 private:
  Tensor<T> scale_;
  std::shared_ptr<Affine<T>> inner_;
};

template <class T>
bool same_bits(const Array<T>& a, const Array<T>& b) {
  return a.shape() == b.shape() &&
         (a.size() == 0 || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

/// Deep copies of every parameter value and its version, to prove a failed load touched nothing.
template <class T>
struct Snapshot {
  explicit Snapshot(const nn::Module<T>& m) : params(m.named_parameters()) {
    for (const auto& [_, p] : params) {
      values.push_back(p.value());
      versions.push_back(p.version());
    }
  }
  void expect_unchanged() const {
    for (std::size_t i = 0; i < params.size(); ++i) {
      EXPECT_TRUE(same_bits(params[i].second.value(), values[i])) << params[i].first;
      EXPECT_EQ(params[i].second.version(), versions[i]) << params[i].first;
    }
  }
  std::vector<std::pair<std::string, Tensor<T>>> params;
  std::vector<Array<T>> values;
  std::vector<std::uint64_t> versions;
};

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string le64(std::uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(n >> (8 * i));
  return s;
}

/// `header` padded with spaces to a multiple of 8.
std::string padded(std::string header) {
  header.append((8 - header.size() % 8) % 8, ' ');
  return header;
}

/// A file with `header` (padded) and `data`, its length field `length` if given.
std::string make_file(const std::string& header, const std::string& data,
                      std::uint64_t length = std::numeric_limits<std::uint64_t>::max()) {
  const std::string h = padded(header);
  return le64(length == std::numeric_limits<std::uint64_t>::max() ? h.size() : length) + h + data;
}

std::string f64_bytes(const std::vector<double>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(double));
}

/// Runs the peer script with `args`: its exit status, or 77 (skip) without /usr/bin/python3.
/// Only that interpreter is used: the python3 on PATH may lack NumPy.
int run_peer(const std::string& args, bool quiet = false) {
  if (::access("/usr/bin/python3", X_OK) != 0) return 77;
  const std::string command = "/usr/bin/python3 '" + kPeerScript + "' " + args +
                              (quiet ? " >/dev/null 2>&1" : " >/dev/null");
  const int rc = std::system(command.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/// A fresh directory per test, removed afterwards.
class Io : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ =
        fs::temp_directory_path() / ("xgrad_io_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    // A test may have made a sub-directory read-only; give write access back to remove it.
    std::error_code ec;
    fs::permissions(dir_, fs::perms::owner_all, fs::perm_options::add, ec);
    for (const auto& e : fs::recursive_directory_iterator(dir_, ec)) {
      if (e.is_directory(ec))
        fs::permissions(e.path(), fs::perms::owner_all, fs::perm_options::add, ec);
    }
    fs::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  /// Names in the directory that look like our temporary files.
  std::vector<std::string> leftovers() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_)) {
      const std::string name = e.path().filename().string();
      if (name.find(".xgrad-tmp.") != std::string::npos) out.push_back(name);
    }
    return out;
  }

  fs::path dir_;
};

template <class T>
std::vector<std::pair<std::string, Tensor<T>>> awkward_tensors() {
  // NaN with a payload, -0, infinities and a denormal must survive bit for bit.
  T nan;
  if constexpr (std::is_same_v<T, float>) {
    nan = std::bit_cast<float>(std::uint32_t{0x7fc00123u});
  } else {
    nan = std::bit_cast<double>(std::uint64_t{0x7ff8000000000abcull});
  }
  const T inf = std::numeric_limits<T>::infinity();
  return {
      {"layers.0.weight", Tensor<T>::randn({3, 5}, 11)},
      {"special", Tensor<T>(Array<T>{nan, T(-0.0), inf, -inf, std::numeric_limits<T>::denorm_min(),
                                     std::numeric_limits<T>::max()})},
      {"scalar", Tensor<T>::scalar(T(-7.25))},
      {"empty", Tensor<T>::zeros({2, 0, 3})},
      {"b", Tensor<T>::randn({2, 2, 2}, 12)},
  };
}

template <class T>
void round_trip(const std::string& file) {
  const auto tensors = awkward_tensors<T>();
  const std::map<std::string, std::string> meta{{"epoch", "12"}, {"note", "ünïcode ok"}};
  io::save_tensors(tensors, file, meta);
  const auto loaded = io::load_tensors<T>(file);
  ASSERT_EQ(loaded.size(), tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(loaded[i].first, tensors[i].first);  // the order save_tensors was given
    EXPECT_TRUE(same_bits(loaded[i].second, tensors[i].second.value())) << tensors[i].first;
  }
  EXPECT_EQ(io::load_metadata(file), meta);
  // The header length is padded to 8 and the data section is exactly the tensors' bytes.
  const std::string bytes = read_bytes(file);
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  EXPECT_EQ(n % 8, 0u);
  std::size_t data = 0;
  for (const auto& [_, t] : tensors) data += t.numel() * sizeof(T);
  EXPECT_EQ(bytes.size(), 8 + n + data);
}

TEST_F(Io, RoundTripFloatIsBitIdentical) {
  round_trip<float>(path("f.safetensors"));
  EXPECT_TRUE(leftovers().empty());
}

TEST_F(Io, RoundTripDoubleIsBitIdentical) {
  round_trip<double>(path("d.safetensors"));
  EXPECT_TRUE(leftovers().empty());
}

TEST_F(Io, ModuleRoundTripRestoresEveryParameter) {
  const std::string file = path("net.safetensors");
  Net<double> a(3, 2, 1);
  io::save(a, file);
  Net<double> b(3, 2, 2);  // same architecture, other values
  const auto handles = b.named_parameters();
  io::load(b, file);
  const auto pa = a.named_parameters();
  ASSERT_EQ(pa.size(), 3u);
  for (std::size_t i = 0; i < pa.size(); ++i) {
    EXPECT_EQ(handles[i].first, pa[i].first);
    // Handles taken before the load see the new values: they share them with the module.
    EXPECT_TRUE(same_bits(handles[i].second.value(), pa[i].second.value())) << pa[i].first;
  }
  const auto x = Tensor<double>::randn({4, 3}, 9);
  EXPECT_TRUE(same_bits(a(x).value(), b(x).value()));
  const auto names = io::load_tensors<double>(file);
  EXPECT_EQ(names[0].first, "scale");
  EXPECT_EQ(names[1].first, "0.weight");
  EXPECT_EQ(names[2].first, "0.bias");
  EXPECT_TRUE(leftovers().empty());
}

TEST_F(Io, FloatModuleLoadsDoubleCheckpoint) {
  const std::string file = path("d.safetensors");
  Affine<double> d(3, 2, 4);
  io::save(d, file);
  Affine<float> f(3, 2, 5);
  io::load(f, file);
  const auto pd = d.named_parameters();
  const auto pf = f.named_parameters();
  for (std::size_t i = 0; i < pd.size(); ++i) {
    const Array<float> want = xt::cast<float>(pd[i].second.value());
    EXPECT_TRUE(same_bits(pf[i].second.value(), want)) << pd[i].first;
  }
}

template <class V>
std::string bytes_of(const std::vector<V>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(V));
}

TEST_F(Io, IntegersLoadWhereTheTypeHoldsThemExactly) {
  const std::string file = path("ints.safetensors");
  write_bytes(
      file, make_file(R"({"count":{"dtype":"I64","shape":[3],"data_offsets":[0,24]},)"
                      R"("index":{"dtype":"I32","shape":[2],"data_offsets":[24,32]}})",
                      bytes_of<std::int64_t>({0, 7, -16777216}) + bytes_of<std::int32_t>({5, -3})));
  const auto f = io::load_tensors<float>(file);
  EXPECT_EQ(f[0].second, (Array<float>{0.0f, 7.0f, -16777216.0f}));
  EXPECT_EQ(f[1].second, (Array<float>{5.0f, -3.0f}));
  EXPECT_EQ(io::load_tensors<double>(file)[0].second, (Array<double>{0.0, 7.0, -16777216.0}));

  // 2^24 + 1 has no float: refused for float, exact in double.
  const std::string big = path("big.safetensors");
  write_bytes(big, make_file(R"({"count":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}})",
                             bytes_of<std::int64_t>({1, 16777217})));
  expect_error<IoError>([&] { io::load_tensors<float>(big); },
                        {"tensor 'count' (I64) holds 16777217 at element 1", "load it as double"});
  EXPECT_EQ(io::load_tensors<double>(big)[0].second, (Array<double>{1.0, 16777217.0}));
}

TEST_F(Io, PyTorchBatchNormCheckpointLoads) {
  // torch.nn.BatchNorm2d(2).state_dict() in safetensors: float32 tensors and an int64 count.
  const std::string file = path("bn.safetensors");
  std::string header = "{";
  const char* names[] = {"weight", "bias", "running_mean", "running_var"};
  for (int i = 0; i < 4; ++i) {
    header += "\"" + std::string(names[i]) + R"(":{"dtype":"F32","shape":[2],"data_offsets":[)" +
              std::to_string(8 * i) + "," + std::to_string(8 * i + 8) + "]},";
  }
  header += R"("num_batches_tracked":{"dtype":"I64","shape":[],"data_offsets":[32,40]}})";
  write_bytes(file, make_file(header, bytes_of<float>({1.5f, 0.5f, -1, 2, 0.25f, 0.75f, 3, 4}) +
                                          bytes_of<std::int64_t>({12})));
  nn::BatchNorm2d<float> bn(2);
  io::load(bn, file);
  const auto state = bn.state_dict();
  ASSERT_EQ(state.size(), 5u);
  EXPECT_EQ(state[0].second.value(), (Array<float>{1.5f, 0.5f}));
  EXPECT_EQ(state[3].second.value(), (Array<float>{3, 4}));
  EXPECT_EQ(state[4].first, "num_batches_tracked");
  EXPECT_EQ(state[4].second.value()(), 12.0f);
}

TEST_F(Io, PeerFixtureLoads) {
  const auto t = io::load_tensors<double>(kPeerFixture);
  // Data order, whatever the order of the header's keys; the empty tensor sorts by name.
  ASSERT_EQ(t.size(), 5u);
  EXPECT_EQ(t[0].first, "vector");
  EXPECT_EQ(t[0].second, (Array<double>{0.1, -2.5, 3.141592653589793, 1e30}));
  EXPECT_EQ(t[1].first, "scalar");
  EXPECT_EQ(t[1].second.dimension(), 0u);
  EXPECT_EQ(t[1].second(), -3.75);
  EXPECT_EQ(t[2].first, "layer.weight");
  EXPECT_EQ(t[2].second, (Array<double>{{-1.25, -0.75, -0.25}, {0.25, 0.75, 1.25}}));
  EXPECT_EQ(t[3].first, "empty");
  EXPECT_EQ(t[3].second.shape(), (Array<double>::shape_type{2, 0}));
  EXPECT_EQ(t[4].first, "bf16");
  EXPECT_EQ(t[4].second, (Array<double>{1.0, -2.0, 0.15625}));

  const auto f = io::load_tensors<float>(kPeerFixture);
  EXPECT_EQ(f[0].second,
            (Array<float>{static_cast<float>(0.1), -2.5f, static_cast<float>(3.141592653589793),
                          static_cast<float>(1e30)}));
  EXPECT_EQ(f[2].second, (Array<float>{{-1.25f, -0.75f, -0.25f}, {0.25f, 0.75f, 1.25f}}));

  const std::map<std::string, std::string> meta{{"format", "peer"},
                                                {"written_by", "safetensors_peer.py"}};
  EXPECT_EQ(io::load_metadata(kPeerFixture), meta);
}

TEST_F(Io, PeerWriterReproducesTheFixture) {
  const std::string file = path("peer.safetensors");
  const int rc = run_peer("write '" + file + "'");
  if (rc == 77) GTEST_SKIP() << "/usr/bin/python3 with numpy is not available";
  ASSERT_EQ(rc, 0);
  EXPECT_EQ(read_bytes(file), read_bytes(kPeerFixture));
}

/// Values first + step * i, as the peer's check command expects.
template <class T>
Tensor<T> ramp(const Shape& shape, T first, T step) {
  Array<T> a = Array<T>::from_shape(shape);
  for (std::size_t i = 0; i < a.size(); ++i) a.data()[i] = first + step * T(i);
  return Tensor<T>(a);
}

/// Saves four ramps to `file` and returns the peer's check arguments for them, with the first
/// tensor's step replaced by `weight_step`.
template <class T>
std::string save_ramps(const std::string& file, const std::string& dtype,
                       const std::string& weight_step = "0.25") {
  io::save_tensors<T>({{"fc.weight", ramp<T>({3, 4}, -1.5, 0.25)},
                       {"fc.bias", ramp<T>({4}, 2, -0.5)},
                       {"step", ramp<T>({}, 7, 0)},
                       {"none", ramp<T>({0, 3}, 0, 1)}},
                      file, {{"epoch", "3"}, {"note", "xgrad"}});
  const std::string d = ":" + dtype + ":";
  return "'" + file + "' --meta epoch=3 --meta note=xgrad fc.weight" + d +
         "3,4:-1.5:" + weight_step + " fc.bias" + d + "4:2:-0.5 step" + d + ":7:0 none" + d +
         "0,3:0:1";
}

TEST_F(Io, PeerReadsOurFiles) {
  const std::string f = save_ramps<float>(path("f.safetensors"), "F32");
  const std::string d = save_ramps<double>(path("d.safetensors"), "F64");
  const int rc = run_peer("check " + f + " --file " + d);
  if (rc == 77) GTEST_SKIP() << "/usr/bin/python3 with numpy is not available";
  EXPECT_EQ(rc, 0);
}

TEST_F(Io, PeerCheckerCatchesAWrongValue) {
  // The check above can fail: the same file with one expected value off is refused.
  const std::string f = save_ramps<float>(path("f.safetensors"), "F32", "0.5");
  const int rc = run_peer("check " + f, /*quiet=*/true);
  if (rc == 77) GTEST_SKIP() << "/usr/bin/python3 with numpy is not available";
  EXPECT_EQ(rc, 1);
}

// ---- malformed files: each refused with a precise message, the module left untouched ----

struct Corrupt {
  std::string what;
  std::string bytes;
  std::vector<std::string> fragments;
};

const std::string kWeight = R"("weight":{"dtype":"F64","shape":[2,2],"data_offsets":[0,32]})";
const std::string kBias = R"("bias":{"dtype":"F64","shape":[2],"data_offsets":[32,48]})";
const std::string kGoodHeader = "{" + kWeight + "," + kBias + "}";
const std::string kData = f64_bytes({1, 2, 3, 4, 5, 6});

std::string good_file() {
  return make_file(kGoodHeader, kData);
}

std::string with_byte(std::string s, std::size_t i, unsigned char mask) {
  s[i] = static_cast<char>(static_cast<unsigned char>(s[i]) ^ mask);
  return s;
}

std::vector<Corrupt> corrupt_files() {
  const std::string good = good_file();
  const std::uint64_t start = 8 + padded(kGoodHeader).size();  // first byte of the data section
  const auto at = [&](std::uint64_t b, std::uint64_t e) {
    return "bytes " + std::to_string(start + b) + "-" + std::to_string(start + e - 1);
  };
  std::vector<Corrupt> c = {
      {"empty file", "", {"0 bytes, fewer than the 8 of the header length"}},
      {"truncated length", good.substr(0, 5), {"5 bytes, fewer than the 8"}},
      {"truncated in the header",
       good.substr(0, 20),
       {"header length at bytes 0-7 is " + std::to_string(padded(kGoodHeader).size()),
        "only 12 bytes follow"}},
      {"truncated in the data",
       good.substr(0, good.size() - 4),
       {"tensor 'bias'", "data_offsets [32,48] run past the data section, which has 44 bytes",
        "file " + at(0, 44)}},
      {"header length high bit flipped", with_byte(good, 7, 0x80), {"over the limit of 100000000"}},
      {"header length low bit flipped",
       with_byte(good, 0, 0x01),
       {"NUL byte at byte " + std::to_string(start)}},  // the first data byte, 0x00
      {"header length off by 8", with_byte(good, 0, 0x08), {"not valid JSON at byte"}},
      {"header longer than the file",
       make_file(kGoodHeader, kData, padded(kGoodHeader).size() + kData.size() + 1),
       {"but only " + std::to_string(padded(kGoodHeader).size() + kData.size()) + " bytes follow"}},
      {"oversized header",
       make_file(kGoodHeader, kData, 200'000'000),
       {"200000000, over the limit"}},
      {"bad JSON",
       make_file("{" + kWeight + ",\"bias\":{\"dtype\":", kData),
       {"not valid JSON at byte"}},
      {"JSON error position",
       make_file(R"({"weight":[1,2,}})", ""),
       {"not valid JSON at byte 23"}},  // 8 + the index of the '}' after "2,"
      {"not an object", make_file(R"(["weight"])", kData), {"does not start with '{'"}},
      {"invalid UTF-8", make_file("{\"w\xff\":1}", ""), {"not valid JSON", "UTF-8"}},
      {"duplicate key",
       make_file("{" + kWeight + "," + kBias + "," + kWeight + "}", kData),
       {"repeats the key 'weight'"}},
      {"wrong dtype string",
       make_file(R"({"weight":{"dtype":"F33","shape":[2,2],"data_offsets":[0,32]},)" + kBias + "}",
                 kData),
       {"tensor 'weight' (header byte 9)", "unknown dtype 'F33'"}},
      {"unsupported dtype",
       make_file(R"({"weight":{"dtype":"U64","shape":[2,2],"data_offsets":[0,32]},)" + kBias + "}",
                 kData),
       {"tensor 'weight' has dtype U64", "F32, F64, BF16, I64 and I32"}},
      {"dtype not a string",
       make_file(R"({"weight":{"dtype":7,"shape":[2,2],"data_offsets":[0,32]},)" + kBias + "}",
                 kData),
       {"tensor 'weight'", "\"dtype\" is missing or not a string"}},
      {"missing shape",
       make_file(R"({"weight":{"dtype":"F64","data_offsets":[0,32]},)" + kBias + "}", kData),
       {"tensor 'weight'", "\"shape\" is missing"}},
      {"negative extent",
       make_file(R"({"weight":{"dtype":"F64","shape":[-2,2],"data_offsets":[0,32]},)" + kBias + "}",
                 kData),
       {"tensor 'weight'", "shape[0] is -2, not a non-negative integer"}},
      {"fractional offsets",
       make_file(
           R"({"weight":{"dtype":"F64","shape":[2,2],"data_offsets":[0.0,32]},)" + kBias + "}",
           kData),
       {"tensor 'weight'", "\"data_offsets\" must be [begin, end]"}},
      {"reversed offsets",
       make_file(R"({"weight":{"dtype":"F64","shape":[0],"data_offsets":[32,0]},)" + kBias + "}",
                 kData),
       {"tensor 'weight'", "end before they begin"}},
      {"shape and offsets disagree",
       make_file(std::string(R"({"weight":{"dtype":"F64","shape":[2,2],"data_offsets":[0,24]},)") +
                     R"("bias":{"dtype":"F64","shape":[3],"data_offsets":[24,48]}})",
                 kData),
       {"tensor 'weight'",
        "dtype F64 and shape [2,2] need 32 bytes but data_offsets [0,24] span 24"}},
      {"shape overflow",
       make_file(R"({"weight":{"dtype":"F64","shape":[4294967296,4294967296,16],)"
                 R"("data_offsets":[0,32]},)" +
                     kBias + "}",
                 kData),
       {"tensor 'weight'", "overflows"}},
      {"overlapping offsets",
       make_file("{" + kWeight + R"(,"bias":{"dtype":"F64","shape":[2],"data_offsets":[24,40]}})",
                 kData.substr(0, 40)),
       {"tensor 'bias' at file " + at(24, 40) + " overlaps tensor 'weight' at file " + at(0, 32)}},
      {"hole between tensors",
       make_file("{" + kWeight + R"(,"bias":{"dtype":"F64","shape":[2],"data_offsets":[40,56]}})",
                 kData + f64_bytes({7})),
       {"file " + at(32, 40) + " belong to no tensor", "hole before tensor 'bias'"}},
      {"trailing bytes", good + "garbage!", {"8 trailing bytes at file " + at(48, 56)}},
      {"metadata not strings",
       make_file(R"({"__metadata__":{"epoch":3},)" + kWeight + "," + kBias + "}", kData),
       {"\"__metadata__\" must map strings to strings, but 'epoch' holds 3"}},
      {"entry not an object",
       make_file(R"({"weight":[0,32]})", kData),
       {"tensor 'weight'", "not an object"}},
      // Found by fuzzing: nlohmann raises out_of_range, not parse_error, for these numbers.
      {"number beyond double",
       make_file(R"({"weight":{"dtype":"F64","shape":[1e999],"data_offsets":[0,32]}})", kData),
       {"not usable JSON", "number overflow parsing '1e999'"}},
      // Spelling out a value this deep in the message would recurse once per level.
      {"deeply nested entry",
       make_file("{\"weight\":" + std::string(300'000, '[') + std::string(300'000, ']') + "}",
                 kData),
       {"tensor 'weight'", "entry is an array of 1 items, not an object"}},
  };
  return c;
}

TEST_F(Io, MalformedFilesAreRefusedAndLeaveTheModuleUnchanged) {
  Affine<double> m(2, 2, 3);
  const Snapshot<double> before(m);
  const std::string file = path("bad.safetensors");
  for (const auto& c : corrupt_files()) {
    SCOPED_TRACE(c.what);
    write_bytes(file, c.bytes);
    try {
      io::load(m, file);
      ADD_FAILURE() << "expected an IoError";
    } catch (const IoError& e) {
      const std::string msg = e.what();
      EXPECT_EQ(msg.rfind("xgrad::io::load: " + file + ": ", 0), 0u) << msg;
      for (const auto& f : c.fragments) {
        EXPECT_NE(msg.find(f), std::string::npos) << "message: " << msg << "\nmissing: " << f;
      }
    }
    before.expect_unchanged();
    // The tensor-level readers refuse the same files (the unsupported dtype included).
    EXPECT_THROW(io::load_tensors<float>(file), IoError);
  }
  // The uncorrupted file does load, so the refusals above are about the corruption.
  write_bytes(file, good_file());
  io::load(m, file);
  EXPECT_EQ(m.named_parameters()[0].second.value(), (Array<double>{{1, 2}, {3, 4}}));
  EXPECT_EQ(m.named_parameters()[1].second.value(), (Array<double>{5, 6}));
}

TEST_F(Io, MissingFileIsAnIoError) {
  const std::string file = path("nope.safetensors");
  expect_error<IoError>(
      [&] { io::load_tensors<double>(file); },
      {"xgrad::io::load_tensors: " + file, "cannot open for reading", "No such file"});
  expect_error<IoError>([&] { io::load_tensors<double>(dir_.string()); }, {"not a regular file"});
}

TEST_F(Io, ModuleOfAnotherShapeIsRefusedAndUnchanged) {
  const std::string file = path("m.safetensors");
  Affine<double> saved(3, 2, 1);
  io::save(saved, file);

  Affine<double> wider(4, 2, 2);
  const Snapshot<double> before(wider);
  expect_error<IoError>(
      [&] { io::load(wider, file); },
      {"xgrad::io::load: " + file +
       ": parameter 'weight' has shape [2,4] in the module but [2,3] in the file"});
  before.expect_unchanged();

  // Names that do not match are all listed, with their shapes.
  Net<double> net(3, 2, 1);
  const Snapshot<double> net_before(net);
  expect_error<IoError>([&] { io::load(net, file); },
                        {"parameter 'scale' with shape [] is missing from the file",
                         "parameter '0.weight' with shape [2,3] is missing from the file",
                         "the file's tensor 'weight' with shape [2,3] matches no parameter of "
                         "the module",
                         "the file's tensor 'bias' with shape [2]"});
  net_before.expect_unchanged();
}

TEST_F(Io, LoadIntoNamedTensors) {
  const std::string file = path("t.safetensors");
  io::save_tensors<double>({{"a", ramp<double>({2}, 1, 1)}, {"b", ramp<double>({}, 5, 0)}}, file);
  auto a = Tensor<double>::zeros({2});
  auto b = Tensor<double>::zeros({});
  io::load_into<double>({{"b", b}, {"a", a}}, file);  // by name, not position
  EXPECT_EQ(a.value(), (Array<double>{1, 2}));
  EXPECT_EQ(b.item(), 5.0);

  auto c = Tensor<double>::zeros({3});
  expect_error<IoError>(
      [&] {
        io::load_into<double>({{"a", c}, {"b", b}}, file);
      },
      {"xgrad::io::load_into",
       "tensor 'a' has shape [3] in the destination but "
       "[2] in the file"});
  EXPECT_EQ(c.value(), (Array<double>{0, 0, 0}));
  expect_error<ValueError>(
      [&] {
        io::load_into<double>({{"a", a}, {"a", a}}, file);
      },
      {"two tensors named 'a'"});
}

TEST_F(Io, SaveRefusesBadNamesAndKeepsTheOldFile) {
  const std::string file = path("keep.safetensors");
  io::save_tensors<double>({{"x", ramp<double>({2}, 1, 1)}}, file);
  const std::string old = read_bytes(file);
  const auto x = Tensor<double>::ones({2});
  expect_error<ValueError>(
      [&] {
        io::save_tensors<double>({{"x", x}, {"x", x}}, file);
      },
      {"xgrad::io::save_tensors", "two tensors are named 'x'"});
  expect_error<ValueError>(
      [&] {
        io::save_tensors<double>({{"__metadata__", x}}, file);
      },
      {"reserved"});
  expect_error<ValueError>(
      [&] {
        io::save_tensors<double>({{"u", Tensor<double>()}}, file);
      },
      {"tensor 'u' is undefined"});
  expect_error<ValueError>(
      [&] {
        io::save_tensors<double>({{"bad\xff", x}}, file);
      },
      {"not valid UTF-8"});
  EXPECT_EQ(read_bytes(file), old);
  EXPECT_TRUE(leftovers().empty());
}

// ---- atomic writes ----

TEST_F(Io, SaveOverAnExistingCheckpointReplacesIt) {
  const std::string file = path("m.safetensors");
  Affine<double> a(3, 2, 1), b(3, 2, 2);
  io::save(a, file);
  io::save(b, file);
  Affine<double> c(3, 2, 3);
  io::load(c, file);
  EXPECT_TRUE(
      same_bits(c.named_parameters()[0].second.value(), b.named_parameters()[0].second.value()));
  EXPECT_TRUE(leftovers().empty());
}

TEST_F(Io, SaveOntoADirectoryFailsAndKeepsItsContents) {
  const fs::path target = dir_ / "ckpt";
  fs::create_directory(target);
  write_bytes((target / "old.safetensors").string(), good_file());
  Affine<double> m(3, 2, 1);
  expect_error<IoError>([&] { io::save(m, target.string()); },
                        {"xgrad::io::save: " + target.string(), "is a directory"});
  EXPECT_EQ(read_bytes((target / "old.safetensors").string()), good_file());
  EXPECT_TRUE(leftovers().empty());
}

TEST_F(Io, SaveIntoAMissingDirectoryFails) {
  Affine<double> m(3, 2, 1);
  const std::string file = path("missing/m.safetensors");
  expect_error<IoError>([&] { io::save(m, file); },
                        {"xgrad::io::save: " + file, "cannot create the temporary file"});
}

TEST_F(Io, SaveIntoAReadOnlyDirectoryKeepsTheOldFile) {
  const fs::path sub = dir_ / "ro";
  fs::create_directory(sub);
  const std::string file = (sub / "m.safetensors").string();
  Affine<double> a(3, 2, 1);
  io::save(a, file);
  const std::string old = read_bytes(file);
  fs::permissions(sub, fs::perms::owner_read | fs::perms::owner_exec);
  if (::access(sub.c_str(), W_OK) == 0) {
    GTEST_SKIP() << "running with permission to write to a read-only directory (root?)";
  }
  Affine<double> b(3, 2, 2);
  expect_error<IoError>([&] { io::save(b, file); }, {"cannot create the temporary file"});
  EXPECT_EQ(read_bytes(file), old);
}

TEST_F(Io, WriteFailingHalfwayKeepsTheOldFile) {
  const std::string file = path("m.safetensors");
  Affine<double> small(3, 2, 1);
  io::save(small, file);
  const std::string old = read_bytes(file);

  // A file-size limit makes write() fail with EFBIG partway through the new file, as a full
  // disk would; SIGXFSZ would otherwise kill the process.
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  rlimit low = saved;
  low.rlim_cur = 4096;
  if (saved.rlim_max != RLIM_INFINITY && saved.rlim_max < 4096) GTEST_SKIP();
  auto* old_handler = ::signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &low), 0);
  Affine<double> big(64, 64, 2);  // 33 KB of data
  std::string message;
  try {
    io::save(big, file);
  } catch (const IoError& e) {
    message = e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &saved);
  ::signal(SIGXFSZ, old_handler);

  EXPECT_NE(message.find("xgrad::io::save: " + file + ": writing the temporary file"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("failed at byte 4096"), std::string::npos) << message;
  EXPECT_EQ(read_bytes(file), old);
  EXPECT_TRUE(leftovers().empty());
  Affine<double> check(3, 2, 3);
  io::load(check, file);
  EXPECT_TRUE(same_bits(check.named_parameters()[0].second.value(),
                        small.named_parameters()[0].second.value()));
}

}  // namespace
}  // namespace xgrad
