#pragma once
// What each fuzz target does with one input, shared by the libFuzzer targets
// (tests/fuzz/*_fuzz.cpp) and by the regression test that replays tests/fuzz/regressions/ in the
// normal suite, so that a crashing input found by a fuzzer fails the ordinary build in exactly the
// same call.
//
// The readers take paths, so each input is written to a scratch file (in /dev/shm when there is
// one) and read through the public API: the fuzzers exercise the code users run, file handling
// included. Every run_* function lets xgrad::Error pass silently and nothing else: any other
// exception, crash, leak or sanitizer report is a finding.

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <xgrad/data/csv.hpp>
#include <xgrad/data/dataloader.hpp>
#include <xgrad/data/hdf5.hpp>
#include <xgrad/data/idx.hpp>
#include <xgrad/data/npy.hpp>
#include <xgrad/error.hpp>
#include <xgrad/io/checkpoint.hpp>
#include <xgrad/io/safetensors.hpp>
#include <xgrad/ops.hpp>
#include <xgrad/optim/lr_scheduler.hpp>

#include "data/idx_rows.hpp"

namespace xgrad::fuzz {

using Bytes = std::vector<unsigned char>;

/// Aborts: the harness itself failed (a full scratch disk), which is not a finding in a reader.
[[noreturn]] inline void harness_fail(const std::string& what) {
  std::fprintf(stderr, "fuzz harness: %s\n", what.c_str());
  std::abort();
}

/// A file of this process for the inputs, removed when the process exits normally.
class ScratchFile {
 public:
  explicit ScratchFile(const std::string& tag) {
    const char* dir = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : std::getenv("TMPDIR");
    path_ =
        std::string(dir ? dir : "/tmp") + "/xgrad_fuzz_" + tag + "_" + std::to_string(::getpid());
  }
  ~ScratchFile() { ::unlink(path_.c_str()); }
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;

  /// Replaces the file's contents with `size` bytes at `data`; returns the path.
  const std::string& write(const unsigned char* data, std::size_t size) const {
    const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) harness_fail("cannot create " + path_);
    std::size_t done = 0;
    while (done < size) {
      const ssize_t n = ::write(fd, data + done, size - done);
      if (n <= 0) harness_fail("cannot write " + path_);
      done += static_cast<std::size_t>(n);
    }
    ::close(fd);
    return path_;
  }
  const std::string& write(const Bytes& bytes) const { return write(bytes.data(), bytes.size()); }

 private:
  std::string path_;
};

/// Runs f, swallowing the errors the readers are allowed to raise on bad input.
template <class F>
void allow_errors(F&& f) {
  try {
    std::forward<F>(f)();
  } catch (const xgrad::Error&) {
  }
}

/// `bytes` as one gzip member (fast level: the fuzzer wants executions, not ratio).
inline Bytes gzip(const unsigned char* data, std::size_t size) {
  z_stream zs{};
  if (deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    harness_fail("deflateInit2");
  }
  Bytes out(deflateBound(&zs, static_cast<uLong>(size)) + 32);
  zs.next_in = const_cast<unsigned char*>(data);
  zs.avail_in = static_cast<uInt>(size);
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  if (deflate(&zs, Z_FINISH) != Z_STREAM_END) harness_fail("deflate");
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

/// IDX, plain and gzip. The first byte is a control byte, the rest the file's content:
/// bits 0-1 choose how the content is stored (0 as it is, which also lets the fuzzer write gzip
/// bytes of its own; 1 gzip-compressed; 2 compressed and then cut short by 1 to 8 bytes; 3
/// compressed with its CRC damaged), bits 2-7 a row limit for the partial reader behind
/// load_fashion_mnist (0: read everything through read_idx).
inline void run_idx(const unsigned char* data, std::size_t size, const ScratchFile& file) {
  if (size == 0) return;
  const unsigned control = data[0];
  const unsigned char* content = data + 1;
  const std::size_t n = size - 1;
  Bytes stored;
  switch (control & 3) {
    case 0:
      stored.assign(content, content + n);
      break;
    case 1:
      stored = gzip(content, n);
      break;
    case 2:
      stored = gzip(content, n);
      stored.resize(stored.size() - std::min<std::size_t>(stored.size(), 1 + (control >> 5)));
      break;
    default:
      stored = gzip(content, n);
      stored[stored.size() - 8] ^= 0x5a;  // first byte of the CRC-32 in the trailer
      break;
  }
  const std::string& path = file.write(stored);
  const std::size_t max_rows = control >> 2;
  allow_errors([&] {
    if (max_rows == 0) {
      xgrad::data::read_idx<float>(path);
    } else {
      xgrad::data::detail::read_idx_rows<float>("xgrad::load_fashion_mnist", path, max_rows);
    }
  });
}

/// CSV: the input is the file, read as float and as double (their ranges differ).
inline void run_csv(const unsigned char* data, std::size_t size, const ScratchFile& file) {
  const std::string& path = file.write(data, size);
  allow_errors([&] { xgrad::data::read_csv<float>(path); });
  allow_errors([&] { xgrad::data::read_csv<double>(path, ';'); });
}

/// .npy: the input is the file.
inline void run_npy(const unsigned char* data, std::size_t size, const ScratchFile& file) {
  const std::string& path = file.write(data, size);
  allow_errors([&] { xgrad::data::read_npy<float>(path); });
}

/// safetensors: the input is the file, read by load_tensors and by load_into (the checkpoint
/// path), into tensors named and shaped like those of tests/data/peer.safetensors.
inline void run_safetensors(const unsigned char* data, std::size_t size, const ScratchFile& file) {
  const std::string& path = file.write(data, size);
  allow_errors([&] { xgrad::io::load_tensors<float>(path); });
  allow_errors([&] {
    std::vector<std::pair<std::string, xgrad::Tensor<double>>> targets = {
        {"layer.weight", xgrad::Tensor<double>(xgrad::Array<double>::from_shape({2, 3}))},
        {"vector", xgrad::Tensor<double>(xgrad::Array<double>::from_shape({4}))},
    };
    xgrad::io::load_into<double>(targets, path);
  });
}

/// The model of the checkpoint target: "layer.weight" [2, 3] and "layer.bias" [2], as the
/// corpus of make_checkpoint_corpus.py.
class CheckpointModel : public xgrad::nn::Module<double> {
 public:
  CheckpointModel() {
    w_ = this->register_parameter("layer.weight", xgrad::Tensor<double>::zeros({2, 3}));
    b_ = this->register_parameter("layer.bias", xgrad::Tensor<double>::zeros({2}));
  }
  xgrad::Tensor<double> forward(const xgrad::Tensor<double>& x) override {
    return xgrad::linear(x, w_, b_);
  }
  std::string describe() const override { return "CheckpointModel"; }

 private:
  xgrad::Tensor<double> w_, b_;
};

/// Module checkpoints: the input is the file, loaded by io::load into the model (names, shapes
/// and CRC-32) and by io::load_checkpoint with an SGD optimiser, a StepLR schedule and a loader.
inline void run_checkpoint(const unsigned char* data, std::size_t size, const ScratchFile& file) {
  const std::string& path = file.write(data, size);
  // A checkpoint that loads replaces the global generator's state: put it back, so that replaying
  // the corpus leaves the rest of a test program as it was.
  const std::string global_state = xgrad::default_generator().get_state();
  CheckpointModel model;
  allow_errors([&] { xgrad::io::load(model, path); });
  allow_errors([&] {
    xgrad::optim::SGD<double> sgd(model.parameters(), {.lr = 0.1, .momentum = 0.9});
    xgrad::optim::StepLR<double> schedule(sgd, 2, 0.5);
    xgrad::data::DataLoader<double> loader(xgrad::Tensor<double>::zeros({4, 3}),
                                           xgrad::Tensor<double>::zeros({4}));
    xgrad::io::Checkpoint<double> ckpt{
        .model = &model, .optimizer = &sgd, .scheduler = &schedule, .loader = &loader};
    xgrad::io::load_checkpoint(ckpt, path);
  });
  xgrad::default_generator().set_state(global_state);
}

/// HDF5: the input is the file; reads the datasets of tests/data/catvnoncat_tiny.h5 (integer,
/// float, string, nested and scalar ones) and a missing one.
inline void run_hdf5(const unsigned char* data, std::size_t size, const ScratchFile& file) {
  const std::string& path = file.write(data, size);
  for (const char* name :
       {"train_set_x", "train_set_y", "list_classes", "extra/scores", "extra/scale", "missing"}) {
    allow_errors([&] { xgrad::data::read_hdf5<float>(path, name); });
  }
}

}  // namespace xgrad::fuzz
