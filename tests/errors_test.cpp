// Every user mistake raises an xgrad error that names the operation and the shapes or values at
// fault, and leaves the tensors involved unchanged.

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
  expect_error<ShapeError>([&] { a > b; }, {"xgrad::gt"});
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
        matmul(D::ones({1, 2, 3, 4}), D::ones({4, 2}));
      },
      {"xgrad::matmul", "[1,2,3,4]"});
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

}  // namespace
}  // namespace xgrad
