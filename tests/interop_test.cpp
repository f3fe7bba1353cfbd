// The ownership rules of docs/interop.md: which calls share a tensor's buffer and which copy it,
// and that the version counter sees writes made through views.

#include <span>
#include <vector>

#include "test_util.hpp"

namespace xgrad {
namespace {

TEST(Interop, MovingAnArrayInKeepsItsBuffer) {
  Array<float> a = xt::arange<float>(6.0f);
  a.reshape({2, 3});
  const float* buffer = a.data();
  Tensor<float> t(std::move(a));
  EXPECT_EQ(t.value().data(), buffer);
  EXPECT_EQ(t.shape(), (Shape{2, 3}));
}

TEST(Interop, AnLvalueArrayIsCopied) {
  Array<double> a = {1.0, 2.0, 3.0};
  Tensor<double> t(a);
  EXPECT_NE(t.value().data(), a.data());
  a(0) = 10.0;
  EXPECT_EQ(t.value()(0), 1.0);
}

TEST(Interop, HandlesAndDetachShareCloneCopies) {
  auto t = Tensor<double>::from({1.0, 2.0});
  auto copy = t;
  auto detached = t.detach();
  auto cloned = t.clone_detached();
  EXPECT_EQ(copy.value().data(), t.value().data());
  EXPECT_EQ(detached.value().data(), t.value().data());
  EXPECT_NE(cloned.value().data(), t.value().data());
}

TEST(Interop, AdaptIsAViewThatSeesWritesThroughMutableValue) {
  auto t = Tensor<float>::zeros({2, 3});
  auto view = xt::adapt(t.value().data(), t.numel(), xt::no_ownership(), t.shape());
  const auto before = t.version();
  auto writable = xt::adapt(t.mutable_value().data(), t.numel(), xt::no_ownership(), t.shape());
  writable(1, 2) = 42.0f;
  EXPECT_EQ(view(1, 2), 42.0f);
  EXPECT_EQ(t.value()(1, 2), 42.0f);
  EXPECT_GT(t.version(), before);
}

TEST(Interop, AWriteThroughAViewAfterRecordingIsCaughtByBackward) {
  auto w = Tensor<double>::from({1.0, 2.0}).requires_grad_();
  auto y = (w * w).sum();  // mul saved w
  auto writable = xt::adapt(w.mutable_value().data(), w.numel(), xt::no_ownership(), w.shape());
  writable(0) = 5.0;
  EXPECT_THROW(y.backward(), GraphError);
}

TEST(Interop, OptimiserStepsKeepTheBufferAViewHolds) {
  auto w = Tensor<float>::ones({3}).requires_grad_();
  const float* buffer = w.value().data();
  optim::SGD<float> sgd({w}, {.lr = 0.5});
  (w * w).sum().backward();
  sgd.step();
  EXPECT_EQ(w.value().data(), buffer);
  EXPECT_EQ(std::span<const float>(buffer, 3)[0], 0.0f);  // 1 - 0.5 * 2
}

TEST(Interop, UserMemoryIsCopiedOnce) {
  std::vector<double> mine = {1, 2, 3, 4, 5, 6};
  Tensor<double> t(
      Array<double>(xt::adapt(mine.data(), mine.size(), xt::no_ownership(), Shape{2, 3})));
  EXPECT_NE(t.value().data(), mine.data());
  mine[5] = 0;
  EXPECT_EQ(t.value()(1, 2), 6.0);
}

TEST(Interop, OperationsDoNotWriteTheirInputs) {
  auto a = Tensor<float>::from({1.0f, -2.0f, 3.0f});
  const Array<float> before = a.value();
  const float* buffer = a.value().data();
  auto b = relu(a * 2.0f + 1.0f).exp();
  EXPECT_EQ(a.value().data(), buffer);
  EXPECT_EQ(a.value(), before);
  EXPECT_NE(b.value().data(), buffer);
}

}  // namespace
}  // namespace xgrad
