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

TEST(Interop, TheReshapeFamilyReturnsViewsOfItsInput) {
  auto t = Tensor<float>::arange(6);
  const float* buffer = t.value().data();
  auto r = t.reshape({2, 3});
  auto views = {r,
                r.flatten(),
                t.unsqueeze(0),
                t.unsqueeze(0).squeeze(),
                r.unsqueeze(2).squeeze(2),
                t.reshape({3, -1}).reshape({1, 6, 1})};
  for (const auto& v : views) EXPECT_EQ(v.value().data(), buffer) << v.shape().size();
  EXPECT_EQ(r.shape(), (Shape{2, 3}));
  // A view of a view has the base itself as its base: one version counter for all of them.
  EXPECT_EQ(r.reshape({6}).impl()->storage->base, t.impl()->storage);
}

TEST(Interop, WritesThroughAViewReachTheBaseAndItsVersion) {
  auto t = Tensor<double>::zeros({6});
  auto r = t.reshape({2, 3});
  const auto before = t.version();
  r.mutable_value()(1, 2) = 42.0;
  EXPECT_EQ(t.value()(5), 42.0);
  EXPECT_GT(t.version(), before);
  EXPECT_EQ(r.version(), t.version());
  t.mutable_value()(0) = 7.0;
  EXPECT_EQ(r.value()(0, 0), 7.0);
  EXPECT_EQ(r.version(), t.version());
}

TEST(Interop, BackwardCatchesAWriteThroughAViewOfASavedValue) {
  {  // mul saved the view; the base changes
    auto w = Tensor<double>::from({1.0, 2.0}).requires_grad_();
    auto v = w.reshape({2, 1});
    auto y = (v * v).sum();
    w.mutable_value()(0) = 5.0;
    test::expect_error<GraphError>([&] { y.backward(); }, {"'mul'", "modified in place"});
  }
  {  // mul saved the base; a view of it changes
    auto w = Tensor<double>::from({1.0, 2.0}).requires_grad_();
    auto y = (w * w).sum();
    auto v = w.detach().reshape({1, 2});
    v.mutable_value()(0, 1) = 5.0;
    test::expect_error<GraphError>([&] { y.backward(); }, {"'mul'", "modified in place"});
  }
}

TEST(Interop, AViewKeepsItsElementsAliveAndCopiesOfItAreNewBuffers) {
  auto t = Tensor<float>::from({1.0f, 2.0f, 3.0f, 4.0f});
  auto r = t.reshape({2, 2});
  t = Tensor<float>();
  EXPECT_EQ(r.value()(1, 1), 4.0f);  // still valid: the view holds the base's storage
  Array<float> copy = r.value();
  EXPECT_NE(copy.data(), r.value().data());
  copy(0, 0) = -1.0f;
  EXPECT_EQ(r.value()(0, 0), 1.0f);
  // An array moved out of a view takes the shared elements with it, kept alive as well.
  Array<float> moved = std::move(r.mutable_value());
  r = Tensor<float>();
  EXPECT_EQ(moved(1, 0), 3.0f);
}

TEST(Interop, ResizingAViewsValueGivesItABufferOfItsOwn) {
  auto t = Tensor<double>::from({1.0, 2.0, 3.0, 4.0});
  auto r = t.reshape({2, 2});
  r.mutable_value().resize({3});
  EXPECT_NE(r.value().data(), t.value().data());
  r.mutable_value().fill(0.0);
  EXPECT_EQ(t.value(), (Array<double>{1.0, 2.0, 3.0, 4.0}));
  // Assigning a value of the same size writes through, as any in-place update does.
  auto s = t.reshape({1, 4});
  s.mutable_value() = Array<double>{{9.0, 8.0, 7.0, 6.0}};
  EXPECT_EQ(t.value(), (Array<double>{9.0, 8.0, 7.0, 6.0}));
}

TEST(Interop, ReplacingTheBasesValueLeavesItsViewsValid) {
  auto t = Tensor<double>::from({1.0, 2.0, 3.0, 4.0});
  auto v = t.reshape({2, 2});
  // An expression assigned to the base is evaluated first, then written through: same size.
  t.mutable_value() = t.value() * 2.0;
  EXPECT_EQ(v.value()(1, 1), 8.0);
  // A value of another size gives the base new elements; the view keeps the old ones alive.
  t.mutable_value() = Array<double>{5.0, 6.0};
  EXPECT_EQ(v.value()(1, 0), 6.0);
  v.mutable_value()(0, 0) = -1.0;
  EXPECT_EQ(t.value()(0), 5.0);
  // Moving a view's value into the base writes it through (they share the elements).
  auto w = Tensor<double>::from({1.0, 2.0});
  auto u = w.reshape({2, 1});
  w.mutable_value() = std::move(u.mutable_value());
  EXPECT_EQ(w.value().data()[1], 2.0);
  EXPECT_EQ(w.value().data(), u.value().data());
}

TEST(Interop, GradientsThroughViewsAreNotShared) {
  // add hands one gradient to both inputs; b's arrives through reshape's derivative, a view of
  // it. Each leaf must still end up with a buffer of its own.
  auto a = Tensor<double>::zeros({2, 2}).requires_grad_();
  auto b = Tensor<double>::zeros({4}).requires_grad_();
  for (int pass = 0; pass < 2; ++pass) (a + b.reshape({2, 2})).sum().backward();
  EXPECT_NE(a.grad().value().data(), b.grad().value().data());
  a.mutable_grad()(0, 0) = 100.0;
  EXPECT_EQ(b.grad().value(), (Array<double>{2.0, 2.0, 2.0, 2.0}));
  EXPECT_EQ(a.grad().value()(1, 1), 2.0);
}

TEST(Interop, ShareAndRecordRefuseWhatTheyCannotUse) {
  auto t = Tensor<float>::zeros({2, 3});
  test::expect_error<ShapeError>([&] { share(t, Shape{4}); }, {"share", "[4]", "[2,3]"});
  auto x = Tensor<float>::ones({2}).requires_grad_();
  auto y = x * 2.0f;
  test::expect_error<GraphError>(
      [&] {
        record<float>(
            "again", y, {x}, [](const Tensor<float>&, Grads<float>&) {}, Saves::none());
      },
      {"'again'", "already part of a graph"});
}

}  // namespace
}  // namespace xgrad
