// Readers (IDX, Fashion-MNIST, CSV, .npy, HDF5) and the DataLoader. IDX, CSV and malformed .npy
// inputs are written by the tests into a temporary folder; the .npy files made by NumPy and the
// HDF5 file are fixtures in tests/data (see tests/data/README.md for how they were made).

#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <xgrad/data/data.hpp>

#include "test_util.hpp"

namespace xgrad::test {
namespace {

namespace fs = std::filesystem;
using data::Batch;
using data::DataLoader;
using data::DataLoaderOptions;

const std::string kData = XGRAD_TEST_DATA_DIR;

/// A fresh folder for one test, removed with everything in it at the end.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() /
            ("xgrad_data_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string str() const { return path_.string(); }

 private:
  fs::path path_;
};

using Bytes = std::vector<unsigned char>;

void write_bytes(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

void write_gzip(const std::string& path, const Bytes& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  if (!bytes.empty()) {
    ASSERT_EQ(gzwrite(f, bytes.data(), unsigned(bytes.size())), int(bytes.size()));
  }
  ASSERT_EQ(gzclose(f), Z_OK);
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

Bytes read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void put_be32(Bytes& b, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<unsigned char>(v >> s));
}

/// An IDX header: magic (type, ndims) and big-endian dims.
Bytes idx_header(std::uint8_t type, const std::vector<std::uint32_t>& dims) {
  Bytes b = {0, 0, type, static_cast<unsigned char>(dims.size())};
  for (auto d : dims) put_be32(b, d);
  return b;
}

/// Appends v in big-endian byte order.
template <class U>
void put_be(Bytes& b, U v) {
  unsigned char raw[sizeof(U)];
  std::memcpy(raw, &v, sizeof(U));
  for (std::size_t i = sizeof(U); i-- > 0;) b.push_back(raw[i]);  // the test host is little-endian
}

/// An IDX file of type U and shape dims holding `values`.
template <class U>
Bytes idx_file(std::uint8_t type, const std::vector<std::uint32_t>& dims,
               const std::vector<double>& values) {
  Bytes b = idx_header(type, dims);
  for (double v : values) put_be<U>(b, static_cast<U>(v));
  return b;
}

void expect_values(const Array<double>& a, const Shape& shape, const std::vector<double>& want) {
  ASSERT_EQ(Shape(a.shape().begin(), a.shape().end()), shape);
  ASSERT_EQ(a.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) EXPECT_EQ(a.data()[i], want[i]) << "at " << i;
}

// ---------------------------------------------------------------- IDX

/// One file of every IDX type, each with values that type holds exactly.
struct IdxCase {
  const char* name;
  Bytes bytes;
  Shape shape;
  std::vector<double> values;
};

std::vector<IdxCase> idx_cases() {
  const std::vector<double> u8 = {0, 1, 127, 128, 200, 255};
  const std::vector<double> i8 = {-128, -1, 0, 1, 100, 127};
  const std::vector<double> i16 = {-32768, -300, 0, 1, 258, 32767};
  const std::vector<double> i32 = {-2147483648.0, -70000, 0, 1, 65536, 2147483647};
  const std::vector<double> f32 = {-1.5, 0.25, 0, double(3e-8f), double(1e20f), 7};
  const std::vector<double> f64 = {-1e300, 0.1, 0, 5e-324, 1e-3, 2.5};
  return {
      {"u8", idx_file<std::uint8_t>(0x08, {2, 3}, u8), {2, 3}, u8},
      {"i8", idx_file<std::int8_t>(0x09, {6}, i8), {6}, i8},
      {"i16", idx_file<std::int16_t>(0x0B, {3, 2}, i16), {3, 2}, i16},
      {"i32", idx_file<std::int32_t>(0x0C, {1, 2, 3}, i32), {1, 2, 3}, i32},
      {"f32", idx_file<float>(0x0D, {6, 1}, f32), {6, 1}, f32},
      {"f64", idx_file<double>(0x0E, {2, 3}, f64), {2, 3}, f64},
  };
}

TEST(Data, IdxPlainRoundTripEveryType) {
  TempDir dir;
  for (const auto& c : idx_cases()) {
    SCOPED_TRACE(c.name);
    const auto path = dir.file(std::string(c.name) + ".idx");
    write_bytes(path, c.bytes);
    const auto t = data::read_idx<double>(path);
    expect_values(t.value(), c.shape, c.values);
    EXPECT_FALSE(t.requires_grad());
  }
}

TEST(Data, IdxGzipRoundTripMatchesPlain) {
  TempDir dir;
  for (const auto& c : idx_cases()) {
    SCOPED_TRACE(c.name);
    write_bytes(dir.file("plain.idx"), c.bytes);
    write_gzip(dir.file("packed.idx.gz"), c.bytes);
    const auto plain = data::read_idx<float>(dir.file("plain.idx"));
    const auto packed = data::read_idx<float>(dir.file("packed.idx.gz"));
    EXPECT_EQ(plain.shape(), packed.shape());
    EXPECT_EQ(plain.value(), packed.value());
  }
}

TEST(Data, IdxGzipLargerThanOneDecompressionStep) {
  // 1.2 MB of data: the gzip reader's buffer has to grow past its first 1 MiB step.
  TempDir dir;
  const std::uint32_t rows = 1200, cols = 1000;
  Bytes b = idx_header(0x08, {rows, cols});
  for (std::uint32_t i = 0; i < rows * cols; ++i) b.push_back(static_cast<unsigned char>(i % 251));
  write_gzip(dir.file("big.gz"), b);
  const auto t = data::read_idx<float>(dir.file("big.gz"));
  ASSERT_EQ(t.shape(), (Shape{rows, cols}));
  const float* v = t.value().data();
  EXPECT_EQ(v[0], 0.0f);
  EXPECT_EQ(v[250], 250.0f);
  EXPECT_EQ(v[251], 0.0f);
  EXPECT_EQ(v[rows * cols - 1], float((rows * cols - 1) % 251));
}

TEST(Data, IdxTruncatedNamesPathAndOffset) {
  TempDir dir;
  Bytes b = idx_header(0x08, {10, 10});  // declares 100 bytes of data from byte 12
  b.resize(b.size() + 12, 7);
  for (const bool gz : {false, true}) {
    const auto path = dir.file(gz ? "short.gz" : "short.idx");
    gz ? write_gzip(path, b) : write_bytes(path, b);
    expect_error<IoError>([&] { data::read_idx<float>(path); },
                          {"xgrad::read_idx: ", path, "truncated at byte 24",
                           "declares 100 bytes of data from byte 12", "the file has 12"});
  }
}

TEST(Data, IdxHugeDimsWithLittleDataAllocateNothing) {
  // 4 GiB declared, 8 bytes present: refused from the sizes alone (an allocation of the declared
  // size would abort under AddressSanitizer).
  TempDir dir;
  Bytes b = idx_header(0x0E, {65536, 8192});
  b.resize(b.size() + 8, 0);
  for (const bool gz : {false, true}) {
    const auto path = dir.file(gz ? "huge.gz" : "huge.idx");
    gz ? write_gzip(path, b) : write_bytes(path, b);
    expect_error<IoError>([&] { data::read_idx<double>(path); },
                          {path, "truncated at byte 20", "declares 4294967296 bytes"});
  }
}

TEST(Data, IdxMalformedHeadersNameTheOffset) {
  TempDir dir;
  struct Bad {
    const char* name;
    Bytes bytes;
    std::vector<std::string> fragments;
  };
  Bytes bad_magic = idx_file<std::uint8_t>(0x08, {2}, {1, 2});
  bad_magic[0] = 0x12;
  bad_magic[1] = 0x34;
  const std::vector<Bad> cases = {
      {"empty", {}, {"truncated at byte 0", "4-byte magic"}},
      {"bad_magic", bad_magic, {"bad magic 0x12340801 at byte 0"}},
      {"bad_type", {0, 0, 0x0A, 1, 0, 0, 0, 1, 5}, {"unknown data type 0x0a at byte 2"}},
      {"no_dims", {0, 0, 0x08, 0}, {"bad number of dims 0 at byte 3"}},
      {"nine_dims", idx_header(0x08, {1, 1, 1, 1, 1, 1, 1, 1, 1}), {"dims 9 at byte 3"}},
      {"dims_cut", {0, 0, 0x08, 3, 0, 0, 0, 2, 0, 0}, {"truncated at byte 10", "3 dims"}},
      {"overflow",
       idx_header(0x0E, {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}),
       {"dims [4294967295,4294967295,4294967295] at byte 4 overflow"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    for (const bool gz : {false, true}) {
      const auto path = dir.file(std::string(c.name) + (gz ? ".gz" : ".idx"));
      gz ? write_gzip(path, c.bytes) : write_bytes(path, c.bytes);
      try {
        data::read_idx<float>(path);
        ADD_FAILURE() << "expected IoError";
      } catch (const IoError& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("xgrad::read_idx: " + path + ": "), std::string::npos) << msg;
        for (const auto& f : c.fragments) EXPECT_NE(msg.find(f), std::string::npos) << msg;
      }
    }
  }
}

TEST(Data, IdxZeroDimBeforeOverflowingDimsIsEmpty) {
  // The product is 0 whatever the order: a zero dim must not be mistaken for an overflow.
  TempDir dir;
  for (const Shape& shape :
       {Shape{0x80000000u, 0x80000000u, 0}, Shape{0, 0x80000000u, 0x80000000u}}) {
    write_bytes(dir.file("empty.idx"),
                idx_header(0x0E, std::vector<std::uint32_t>(shape.begin(), shape.end())));
    const auto t = data::read_idx<float>(dir.file("empty.idx"));
    EXPECT_EQ(t.shape(), shape);
    EXPECT_EQ(t.numel(), 0u);
  }
  // But the other dims still make the array's strides, which must fit in ptrdiff_t (found by
  // fuzzing: [0, 2^32-1, 2^32-1] overflowed them inside xtensor).
  write_bytes(dir.file("wide.idx"), idx_header(0x08, {0, 0xFFFFFFFFu, 0xFFFFFFFFu, 2}));
  expect_error<IoError>([&] { data::read_idx<float>(dir.file("wide.idx")); },
                        {dir.file("wide.idx"), "[0,4294967295,4294967295,2] at byte 4 overflow"});
}

TEST(Data, IdxTrailingBytesRefused) {
  TempDir dir;
  Bytes b = idx_file<std::uint8_t>(0x08, {2, 2}, {1, 2, 3, 4});
  b.push_back(9);
  b.push_back(9);
  write_bytes(dir.file("long.idx"), b);
  write_gzip(dir.file("long.gz"), b);
  expect_error<IoError>([&] { data::read_idx<float>(dir.file("long.idx")); },
                        {dir.file("long.idx"), "2 trailing bytes at byte 16"});
  expect_error<IoError>([&] { data::read_idx<float>(dir.file("long.gz")); },
                        {dir.file("long.gz"), "trailing bytes at byte 16", "decompressed"});
}

TEST(Data, IdxCorruptGzipAndMissingFile) {
  TempDir dir;
  Bytes b = idx_file<std::uint8_t>(0x08, {64}, std::vector<double>(64, 3));
  write_gzip(dir.file("ok.gz"), b);
  Bytes gz = read_bytes(dir.file("ok.gz"));
  gz.resize(gz.size() / 2);  // cut the compressed stream
  write_bytes(dir.file("cut.gz"), gz);
  expect_error<IoError>([&] { data::read_idx<float>(dir.file("cut.gz")); },
                        {dir.file("cut.gz"), "truncated"});
  // All data present but the trailer (CRC32, length) cut off: nothing vouches for the data.
  gz = read_bytes(dir.file("ok.gz"));
  ASSERT_GT(gz.size(), 8u);
  gz = Bytes(gz.begin(), gz.end() - 4);
  write_bytes(dir.file("no_trailer.gz"), gz);
  expect_error<IoError>([&] { data::read_idx<float>(dir.file("no_trailer.gz")); },
                        {dir.file("no_trailer.gz"), "cut short after byte 72", "trailer"});
  // A wrong CRC32.
  gz = read_bytes(dir.file("ok.gz"));
  gz[gz.size() - 8] ^= 0xff;
  write_bytes(dir.file("bad_crc.gz"), gz);
  expect_error<IoError>([&] { data::read_idx<float>(dir.file("bad_crc.gz")); },
                        {dir.file("bad_crc.gz"), "corrupt gzip data", "incorrect data check"});
  expect_error<IoError>([&] { data::read_idx<float>(dir.file("absent.idx")); },
                        {"xgrad::read_idx: ", dir.file("absent.idx"), "no such file"});
  expect_error<IoError>([&] { data::read_idx<float>(dir.str()); }, {"not a regular file"});
}

// ---------------------------------------------------------------- Fashion-MNIST

/// The number of samples of each class 0..9 in a label tensor; fails on a label that is not one.
std::vector<int> class_counts(const Array<float>& labels) {
  std::vector<int> counts(10, 0);
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const float l = labels.data()[i];
    EXPECT_TRUE(l == std::floor(l) && l >= 0 && l <= 9) << "label " << l << " at " << i;
    if (l >= 0 && l <= 9) ++counts[std::size_t(l)];
  }
  return counts;
}

// Only the first rows are decompressed with a limit, which keeps these tests fast; the full
// sample counts come from the small label files, read whole.
TEST(Data, FashionMnistTestSet) {
  const auto ds = data::load_fashion_mnist<float>(data::kFashionMnistDir, /*train=*/false, 1000);
  ASSERT_EQ(ds.images.shape(), (Shape{1000, 784}));
  ASSERT_EQ(ds.labels.shape(), (Shape{1000}));
  const auto& px = ds.images.value();
  const auto [lo, hi] = std::minmax_element(px.data(), px.data() + px.size());
  EXPECT_EQ(*lo, 0.0f);
  EXPECT_EQ(*hi, 1.0f);
  const auto& lab = ds.labels.value();
  class_counts(lab);
  EXPECT_EQ(lab(0), 9.0f);  // ankle boot, pullover, trouser
  EXPECT_EQ(lab(1), 2.0f);
  EXPECT_EQ(lab(2), 1.0f);
  double sum = 0;  // the first image's bytes sum to 33456
  for (std::size_t j = 0; j < 784; ++j) sum += px(0, j);
  EXPECT_NEAR(sum, 33456.0 / 255.0, 1e-3);

  const auto all =
      data::read_idx<float>(std::string(data::kFashionMnistDir) + "/t10k-labels-idx1-ubyte.gz");
  EXPECT_EQ(all.shape(), (Shape{10000}));
  EXPECT_EQ(class_counts(all.value()), std::vector<int>(10, 1000));  // balanced
}

TEST(Data, FashionMnistTrainSet) {
  const auto ds = data::load_fashion_mnist<double>(data::kFashionMnistDir, true, 500);
  ASSERT_EQ(ds.images.shape(), (Shape{500, 784}));
  ASSERT_EQ(ds.labels.shape(), (Shape{500}));
  EXPECT_EQ(ds.labels.value()(0), 9.0);
  EXPECT_EQ(ds.labels.value()(3), 3.0);
  EXPECT_LE(xt::amax(ds.images.value())(), 1.0);
  EXPECT_GE(xt::amin(ds.images.value())(), 0.0);
  const auto all =
      data::read_idx<float>(std::string(data::kFashionMnistDir) + "/train-labels-idx1-ubyte.gz");
  EXPECT_EQ(all.shape(), (Shape{60000}));
  EXPECT_EQ(class_counts(all.value()), std::vector<int>(10, 6000));
}

TEST(Data, FashionMnistMissingFileSuggestsThePackage) {
  TempDir dir;
  expect_error<IoError>([&] { data::load_fashion_mnist<float>(dir.str(), false); },
                        {"xgrad::load_fashion_mnist: ", dir.file("t10k-images-idx3-ubyte.gz"),
                         "no such file", "dataset-fashion-mnist"});
}

TEST(Data, FashionMnistRefusesBadLabelsAndShapes) {
  TempDir dir;
  const std::vector<double> pixels(2 * 28 * 28, 255);
  write_gzip(dir.file("t10k-images-idx3-ubyte.gz"),
             idx_file<std::uint8_t>(0x08, {2, 28, 28}, pixels));
  write_gzip(dir.file("t10k-labels-idx1-ubyte.gz"), idx_file<std::uint8_t>(0x08, {2}, {3, 12}));
  expect_error<IoError>([&] { data::load_fashion_mnist<float>(dir.str(), false); },
                        {dir.file("t10k-labels-idx1-ubyte.gz"), "label 12 of sample 1 at byte 9"});
  write_gzip(dir.file("t10k-labels-idx1-ubyte.gz"), idx_file<std::uint8_t>(0x08, {2}, {3, 4}));
  const auto ok = data::load_fashion_mnist<float>(dir.str(), false);
  EXPECT_EQ(ok.images.shape(), (Shape{2, 784}));
  EXPECT_EQ(xt::amin(ok.images.value())(), 1.0f);
  write_gzip(dir.file("t10k-images-idx3-ubyte.gz"),
             idx_file<std::uint8_t>(0x08, {2, 28, 27}, std::vector<double>(2 * 28 * 27, 0)));
  expect_error<IoError>([&] { data::load_fashion_mnist<float>(dir.str(), false); },
                        {"shape [N,28,28]", "[2,28,27]"});
}

// ---------------------------------------------------------------- CSV

TEST(Data, CsvReadsHeaderAndNumbers) {
  TempDir dir;
  write_text(dir.file("t.csv"),
             "\"sepal length\", 'width' ,label\r\n"
             "5.1,3.5,0\r\n"
             " -4.9 , +3e-1 ,1\r\n"
             "1e3,0.0,2\r\n"
             "\r\n"
             "\n");
  const auto csv = data::read_csv<double>(dir.file("t.csv"));
  EXPECT_EQ(csv.columns, (std::vector<std::string>{"sepal length", "width", "label"}));
  expect_values(csv.values.value(), {3, 3}, {5.1, 3.5, 0, -4.9, 0.3, 1, 1000, 0, 2});

  write_text(dir.file("semi.csv"), "a;b\n1;2\n3;4");  // no final newline
  const auto semi = data::read_csv<float>(dir.file("semi.csv"), ';');
  EXPECT_EQ(semi.values.shape(), (Shape{2, 2}));
  EXPECT_EQ(semi.values.value()(1, 0), 3.0f);

  write_text(dir.file("header_only.csv"), "x,y,z\n");
  const auto empty = data::read_csv<float>(dir.file("header_only.csv"));
  EXPECT_EQ(empty.values.shape(), (Shape{0, 3}));
}

TEST(Data, CsvErrorsNameLineAndColumn) {
  TempDir dir;
  write_text(dir.file("ragged.csv"), "a,b,c\n1,2,3\n4,5\n");
  expect_error<IoError>([&] { data::read_csv<float>(dir.file("ragged.csv")); },
                        {"xgrad::read_csv: ", dir.file("ragged.csv"),
                         "line 3 (byte 12): 2 columns, the header has 3"});
  write_text(dir.file("text.csv"), "a,b\n1,abc\n");
  expect_error<IoError>(
      [&] { data::read_csv<float>(dir.file("text.csv")); },
      {dir.file("text.csv"), "line 2, column 2 ('b') at byte 6: 'abc' is not a number"});
  write_text(dir.file("partial.csv"), "a,b\n1,2.5x\n");
  expect_error<IoError>([&] { data::read_csv<double>(dir.file("partial.csv")); },
                        {"line 2, column 2", "'2.5x'"});
  write_text(dir.file("blank_cell.csv"), "a,b\n1,\n");
  expect_error<IoError>([&] { data::read_csv<double>(dir.file("blank_cell.csv")); },
                        {"line 2, column 2", "is not a number"});
  write_text(dir.file("gap.csv"), "a\n1\n\n2\n");
  expect_error<IoError>([&] { data::read_csv<double>(dir.file("gap.csv")); },
                        {"line 3: empty line before more data (line 4)"});
  write_text(dir.file("empty.csv"), "");
  expect_error<IoError>([&] { data::read_csv<double>(dir.file("empty.csv")); },
                        {"line 1: no header"});
  expect_error<IoError>([&] { data::read_csv<double>(dir.file("absent.csv")); },
                        {"xgrad::read_csv: ", dir.file("absent.csv"), "no such file"});
}

// ---------------------------------------------------------------- .npy

std::string npy(const std::string& name) {
  return kData + "/npy/" + name;
}

TEST(Data, NpyReadsFilesWrittenByNumpy) {
  expect_values(data::read_npy<double>(npy("f4.npy")).value(), {2, 3},
                {-0.5, -0.25, 0, 0.25, 0.5, 0.75});
  expect_values(data::read_npy<double>(npy("f8.npy")).value(), {2, 2},
                {1.5, -2.25, 1e-300, 6.02214076e23});
  expect_values(data::read_npy<double>(npy("u1.npy")).value(), {2, 3}, {0, 1, 255, 128, 7, 42});
  expect_values(data::read_npy<double>(npy("i8.npy")).value(), {4}, {-3, 0, 7, 1099511627776.0});
  const auto f = data::read_npy<float>(npy("i8.npy"));
  EXPECT_EQ(f.value()(3), 1099511627776.0f);
  expect_values(data::read_npy<double>(npy("i4_big_endian.npy")).value(), {2, 2},
                {1, -2, 70000, 4});
  expect_values(data::read_npy<double>(npy("b1.npy")).value(), {3}, {1, 0, 1});
  expect_values(data::read_npy<double>(npy("scalar_f8.npy")).value(), {}, {3.5});
  EXPECT_EQ(data::read_npy<float>(npy("empty_f4.npy")).shape(), (Shape{0, 3}));
}

TEST(Data, NpyFortranOrderBecomesRowMajor) {
  // np.asfortranarray(np.arange(24).reshape(2, 3, 4)): element (i, j, k) is 12i + 4j + k.
  const auto t = data::read_npy<double>(npy("f8_fortran.npy"));
  ASSERT_EQ(t.shape(), (Shape{2, 3, 4}));
  for (std::size_t i = 0; i < 24; ++i) EXPECT_EQ(t.value().data()[i], double(i));
}

TEST(Data, NpyWriteThenReadBack) {
  TempDir dir;
  const auto a = Tensor<double>::randn({3, 1, 4}, 11);
  data::write_npy(a, dir.file("a.npy"));
  const auto back = data::read_npy<double>(dir.file("a.npy"));
  EXPECT_EQ(back.shape(), a.shape());
  EXPECT_EQ(back.value(), a.value());

  const auto s = Tensor<float>::scalar(-2.5f);
  data::write_npy(s, dir.file("s.npy"));
  EXPECT_EQ(data::read_npy<float>(dir.file("s.npy")).shape(), Shape{});
  EXPECT_EQ(data::read_npy<float>(dir.file("s.npy")).item(), -2.5f);

  // float32 on disk read as double: the dtype is converted.
  const auto v = Tensor<float>::from({{0.5f, -1.0f, 3.0f}});
  data::write_npy(v, dir.file("v.npy"));
  const Bytes raw = read_bytes(dir.file("v.npy"));
  EXPECT_NE(std::string(raw.begin(), raw.end()).find("'descr': '<f4'"), std::string::npos);
  expect_values(data::read_npy<double>(dir.file("v.npy")).value(), {1, 3}, {0.5, -1, 3});
  EXPECT_FALSE(fs::exists(dir.file("v.npy.tmp")));

  expect_error<IoError>([&] { data::write_npy(v, dir.file("no/such/folder/v.npy")); },
                        {"xgrad::write_npy: ", dir.file("no/such/folder/v.npy")});
}

/// A .npy file with the given header text (padded as NumPy does) and data bytes.
Bytes npy_file(const std::string& header, std::size_t data_bytes) {
  std::string h = header;
  while ((10 + h.size() + 1) % 64 != 0) h += ' ';
  h += '\n';
  std::string file = "\x93NUMPY";
  file += {'\x01', '\x00', static_cast<char>(h.size() & 0xff), static_cast<char>(h.size() >> 8)};
  file += h + std::string(data_bytes, '\0');
  return Bytes(file.begin(), file.end());
}

TEST(Data, NpyMalformedFilesRaiseIoError) {
  TempDir dir;
  struct Bad {
    const char* name;
    Bytes bytes;
    std::vector<std::string> fragments;
  };
  Bytes bad_magic = read_bytes(npy("f4.npy"));
  bad_magic[1] = 'X';
  Bytes long_header = read_bytes(npy("f4.npy"));
  long_header[8] = 0xff;
  long_header[9] = 0x7f;  // 32767 bytes of header in a 152-byte file
  Bytes version = read_bytes(npy("f4.npy"));
  version[6] = 9;
  const std::string f4 = "{'descr': '<f4', 'fortran_order': False, 'shape': ";
  const std::vector<Bad> cases = {
      {"bad_magic", bad_magic, {"bad magic at byte 0"}},
      {"short", {0x93, 'N', 'U'}, {"truncated at byte 3"}},
      {"version", version, {"unsupported format version 9.0 at byte 6"}},
      {"long_header", long_header, {"header length 32767 at byte 8 runs past the end", "152-byte"}},
      {"shape_beyond_data",
       npy_file(f4 + "(1000, 1000), }", 16),
       {"truncated at byte 144", "needs 4000000 bytes of data from byte 128", "the file has 16"}},
      {"huge_shape",
       npy_file(f4 + "(65536, 65536), }", 0),
       {"needs 17179869184 bytes", "the file has 0"}},
      {"overflow",
       npy_file(f4 + "(4294967296, 4294967296, 4294967296), }", 0),
       {"shape [4294967296,4294967296,4294967296] in the header at byte 10 overflows"}},
      {"trailing", npy_file(f4 + "(2,), }", 12), {"4 trailing bytes at byte 136"}},
      {"complex",
       npy_file("{'descr': '<c16', 'fortran_order': False, 'shape': (1,), }", 16),
       {"unsupported dtype '<c16'"}},
      {"structured",
       npy_file("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", 4),
       {"structured dtypes are not supported"}},
      {"missing_key", npy_file("{'descr': '<f4', 'shape': (1,), }", 4), {"lacks one of"}},
      {"garbage",
       npy_file("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (1,)}", 4),
       {"malformed header at byte", "expected True or False"}},
      {"negative_dim", npy_file(f4 + "(-1,), }", 4), {"expected a dim"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const auto path = dir.file(std::string(c.name) + ".npy");
    write_bytes(path, c.bytes);
    try {
      data::read_npy<float>(path);
      ADD_FAILURE() << "expected IoError";
    } catch (const IoError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("xgrad::read_npy: " + path + ": "), std::string::npos) << msg;
      for (const auto& f : c.fragments) EXPECT_NE(msg.find(f), std::string::npos) << msg;
    }
  }
  expect_error<IoError>([&] { data::read_npy<float>(dir.file("absent.npy")); }, {"no such file"});
}

// ---------------------------------------------------------------- HDF5

const std::string kH5 = kData + "/catvnoncat_tiny.h5";

TEST(Data, Hdf5ReadsTheCatvnoncatLayout) {
  const auto x = data::read_hdf5<float>(kH5, "train_set_x");  // uint8 on disk
  ASSERT_EQ(x.shape(), (Shape{4, 2, 2, 3}));
  for (std::size_t i = 0; i < 48; ++i) EXPECT_EQ(x.value().data()[i], float((7 * i) % 256));
  const auto y = data::read_hdf5<double>(kH5, "train_set_y");  // int64 on disk
  expect_values(y.value(), {4}, {0, 1, 1, 0});
  EXPECT_FALSE(x.requires_grad());

  expect_values(data::read_hdf5<double>(kH5, "extra/scores").value(), {2, 3},
                {-1.5, 0, 2.25, 1e-3, 100, -7});
  const auto scale = data::read_hdf5<float>(kH5, "/extra/scale");
  EXPECT_EQ(scale.shape(), Shape{});
  EXPECT_EQ(scale.item(), 0.5f);
}

TEST(Data, Hdf5ErrorsNameFileAndDataset) {
  expect_error<IoError>([&] { data::read_hdf5<float>(kH5, "test_set_x"); },
                        {"xgrad::read_hdf5: ", kH5, "dataset 'test_set_x'", "no such dataset",
                         "list_classes, train_set_x, train_set_y"});
  expect_error<IoError>([&] { data::read_hdf5<float>(kH5, "nope/deeper"); },
                        {"dataset 'nope/deeper'", "no such dataset"});
  expect_error<IoError>([&] { data::read_hdf5<float>(kH5, "list_classes"); },
                        {"dataset 'list_classes'", "holds strings"});
  expect_error<IoError>([&] { data::read_hdf5<float>(kH5, "extra"); },
                        {"dataset 'extra'", "is a group, not a dataset"});
  expect_error<IoError>([&] { data::read_hdf5<float>(kData + "/absent.h5", "train_set_x"); },
                        {kData + "/absent.h5", "no such file"});
  expect_error<IoError>([&] { data::read_hdf5<float>(npy("f4.npy"), "train_set_x"); },
                        {npy("f4.npy"), "cannot open as an HDF5 file", "no HDF5 signature"});
}

TEST(Data, Hdf5RefusesCutShortFilesBeforeLibhdf5) {
  TempDir dir;
  const std::string file = dir.file("cut.h5");
  std::ifstream in(kH5, std::ios::binary);
  Bytes whole((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  write_bytes(file, Bytes(whole.begin(), whole.begin() + 2048));
  expect_error<IoError>([&] { data::read_hdf5<float>(file, "train_set_x"); },
                        {file,
                         "superblock at byte 0 records the end of the file at byte " +
                             std::to_string(whole.size()) + " (byte 40)",
                         "the file has 2048 bytes"});
  write_bytes(file, Bytes(whole.begin(), whole.begin() + 30));
  expect_error<IoError>([&] { data::read_hdf5<float>(file, "train_set_x"); },
                        {file, "truncated at byte 30", "inside the superblock"});
  // A user block of 512 bytes before the signature is allowed (and then the addresses count
  // from the signature), so only the end-of-file check fails here.
  Bytes shifted(512, 0);
  shifted.insert(shifted.end(), whole.begin(), whole.begin() + 100);
  write_bytes(file, shifted);
  expect_error<IoError>([&] { data::read_hdf5<float>(file, "train_set_x"); },
                        {file, "superblock at byte 512"});
  // Found by fuzzing: libhdf5 allocated the length of a driver information block unchecked.
  const std::string driver = kData + "/../fuzz/regressions/hdf5/oom_driver_info_length.h5";
  expect_error<IoError>(
      [&] { data::read_hdf5<float>(driver, "train_set_x"); },
      {"driver information block at byte 136 declares 1610612736 bytes (byte 140)"});
}

TEST(Data, Hdf5RefusesTypesWhoseBitsDoNotFit) {
  // Found by fuzzing: train_set_y's int64 type with its precision zeroed crashed libhdf5's
  // conversion (SIGBUS); the type is now checked before any value is read.
  const std::string file =
      kData + "/../fuzz/regressions/hdf5/sigbus_integer_precision_beyond_size.h5";
  expect_error<IoError>(
      [&] { data::read_hdf5<float>(file, "train_set_y"); },
      {"dataset 'train_set_y'", "bit layout does not fit: 0 bits at bit offset 0 in 8 bytes"});
  EXPECT_EQ(data::read_hdf5<float>(file, "train_set_x").numel(), 48u);  // the rest still reads
}

TEST(Data, Hdf5FollowsNoLinkOrStorageOutsideTheFile) {
  // Both point at files that exist beside it (or could): the file must not choose what is read.
  const std::string file = kData + "/hdf5_outside.h5";
  expect_error<IoError>([&] { data::read_hdf5<float>(file, "elink"); },
                        {file, "dataset 'elink'", "external link to another file"});
  expect_error<IoError>([&] { data::read_hdf5<float>(file, "raw"); },
                        {file, "dataset 'raw'", "1 external file(s)"});
}

// ---------------------------------------------------------------- DataLoader

/// N samples: inputs row i = [i, 10 i], target i = i, so alignment can be checked.
std::pair<Tensor<float>, Tensor<float>> numbered(std::size_t n) {
  Array<float> x = Array<float>::from_shape({n, 2});
  Array<float> y = Array<float>::from_shape({n});
  for (std::size_t i = 0; i < n; ++i) {
    x(i, 0) = float(i);
    x(i, 1) = float(10 * i);
    y(i) = float(i);
  }
  return {Tensor<float>(x), Tensor<float>(y)};
}

/// The targets of every batch of one epoch, in order.
std::vector<float> epoch_targets(DataLoader<float>& loader) {
  std::vector<float> seen;
  for (const Batch<float>& b : loader) {
    const auto& t = b.targets.value();
    seen.insert(seen.end(), t.data(), t.data() + t.size());
  }
  return seen;
}

TEST(Data, LoaderBatchCountsAndSizes) {
  auto [x, y] = numbered(10);
  DataLoader<float> keep(x, y, {.batch_size = 3});
  EXPECT_EQ(keep.size(), 4u);
  std::vector<std::size_t> sizes;
  for (const auto& b : keep) {
    sizes.push_back(b.inputs.shape()[0]);
    EXPECT_EQ(b.inputs.shape()[1], 2u);
    EXPECT_EQ(b.targets.shape(), Shape{b.inputs.shape()[0]});
  }
  EXPECT_EQ(sizes, (std::vector<std::size_t>{3, 3, 3, 1}));
  EXPECT_EQ(epoch_targets(keep), (std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));

  DataLoader<float> drop(x, y, {.batch_size = 3, .drop_last = true});
  EXPECT_EQ(drop.size(), 3u);
  EXPECT_EQ(epoch_targets(drop).size(), 9u);

  EXPECT_EQ(DataLoader<float>(x, y, {.batch_size = 5, .drop_last = true}).size(), 2u);
  EXPECT_EQ(DataLoader<float>(x, y, {.batch_size = 11}).size(), 1u);
  EXPECT_EQ(DataLoader<float>(x, y, {.batch_size = 11, .drop_last = true}).size(), 0u);

  auto [ex, ey] = numbered(0);
  DataLoader<float> empty(ex, ey, {.batch_size = 4});
  EXPECT_EQ(empty.size(), 0u);
  EXPECT_TRUE(epoch_targets(empty).empty());
}

TEST(Data, LoaderShuffleSeesEverySampleOnceAndKeepsPairs) {
  auto [x, y] = numbered(23);
  DataLoader<float> loader(x, y, {.batch_size = 4, .shuffle = true, .seed = 42});
  for (int epoch = 0; epoch < 3; ++epoch) {
    std::vector<float> seen;
    for (const auto& b : loader) {
      const auto& in = b.inputs.value();
      const auto& tg = b.targets.value();
      for (std::size_t r = 0; r < tg.size(); ++r) {
        EXPECT_EQ(in(r, 0), tg(r));  // row and target come from the same sample
        EXPECT_EQ(in(r, 1), 10 * tg(r));
        seen.push_back(tg(r));
      }
    }
    std::sort(seen.begin(), seen.end());
    std::vector<float> all(23);
    for (std::size_t i = 0; i < 23; ++i) all[i] = float(i);
    EXPECT_EQ(seen, all) << "epoch " << epoch;
  }
}

TEST(Data, LoaderOrderIsReproducibleAndChangesPerEpoch) {
  auto [x, y] = numbered(32);
  const DataLoaderOptions opts{.batch_size = 5, .shuffle = true, .seed = 7};
  DataLoader<float> a(x, y, opts), b(x, y, opts);
  const auto a0 = epoch_targets(a), a1 = epoch_targets(a);
  EXPECT_EQ(a0, epoch_targets(b));
  EXPECT_EQ(a1, epoch_targets(b));
  EXPECT_NE(a0, a1);
  std::vector<float> identity(32);
  for (std::size_t i = 0; i < 32; ++i) identity[i] = float(i);
  EXPECT_NE(a0, identity);

  DataLoader<float> other(x, y, {.batch_size = 5, .shuffle = true, .seed = 8});
  EXPECT_NE(epoch_targets(other), a0);

  // Resuming at epoch 1 replays epoch 1.
  DataLoader<float> resumed(x, y, opts);
  resumed.set_epoch(1);
  EXPECT_EQ(epoch_targets(resumed), a1);
  EXPECT_EQ(resumed.epoch(), 2u);
}

TEST(Data, LoaderBatchesAreDetachedCopies) {
  auto [x, y] = numbered(6);
  x.requires_grad_();
  DataLoader<float> loader(x, y, {.batch_size = 4});
  auto it = loader.begin();
  Batch<float> first = *it;
  EXPECT_FALSE(first.inputs.requires_grad());
  EXPECT_FALSE(first.targets.requires_grad());
  first.inputs.mutable_value()(0, 0) = 99;  // the dataset is untouched
  EXPECT_EQ(x.value()(0, 0), 0.0f);
  ++it;
  const Batch<float> second = *it;
  EXPECT_EQ(second.targets.value(), (Array<float>{4, 5}));
  EXPECT_EQ(++it, loader.end());
}

TEST(Data, LoaderRejectsBadArguments) {
  auto [x, y] = numbered(10);
  expect_error<ValueError>([&] { DataLoader<float>(x, y, {.batch_size = 0}); },
                           {"xgrad::DataLoader: ", "batch_size must be positive, got 0"});
  auto [x9, y9] = numbered(9);
  expect_error<ShapeError>([&] { DataLoader<float>(x, y9); },
                           {"xgrad::DataLoader: ", "[10,2]", "[9]", "10 vs 9"});
  expect_error<ShapeError>([&] { DataLoader<float>(Tensor<float>::scalar(1), y); },
                           {"[]", "leading dim"});
}

// Picks a fixed list, whatever the epoch's order.
class FixedSampler : public data::Sampler {
 public:
  FixedSampler(std::vector<std::size_t> picks, std::size_t claimed)
      : picks_(std::move(picks)), claimed_(claimed) {}
  std::size_t size(std::size_t) const override { return claimed_; }
  std::vector<std::size_t> select(std::vector<std::size_t>, std::uint64_t) const override {
    return picks_;
  }

 private:
  std::vector<std::size_t> picks_;
  std::size_t claimed_;
};

TEST(Data, LoaderSamplerIsCheckedAgainstItsSizeAndTheSamples) {
  auto x = Tensor<float>::arange(8).reshape({4, 2});
  auto y = Tensor<float>::arange(4);
  DataLoader<float> fine(x, y, {.batch_size = 2}, FixedSampler({3, 1, 2}, 3));
  EXPECT_EQ(fine.size(), 2u);
  EXPECT_EQ((*fine.begin()).targets.value(), (Array<float>{3.0f, 1.0f}));
  DataLoader<float> miscounted(x, y, {.batch_size = 2}, FixedSampler({3, 1}, 3));
  expect_error<ValueError>([&] { miscounted.order(0); },
                           {"DataLoader", "selected 2 samples", "size() is 3"});
  DataLoader<float> outside(x, y, {.batch_size = 2}, FixedSampler({0, 4}, 2));
  expect_error<ValueError>([&] { outside.order(0); }, {"DataLoader", "sample 4 of 4"});
  expect_error<ValueError>(
      [&] { DataLoader<float>(x, y, {}, std::shared_ptr<const data::Sampler>()); },
      {"DataLoader", "sampler is null"});
}

TEST(Data, LoaderBatchesGatheredOnTwoThreadsAreThoseOfOne) {
  // 600 rows of 64 elements per batch: split over two threads at 2 (pieces of 16k elements).
  const Tensor<float> x = Tensor<float>::rand({2000, 64}, 1);
  const Tensor<float> y = Tensor<float>::rand({2000}, 2);
  const int threads = get_num_threads();
  std::vector<std::vector<Array<float>>> epochs;
  for (int t : {1, 2}) {
    set_num_threads(t);
    DataLoader<float> loader(x, y, {.batch_size = 600, .shuffle = true, .seed = 3});
    epochs.emplace_back();
    for (const Batch<float>& b : loader) {
      epochs.back().push_back(b.inputs.value());
      epochs.back().push_back(b.targets.value());
    }
  }
  set_num_threads(threads);
  ASSERT_EQ(epochs[0].size(), 8u);
  ASSERT_EQ(epochs[0].size(), epochs[1].size());
  for (std::size_t i = 0; i < epochs[0].size(); ++i) EXPECT_EQ(epochs[0][i], epochs[1][i]) << i;
  // And the rows are the data's: the first batch's first row is one of x's rows.
  const Array<float>& first = epochs[0][0];
  bool found = false;
  for (std::size_t r = 0; r < 2000 && !found; ++r) {
    found = std::equal(first.data(), first.data() + 64, x.value().data() + r * 64);
  }
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace xgrad::test
