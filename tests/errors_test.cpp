// Every user mistake raises an xgrad error that names the operation and the shapes or values at
// fault, and leaves the tensors involved unchanged: the table at the end checks each mistake's
// type, message, and that no value, gradient, version or module parameter moved.

#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <typeinfo>
#include <vector>

#include "test_util.hpp"

namespace xgrad {
namespace {

using D = Tensor<double>;
using test::expect_error;

TEST(Errors, BinaryOpsNameShapes) {
  auto a = D::ones({2, 3});
  auto b = D::ones({4});
  expect_error<ShapeError>([&] { a + b; }, {"xgrad::add", "[2,3]", "[4]", "broadcast"});
  expect_error<ShapeError>([&] { a - b; }, {"xgrad::sub", "[2,3]", "[4]"});
  expect_error<ShapeError>([&] { a* b; }, {"xgrad::mul", "[2,3]", "[4]"});
  expect_error<ShapeError>([&] { a / b; }, {"xgrad::div", "[2,3]", "[4]"});
  expect_error<ShapeError>([&] { pow(a, b); }, {"xgrad::pow", "[2,3]", "[4]"});
  expect_error<ShapeError>([&] { maximum(a, b); }, {"xgrad::maximum"});
  expect_error<ShapeError>([&] { minimum(a, b); }, {"xgrad::minimum"});
  expect_error<ShapeError>([&] { where(a, a, b); }, {"xgrad::where", "[2,3]", "[4]"});
  expect_error<ShapeError>([&] { (void)(a > b); }, {"xgrad::gt"});
  EXPECT_EQ(a.value(), (Array<double>(Shape{2, 3}, 1.0)));
}

TEST(Errors, MatmulNamesShapes) {
  expect_error<ShapeError>(
      [] {
        matmul(D::ones({3, 4}), D::ones({5, 2}));
      },
      {"xgrad::matmul: shapes [3,4] and [5,2] do not chain"});
  expect_error<ShapeError>(
      [] {
        matmul(D::ones({2, 3, 4}), D::ones({3, 4, 2}));
      },
      {"xgrad::matmul", "[2,3,4]", "[3,4,2]", "batch"});
  expect_error<ShapeError>(
      [] {
        matmul(D::ones({2, 2, 3, 4}), D::ones({3, 4, 2}));
      },
      {"xgrad::matmul", "[2,2,3,4]", "[3,4,2]", "batch dims"});
  expect_error<ShapeError>([] { matmul(D::scalar(1.0), D::ones({1})); }, {"xgrad::matmul", "[]"});
  expect_error<ShapeError>([] { matmul(D::ones({3}), D::ones({4})); },
                           {"xgrad::matmul", "[3]", "[4]"});
  expect_error<ShapeError>([] { D::ones({2, 2, 2}).T(); }, {"xgrad::T", "[2,2,2]"});
  expect_error<ShapeError>(
      [] {
        linear(D::ones({2, 3}), D::ones({4, 5}));
      },
      {"xgrad::linear", "[2,3]", "[4,5]", "in_features"});
  expect_error<ShapeError>(
      [] {
        linear(D::ones({2, 3}), D::ones({4, 3}), D::ones({3}));
      },
      {"xgrad::linear", "bias [3]"});
  expect_error<ShapeError>(
      [] {
        transpose(D::ones({2, 2}), 0, 2);
      },
      {"xgrad::transpose", "dim 2", "[2,2]"});
}

TEST(Errors, ReductionDims) {
  auto a = D::ones({2, 3});
  expect_error<ShapeError>([&] { a.sum(2); }, {"xgrad::sum", "dim 2", "[2,3]"});
  expect_error<ShapeError>([&] { a.sum(-3); }, {"xgrad::sum", "dim -3"});
  expect_error<ShapeError>([&] { sum(a, {1, -1}); }, {"xgrad::sum", "twice"});
  expect_error<ShapeError>([&] { a.mean(5); }, {"xgrad::mean", "dim 5"});
  expect_error<ValueError>(
      [] {
        D::zeros({0, 3}).mean();
      },
      {"xgrad::mean", "[0,3]", "no elements"});
  expect_error<ValueError>([] { D::zeros({0, 3}).max(0); }, {"xgrad::max", "[0,3]"});
  expect_error<ValueError>([] { D::zeros({2, 0}).min(1); }, {"xgrad::min", "[2,0]"});
  expect_error<ShapeError>([&] { softmax(a, 2); }, {"xgrad::softmax", "dim 2"});
  expect_error<ShapeError>([&] { argmax(a, 2); }, {"xgrad::argmax", "dim 2"});
  expect_error<ValueError>(
      [] {
        argmin(D::zeros({2, 0}), 1);
      },
      {"xgrad::argmin", "[2,0]", "empty"});
  expect_error<ShapeError>([&] { log_softmax(a, -3); }, {"xgrad::log_softmax", "dim -3"});
  expect_error<ShapeError>([&] { logsumexp(a, {2}); }, {"xgrad::logsumexp", "dim 2", "[2,3]"});
  expect_error<ShapeError>([&] { a.logsumexp({0, -2}); }, {"xgrad::logsumexp", "twice"});
  expect_error<ShapeError>([&] { var(a, {-3}); }, {"xgrad::var", "dim -3", "[2,3]"});
  expect_error<ShapeError>([&] { a.std({1, 1}); }, {"xgrad::std", "dim 1", "twice", "[2,3]"});
  expect_error<ValueError>(
      [] {
        D::zeros({0, 3}).var();
      },
      {"xgrad::var", "all dims", "[0,3]", "no elements"});
  expect_error<ValueError>(
      [] {
        D::zeros({2, 0}).std(1);
      },
      {"xgrad::std", "dims {1}", "[2,0]", "no elements"});
  // N - correction <= 0 would be a silent inf or NaN.
  expect_error<ValueError>(
      [] {
        D::ones({3, 1}).var(1);
      },
      {"xgrad::var: correction 1 leaves no degrees of freedom", "dims {1}", "[3,1]", "N = 1",
       "N - correction <= 0"});
  expect_error<ValueError>([] { std(D::scalar(2.0)); }, {"xgrad::std", "correction 1", "[]"});
  expect_error<ValueError>([&] { a.var(0, 2.5); }, {"xgrad::var", "correction 2.5", "N = 2"});
  expect_error<ValueError>([&] { a.std({0, 1}, 6.0); }, {"xgrad::std", "correction 6", "N = 6"});
  expect_error<ValueError>([&] { var(a, {}, std::nan("")); }, {"xgrad::var", "correction is NaN"});
}

TEST(Errors, ActivationArguments) {
  auto a = D::ones({2, 3});
  expect_error<ValueError>([&] { gelu(a, "exact"); },
                           {"xgrad::gelu", "\"none\" or \"tanh\"", "\"exact\""});
  expect_error<ValueError>([&] { a.gelu("Tanh"); }, {"xgrad::gelu", "\"Tanh\""});
  expect_error<ValueError>([] { nn::GELU<double>("tanh_approx"); },
                           {"xgrad::nn::GELU", "\"tanh_approx\""});
  expect_error<ValueError>([&] { softplus(a, 0.0); }, {"xgrad::softplus", "beta", "nonzero"});
  expect_error<ValueError>([&] { a.softplus(std::nan("")); }, {"xgrad::softplus", "beta is NaN"});
  expect_error<ValueError>([&] { softplus(a, 1.0, std::nan("")); },
                           {"xgrad::softplus", "threshold is NaN"});
}

TEST(Errors, ShapeOps) {
  auto a = D::ones({2, 3});
  expect_error<ShapeError>([&] { a.reshape({4, -1}); }, {"xgrad::reshape", "[2,3]"});
  expect_error<ShapeError>([&] { a.reshape({-1, -1}); }, {"xgrad::reshape"});
  expect_error<ShapeError>([&] { a.reshape({7}); }, {"xgrad::reshape", "[2,3]"});
  expect_error<ShapeError>([&] { a.squeeze(0); }, {"xgrad::squeeze", "[2,3]"});
  expect_error<ShapeError>([&] { a.unsqueeze(3); }, {"xgrad::unsqueeze", "[2,3]"});
  expect_error<ShapeError>(
      [&] {
        a.broadcast_to({3, 3});
      },
      {"xgrad::broadcast_to", "[2,3]", "[3,3]"});
  expect_error<ShapeError>(
      [&] {
        concat<double>({a, D::ones({2, 2})}, 0);
      },
      {"xgrad::concat", "[2,3]", "[2,2]"});
  expect_error<ValueError>([&] { concat<double>({}, 0); }, {"xgrad::concat", "at least one"});
  expect_error<ShapeError>(
      [&] {
        stack<double>({a, D::ones({3, 2})}, 0);
      },
      {"xgrad::stack", "[2,3]", "[3,2]"});
  expect_error<ValueError>([&] { a.index_select(0, {0, 2}); }, {"xgrad::index_select", "2"});
  expect_error<ValueError>([&] { a.slice(1, 0, 2, 0); }, {"xgrad::slice", "step"});
  expect_error<ShapeError>([&] { a.flatten(1, 0); }, {"xgrad::flatten"});
}

TEST(Errors, Losses) {
  auto logits = D::zeros({3, 4});
  expect_error<ValueError>(
      [&] {
        cross_entropy(logits, std::vector<std::int64_t>{0, 4, 1});
      },
      {"xgrad::cross_entropy", "label 4", "position 1", "4 classes"});
  expect_error<ValueError>(
      [&] {
        cross_entropy(logits, std::vector<std::int64_t>{0, -1, 1});
      },
      {"xgrad::cross_entropy", "-1"});
  expect_error<ShapeError>(
      [&] {
        cross_entropy(logits, std::vector<std::int64_t>{0, 1});
      },
      {"xgrad::cross_entropy", "[3,4]"});
  expect_error<ShapeError>([&] { cross_entropy(D::zeros({4}), std::vector<std::int64_t>{0}); },
                           {"xgrad::cross_entropy", "[4]"});
  expect_error<ValueError>(
      [&] {
        cross_entropy(logits, D::from({0.0, 1.5, 2.0}));
      },
      {"xgrad::cross_entropy", "1.5"});
  expect_error<ValueError>(
      [&] {
        nll(logits, std::vector<std::int64_t>{0, 1, 9});
      },
      {"xgrad::nll", "label 9"});
  expect_error<ValueError>(
      [] {
        bce(D::from({0.5, 1.5}), D::from({1.0, 0.0}));
      },
      {"xgrad::bce", "1.5"});
  expect_error<ShapeError>(
      [] {
        bce(D::ones({3}), D::ones({3, 1}));
      },
      {"xgrad::bce", "[3]", "[3,1]"});
  expect_error<ShapeError>(
      [] {
        mse(D::ones({3}), D::ones({3, 1}));
      },
      {"xgrad::mse", "[3]", "[3,1]"});
  expect_error<ShapeError>(
      [] {
        bce_with_logits(D::ones({2, 1}), D::ones({2}));
      },
      {"xgrad::bce_with_logits", "[2,1]", "[2]"});
}

TEST(Errors, ValuesAndFactories) {
  expect_error<ValueError>([] { clamp(D::ones({2}), 1.0, 0.0); }, {"xgrad::clamp", "greater"});
  expect_error<ValueError>([] { D::arange(0.0, 1.0, 0.0); }, {"xgrad::arange", "step"});
  expect_error<ShapeError>([] { D::ones({2}).item(); }, {"xgrad::item", "[2]", "2 elements"});
  expect_error<Error>([] { D().value(); }, {"undefined"});
  expect_error<ShapeError>([] { D::ones({2}).size(1); }, {"xgrad::size", "dim 1"});
}

TEST(Errors, Graph) {
  auto x = D::ones({2}).requires_grad_();
  auto y = x * 2.0;
  expect_error<GraphError>([&] { y.requires_grad_(false); }, {"xgrad::requires_grad_", "'mul'"});
  expect_error<GraphError>([] { D::ones({1}).backward(); },
                           {"xgrad::backward", "does not require grad"});
  expect_error<ShapeError>(
      [&] {
        y.backward(Array<double>{1.0, 2.0, 3.0});
      },
      {"xgrad::backward", "[3]", "[2]"});
  expect_error<GraphError>([&] { D::ones({2}).grad(); }, {"xgrad::grad", "does not require grad"});
  expect_error<GraphError>([&] { x.grad(); }, {"xgrad::grad", "backward"});
  expect_error<GraphError>([&] { grad<double>({y.sum()}, {D::ones({2})}); },
                           {"xgrad::grad", "input 0", "does not require grad"});
}

// ---- a table of mistakes, each checked to leave every value, gradient and parameter as it was --

/// What a mistake must leave untouched: tensors with accumulated gradients, a module whose
/// parameters have gradients, and a scratch slot for graphs that a case builds beforehand.
struct World {
  Generator gen{11};
  D a = D::randn({2, 3}, 1).requires_grad_();
  D b = D::randn({4}, 2).requires_grad_();
  D m = D::randn({3, 4}, 3).requires_grad_();
  D c = D::randn({2, 3}, 4);  // a constant
  nn::MLP<double> net{{3, 4, 2}, nn::Act::ReLU, nn::Act::Identity, gen};
  D out;  // a graph built by a case's setup
  std::string dir;

  World() {
    (a.sum() + b.sum() + m.sum()).backward();
    cross_entropy(net(a), {0, 1}).backward();
    dir = (std::filesystem::temp_directory_path() / ("xgrad_errors_" + std::to_string(::getpid())))
              .string();
    std::filesystem::create_directories(dir);
  }
  ~World() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  std::vector<D> watched() const {
    std::vector<D> all{a, b, m, c};
    for (const auto& p : net.parameters()) all.push_back(p);
    return all;
  }
};

/// Every watched tensor's value bits, gradient bits and version counter.
class Snapshot {
 public:
  explicit Snapshot(const std::vector<D>& tensors) : tensors_(tensors) {
    for (const auto& t : tensors_) states_.push_back(state_of(t));
  }
  void expect_unchanged() const {
    for (std::size_t i = 0; i < tensors_.size(); ++i) {
      EXPECT_TRUE(state_of(tensors_[i]) == states_[i]) << "watched tensor " << i << " changed";
    }
  }

 private:
  struct State {
    Shape shape;
    std::vector<double> value;
    std::optional<std::vector<double>> grad;
    std::uint64_t version;
    bool operator==(const State& o) const {
      auto bits = [](const std::vector<double>& x, const std::vector<double>& y) {
        return x.size() == y.size() &&
               (x.empty() || std::memcmp(x.data(), y.data(), x.size() * sizeof(double)) == 0);
      };
      return shape == o.shape && bits(value, o.value) && grad.has_value() == o.grad.has_value() &&
             (!grad || bits(*grad, *o.grad)) && version == o.version;
    }
  };
  static State state_of(const D& t) {
    State s{t.shape(), {t.value().begin(), t.value().end()}, std::nullopt, t.version()};
    if (t.has_grad()) s.grad.emplace(t.grad().value().begin(), t.grad().value().end());
    return s;
  }
  std::vector<D> tensors_;
  std::vector<State> states_;
};

struct Case {
  std::string what;
  std::function<bool(const std::exception&)> has_type;
  std::string type;
  std::vector<std::string> fragments;
  std::function<void(World&)> setup;    // runs before the snapshot (may be empty)
  std::function<void(World&)> mistake;  // must throw
};

template <class E>
Case bad(std::string what, std::vector<std::string> fragments, std::function<void(World&)> mistake,
         std::function<void(World&)> setup = {}) {
  return {std::move(what),
          [](const std::exception& e) { return dynamic_cast<const E*>(&e) != nullptr; },
          typeid(E).name(),
          std::move(fragments),
          std::move(setup),
          std::move(mistake)};
}

std::vector<Case> bad_inputs() {
  using V = std::vector<std::int64_t>;
  const double nan = std::nan("");
  return {
      // Binary op families with shapes that do not broadcast: a [2,3] against b [4].
      bad<ShapeError>("add", {"xgrad::add: shapes [2,3] and [4] cannot be broadcast together"},
                      [](World& w) { w.a + w.b; }),
      bad<ShapeError>("sub", {"xgrad::sub", "[2,3]", "[4]"}, [](World& w) { w.a - w.b; }),
      bad<ShapeError>("mul", {"xgrad::mul", "[2,3]", "[4]"}, [](World& w) { w.a* w.b; }),
      bad<ShapeError>("div", {"xgrad::div", "[2,3]", "[4]"}, [](World& w) { w.a / w.b; }),
      bad<ShapeError>("pow", {"xgrad::pow", "[2,3]", "[4]"}, [](World& w) { pow(w.a, w.b); }),
      bad<ShapeError>("maximum", {"xgrad::maximum", "[2,3]"}, [](World& w) { maximum(w.a, w.b); }),
      bad<ShapeError>("minimum", {"xgrad::minimum", "[4]"}, [](World& w) { minimum(w.b, w.a); }),
      bad<ShapeError>("where", {"xgrad::where", "[2,3]", "[4]"},
                      [](World& w) { where(w.c, w.a, w.b); }),
      bad<ShapeError>("comparison", {"xgrad::gt", "[2,3]"}, [](World& w) { (void)(w.a > w.b); }),
      bad<ShapeError>("mse", {"xgrad::mse", "[2,3]", "[3,4]"}, [](World& w) { mse(w.a, w.m); }),
      bad<ShapeError>("bce_with_logits", {"xgrad::bce_with_logits", "[4]"},
                      [](World& w) { bce_with_logits(w.b, w.a); }),
      // Matrix products.
      bad<ShapeError>("matmul", {"xgrad::matmul: shapes [3,4] and [2,3] do not chain"},
                      [](World& w) { w.m.matmul(w.a); }),
      bad<ShapeError>("matmul batch", {"xgrad::matmul", "[2,3,4]", "[3,4,2]", "batch"},
                      [](World&) {
                        matmul(D::ones({2, 3, 4}), D::ones({3, 4, 2}));
                      }),
      bad<ShapeError>("matmul 4-D", {"xgrad::matmul", "[2,2,3,4]", "[3,4,2]", "broadcast"},
                      [](World&) {
                        matmul(D::ones({2, 2, 3, 4}), D::ones({3, 4, 2}));
                      }),
      bad<ShapeError>("matmul 0-D", {"xgrad::matmul", "[]", "0-D"},
                      [](World&) { matmul(D::scalar(2.0), D::ones({2})); }),
      // Convolution, pooling, normalisation, embeddings.
      bad<ShapeError>("conv2d weight", {"xgrad::conv2d", "[2,3,5,5]", "[4,2,3,3]", "groups"},
                      [](World&) {
                        conv2d(D::ones({2, 3, 5, 5}), D::ones({4, 2, 3, 3}));
                      }),
      bad<ShapeError>("conv2d groups", {"xgrad::conv2d", "groups 2", "divide"},
                      [](World&) {
                        conv2d(D::ones({1, 3, 5, 5}), D::ones({4, 1, 3, 3}), D(), 1, 0, 1, 2);
                      }),
      bad<ShapeError>("conv2d bias", {"xgrad::conv2d", "bias [3]"},
                      [](World&) {
                        conv2d(D::ones({1, 2, 5, 5}), D::ones({4, 2, 3, 3}), D::ones({3}));
                      }),
      bad<ShapeError>("conv2d rank", {"xgrad::conv2d", "[5,5]", "[N, C, H, W]"},
                      [](World&) {
                        conv2d(D::ones({5, 5}), D::ones({1, 1, 3, 3}));
                      }),
      bad<ValueError>("conv2d kernel too large", {"xgrad::conv2d", "[1,1,2,2]", "larger"},
                      [](World&) {
                        conv2d(D::ones({1, 1, 2, 2}), D::ones({1, 1, 3, 3}));
                      }),
      bad<ValueError>("conv2d stride", {"xgrad::conv2d", "stride (0, 1)"},
                      [](World&) {
                        conv2d(D::ones({1, 1, 4, 4}), D::ones({1, 1, 3, 3}), D(), {0, 1});
                      }),
      bad<ValueError>("max_pool2d padding", {"xgrad::max_pool2d", "padding (2, 2)", "half"},
                      [](World&) {
                        max_pool2d(D::ones({1, 1, 6, 6}), 3, 1, 2);
                      }),
      bad<ValueError>("max_pool2d padding only", {"xgrad::max_pool2d", "padding only", "[1,1,1,1]"},
                      [](World&) {
                        max_pool2d(D::ones({1, 1, 1, 1}), 2, 2, 1, 2);
                      }),
      bad<ValueError>("avg_pool2d empty image", {"xgrad::avg_pool2d", "[1,1,0,4]", "height"},
                      [](World&) {
                        avg_pool2d(D::ones({1, 1, 0, 4}), 2, 2, 1, false);
                      }),
      bad<ValueError>("avg_pool2d negative padding", {"xgrad::avg_pool2d", "negative"},
                      [](World&) {
                        avg_pool2d(D::ones({1, 1, 6, 6}), 2, 2, {-1, 0});
                      }),
      bad<ShapeError>("fold columns", {"xgrad::fold", "[1,4,5]", "window positions"},
                      [](World&) {
                        fold(D::ones({1, 4, 5}), {3, 3}, 2);
                      }),
      bad<ShapeError>("fold taps", {"xgrad::fold", "[1,5,4]", "multiple"},
                      [](World&) {
                        fold(D::ones({1, 5, 4}), {3, 3}, 2);
                      }),
      bad<ShapeError>("batch_norm weight", {"xgrad::batch_norm", "[4,3]", "weight [2]"},
                      [](World&) {
                        batch_norm(D::ones({4, 3}), D(), D(), D::ones({2}), D(), true);
                      }),
      bad<ValueError>("batch_norm one value", {"xgrad::batch_norm", "more than one", "[1,3]"},
                      [](World&) {
                        batch_norm(D::ones({1, 3}), D(), D(), D(), D(), true);
                      }),
      bad<ShapeError>("batch_norm eval without statistics", {"xgrad::batch_norm", "running_mean"},
                      [](World&) {
                        batch_norm(D::ones({4, 3}), D(), D());
                      }),
      bad<ShapeError>("layer_norm shape", {"xgrad::layer_norm", "[2,3]", "normalized_shape [2]"},
                      [](World&) {
                        layer_norm(D::ones({2, 3}), {2});
                      }),
      bad<ValueError>("embedding index", {"xgrad::embedding", "index 3", "[3,2]"},
                      [](World&) {
                        embedding(D::from({0.0, 3.0}), D::ones({3, 2}));
                      }),
      bad<ValueError>("embedding fraction", {"xgrad::embedding", "0.5", "whole"},
                      [](World&) {
                        embedding(D::from({0.5}), D::ones({3, 2}));
                      }),
      bad<ValueError>("embedding list", {"xgrad::embedding", "index -1"},
                      [](World&) {
                        embedding(std::vector<std::int64_t>{-1}, D::ones({3, 2}));
                      }),
      bad<ShapeError>("permute count", {"xgrad::permute", "[2,3,1]", "2 dims"},
                      [](World&) {
                        permute(D::ones({2, 3, 1}), {0, 1});
                      }),
      bad<ShapeError>("permute repeat", {"xgrad::permute", "twice"},
                      [](World&) {
                        permute(D::ones({2, 3}), {1, -1});
                      }),
      bad<ShapeError>("tril 1-D", {"xgrad::tril", "[3]", "2 dims"},
                      [](World&) { tril(D::ones({3})); }),
      bad<ShapeError>("masked_fill mask", {"xgrad::masked_fill", "[2,1,3]", "[2,3]"},
                      [](World&) {
                        masked_fill(D::ones({2, 3}), D::ones({2, 1, 3}), 0.0);
                      }),
      bad<ShapeError>("matmul vectors", {"xgrad::matmul", "[4]", "[3]"},
                      [](World& w) { matmul(w.b, D::ones({3})); }),
      bad<ShapeError>("linear", {"xgrad::linear", "[2,3]", "[4,5]", "in_features"},
                      [](World& w) {
                        linear(w.a, D::ones({4, 5}));
                      }),
      bad<ShapeError>("linear bias", {"xgrad::linear", "bias [4]", "[out]"},
                      [](World& w) {
                        linear(w.a, D::ones({2, 3}), w.b);
                      }),
      bad<ShapeError>("T of 3-D", {"xgrad::T", "[2,2,2]"},
                      [](World&) {
                        D::ones({2, 2, 2}).T();
                      }),
      // Dims and reduction axes out of range or repeated.
      bad<ShapeError>("sum dim", {"xgrad::sum", "dim 2", "[2,3]"}, [](World& w) { w.a.sum(2); }),
      bad<ShapeError>("sum negative dim", {"xgrad::sum", "dim -3"}, [](World& w) { w.a.sum(-3); }),
      bad<ShapeError>("sum repeated dim", {"xgrad::sum", "twice"},
                      [](World& w) {
                        sum(w.a, {1, -1});
                      }),
      bad<ShapeError>("mean dim", {"xgrad::mean", "dim 5"}, [](World& w) { w.a.mean(5); }),
      bad<ShapeError>("max dim", {"xgrad::max", "dim 2"}, [](World& w) { w.a.max(2); }),
      bad<ShapeError>("softmax dim", {"xgrad::softmax", "dim 2"},
                      [](World& w) { softmax(w.a, 2); }),
      bad<ShapeError>("log_softmax dim", {"xgrad::log_softmax", "dim -3"},
                      [](World& w) { w.a.log_softmax(-3); }),
      bad<ShapeError>("transpose dim", {"xgrad::transpose", "dim 2", "[2,3]"},
                      [](World& w) { w.a.transpose(0, 2); }),
      bad<ShapeError>("unsqueeze dim", {"xgrad::unsqueeze", "dim 3"},
                      [](World& w) { w.a.unsqueeze(3); }),
      bad<ShapeError>("squeeze dim", {"xgrad::squeeze", "has size 2, not 1"},
                      [](World& w) { w.a.squeeze(0); }),
      bad<ShapeError>("flatten dims", {"xgrad::flatten", "start_dim 1 comes after end_dim 0"},
                      [](World& w) { w.a.flatten(1, 0); }),
      bad<ShapeError>("argmax dim", {"xgrad::argmax", "dim 2"}, [](World& w) { argmax(w.a, 2); }),
      bad<ShapeError>("size dim", {"xgrad::size", "dim 2"}, [](World& w) { w.a.size(2); }),
      bad<ValueError>("index_select index", {"xgrad::index_select", "index 2", "size 2"},
                      [](World& w) {
                        w.a.index_select(0, {0, 2});
                      }),
      bad<ShapeError>("concat", {"xgrad::concat", "[3,4]", "[2,3]"},
                      [](World& w) {
                        concat<double>({w.a, w.m}, 0);
                      }),
      bad<ShapeError>("stack", {"xgrad::stack", "[2,3]", "[3,4]"},
                      [](World& w) {
                        stack<double>({w.a, w.m});
                      }),
      bad<ShapeError>("broadcast_to", {"xgrad::broadcast_to", "[2,3]", "[3,3]"},
                      [](World& w) {
                        w.a.broadcast_to({3, 3});
                      }),
      // Negative, zero and overflowing sizes.
      bad<ShapeError>("reshape negative", {"xgrad::reshape", "invalid extent -2"},
                      [](World& w) {
                        w.a.reshape({-2, 3});
                      }),
      bad<ShapeError>("reshape two -1", {"xgrad::reshape", "only one dimension can be -1"},
                      [](World& w) {
                        w.a.reshape({-1, -1});
                      }),
      bad<ShapeError>("reshape count", {"xgrad::reshape: cannot reshape [2,3] (6 elements)"},
                      [](World& w) { w.a.reshape({7}); }),
      bad<ValueError>("zeros of an overflowing shape",
                      {"xgrad::zeros: shape [4294967296,4294967296] has more elements"},
                      [](World&) {
                        D::zeros({std::size_t(1) << 32, std::size_t(1) << 32});
                      }),
      bad<ValueError>("a negative extent as a size", {"xgrad::randn", "more elements"},
                      [](World&) {
                        D::randn({2, static_cast<std::size_t>(-1)}, 1);
                      }),
      bad<ValueError>("eye too large", {"xgrad::eye", "[8589934592,8589934592]"},
                      [](World&) { D::eye(std::size_t(1) << 33); }),
      bad<ValueError>("broadcast_to an overflowing shape", {"xgrad::broadcast_to", "more elements"},
                      [](World& w) {
                        w.b.broadcast_to({std::size_t(1) << 62, 4});
                      }),
      bad<ValueError>("mean of nothing", {"xgrad::mean", "[0,3]", "no elements"},
                      [](World&) {
                        D::zeros({0, 3}).mean();
                      }),
      bad<ValueError>("var of nothing", {"xgrad::var", "[0,3]", "no elements"},
                      [](World&) {
                        D::zeros({0, 3}).var(0);
                      }),
      bad<ValueError>("var with correction >= N", {"xgrad::var", "correction 2", "[2,3]", "N = 2"},
                      [](World& w) { w.a.var(0, 2.0); }),
      bad<ValueError>("std with correction >= N", {"xgrad::std", "correction 1", "[2,1]", "N = 1"},
                      [](World& w) { w.a.index_select(1, {0}).std(1); }),
      bad<ShapeError>("logsumexp dim", {"xgrad::logsumexp", "dim 2", "[2,3]"},
                      [](World& w) { w.a.logsumexp(2); }),
      bad<ShapeError>("var repeated dim", {"xgrad::var", "twice"},
                      [](World& w) {
                        var(w.a, {0, -2});
                      }),
      bad<ValueError>("softplus beta 0", {"xgrad::softplus", "beta must be nonzero"},
                      [](World& w) { softplus(w.a, 0.0); }),
      bad<ValueError>("gelu approximate", {"xgrad::gelu", "\"sigmoid\""},
                      [](World& w) { gelu(w.a, "sigmoid"); }),
      bad<ValueError>("max of nothing", {"xgrad::max", "[2,0]"},
                      [](World&) {
                        D::zeros({2, 0}).max(1);
                      }),
      bad<ValueError>("slice step 0", {"xgrad::slice", "step must be positive, got 0"},
                      [](World& w) { w.a.slice(1, 0, 2, 0); }),
      bad<ValueError>("arange step 0", {"xgrad::arange", "non-zero step"},
                      [](World&) { D::arange(0.0, 1.0, 0.0); }),
      bad<ValueError>("Linear of width 0", {"xgrad::nn::Linear", "in_features 0", "positive"},
                      [](World&) { nn::Linear<double>(0, 3); }),
      bad<ValueError>("MLP of one size", {"xgrad::nn::MLP", "at least an input and an output"},
                      [](World&) { nn::MLP<double>({3}); }),
      bad<ValueError>("Dropout p = 1", {"xgrad::nn::Dropout", "[0, 1)"},
                      [](World&) { nn::Dropout<double>(1.0); }),
      bad<ValueError>("DataLoader batch size 0", {"xgrad::DataLoader", "batch_size", "got 0"},
                      [](World& w) {
                        data::DataLoaderOptions options;
                        options.batch_size = 0;
                        data::DataLoader<double>(w.a, w.c, options);
                      }),
      bad<ShapeError>("DataLoader samples", {"xgrad::DataLoader", "[2,3]", "[3,4]", "2 vs 3"},
                      [](World& w) { data::DataLoader<double>(w.a, w.m); }),
      // Losses given labels or probabilities out of range.
      bad<ValueError>("cross_entropy label",
                      {"xgrad::cross_entropy: label 2 at position 1 is out of range for 2 classes"},
                      [](World& w) {
                        cross_entropy(w.net(w.a), V{0, 2});
                      }),
      bad<ValueError>("cross_entropy negative label", {"xgrad::cross_entropy", "label -1"},
                      [](World& w) {
                        cross_entropy(w.net(w.a), V{-1, 0});
                      }),
      bad<ShapeError>("cross_entropy label count", {"xgrad::cross_entropy", "3 labels", "[2,2]"},
                      [](World& w) {
                        cross_entropy(w.net(w.a), V{0, 1, 1});
                      }),
      bad<ValueError>("cross_entropy label tensor", {"xgrad::cross_entropy", "0.5", "whole"},
                      [](World& w) {
                        cross_entropy(w.net(w.a), D::from({0.5, 1.0}));
                      }),
      bad<ValueError>("nll label", {"xgrad::nll", "label 7"},
                      [](World& w) {
                        nll(w.net(w.a), V{7, 0});
                      }),
      bad<ValueError>("bce probability", {"xgrad::bce", "1.5", "not a probability"},
                      [](World&) {
                        bce(D::from({0.5, 1.5}), D::from({1.0, 0.0}));
                      }),
      bad<ValueError>("clamp bounds", {"xgrad::clamp", "greater than"},
                      [](World& w) { w.a.clamp(1.0, -1.0); }),
      bad<ValueError>("pow NaN exponent", {"xgrad::pow", "NaN"}, [nan](World& w) { w.a.pow(nan); }),
      bad<ShapeError>("item", {"xgrad::item", "[2,3]", "6 elements"}, [](World& w) { w.a.item(); }),
      bad<Error>("undefined tensor", {"undefined"}, [](World& w) { w.a + D(); }),
      // The autograd graph.
      bad<GraphError>("backward without gradient",
                      {"xgrad::backward", "[2,3]", "explicit gradient"},
                      [](World& w) { (w.a * 2.0).backward(); }),
      bad<ShapeError>("backward gradient shape", {"xgrad::backward", "[4]", "[2,3]"},
                      [](World& w) {
                        (w.a * 2.0).backward(Array<double>{1.0, 2.0, 3.0, 4.0});
                      }),
      bad<GraphError>(
          "backward twice", {"xgrad::backward", "'sum'", "freed", "retain_graph"},
          [](World& w) { w.out.backward(); },
          [](World& w) {
            w.out = (w.a * w.c).sum();
            w.out.backward();
          }),
      bad<GraphError>(
          "saved tensor modified",
          {"xgrad::backward", "input 1 of 'mul'", "modified in place", "version 1"},
          [](World& w) { w.out.backward(); },
          [](World& w) {
            // exp's branch is swept first: its gradient must not reach a alone.
            w.out = (w.a * w.c).sum() + w.a.exp().sum();
            w.c.mutable_value()(0, 0) = 5.0;
          }),
      bad<GraphError>("backward without requires_grad", {"xgrad::backward", "does not require"},
                      [](World& w) { w.c.sum().backward(); }),
      bad<GraphError>("requires_grad_ on a result", {"xgrad::requires_grad_", "'mul'"},
                      [](World& w) { (w.a * 2.0).requires_grad_(false); }),
      bad<GraphError>("grad of a constant", {"xgrad::grad", "input 0", "does not require grad"},
                      [](World& w) { grad<double>({w.a.sum()}, {w.c}); }),
      bad<GraphError>("grad of an unused input", {"xgrad::grad", "not reachable"},
                      [](World& w) { grad<double>({w.a.sum()}, {w.b}); }),
      // Optimisers.
      bad<ValueError>("SGD without parameters", {"xgrad::SGD", "no parameters"},
                      [](World&) { optim::SGD<double>({}, {.lr = 0.1}); }),
      bad<ValueError>("Adam without parameters", {"xgrad::Adam", "no parameters"},
                      [](World&) { optim::Adam<double>({}, optim::AdamOptions{}); }),
      bad<ValueError>("SGD learning rate", {"xgrad::SGD", "learning rate"},
                      [](World& w) { optim::SGD<double>(w.net.parameters(), {.lr = -1.0}); }),
      bad<ValueError>("optimiser given a result", {"xgrad::SGD", "not a leaf", "'mul'"},
                      [](World& w) { optim::SGD<double>({w.a * 2.0}, {.lr = 0.1}); }),
      bad<ValueError>("optimiser given a parameter twice", {"xgrad::SGD", "same tensor"},
                      [](World& w) {
                        optim::SGD<double>({w.a, w.b, w.a}, {.lr = 0.1});
                      }),
      // Checkpoints.
      bad<IoError>(
          "checkpoint of another shape",
          {"xgrad::io::load", "'0.weight' has shape [4,3] in the module but [5,3]"},
          [](World& w) { io::load(w.net, w.dir + "/wider.safetensors"); },
          [](World& w) {
            Generator gen(5);
            nn::MLP<double> wider({3, 5, 2}, nn::Act::ReLU, nn::Act::Identity, gen);
            io::save(wider, w.dir + "/wider.safetensors");
          }),
      bad<IoError>("checkpoint missing", {"xgrad::io::load", "missing.safetensors"},
                   [](World& w) { io::load(w.net, w.dir + "/missing.safetensors"); }),
  };
}

TEST(Errors, EveryBadInputThrowsItsTypeAndChangesNothing) {
  const auto cases = bad_inputs();
  EXPECT_GE(cases.size(), 40u);
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    World w;
    if (c.setup) c.setup(w);
    const Snapshot before(w.watched());
    try {
      c.mistake(w);
      ADD_FAILURE() << "expected " << c.type;
    } catch (const std::exception& e) {
      EXPECT_TRUE(c.has_type(e)) << "expected " << c.type << ", got " << typeid(e).name() << ": "
                                 << e.what();
      const std::string msg = e.what();
      for (const auto& f : c.fragments) {
        EXPECT_NE(msg.find(f), std::string::npos) << "message: " << msg << "\nmissing: " << f;
      }
    }
    before.expect_unchanged();
  }
}

}  // namespace
}  // namespace xgrad
