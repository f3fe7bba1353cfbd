// Code written the way a PyTorch user writes it: modules with children held by handles, module
// types for activations, initialisers on a layer's parameters, tensors from std::vector, labels
// of any integer type, method forms, and the gradient checker under `using namespace xgrad;`.
// The file deliberately says `using namespace xgrad;` at file scope next to GoogleTest's
// ::testing, as a user's test file does.

#include <cstdint>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "test_util.hpp"

using namespace xgrad;  // NOLINT: the point of this file
using xgrad::test::expect_error;

namespace {

using F = Tensor<float>;
using D = Tensor<double>;

// Three children, one of them a Sequential, one line each; no describe() written.
struct Net : nn::Module<float> {
  nn::Handle<nn::Linear<float>> fc1, fc2;
  nn::Handle<nn::Sequential<float>> head;

  explicit Net(Generator& gen) {
    fc1 = register_module("fc1", nn::Linear<float>(4, 8, true, gen));
    fc2 = register_module("fc2", nn::Linear<float>(8, 8, true, gen));
    head = register_module(
        "head", nn::Sequential<float>{nn::ReLU<float>(), nn::Linear<float>(8, 3, true, gen)});
  }
  F forward(const F& x) override { return head(fc2->forward(fc1(x).relu())); }
};

// The same in a class template, where the base's members need `this->`.
template <class T>
struct Block : nn::Module<T> {
  nn::Handle<nn::Linear<T>> fc;
  explicit Block(std::size_t n) : fc(this->register_module("fc", nn::Linear<T>(n, n))) {}
  Tensor<T> forward(const Tensor<T>& x) override { return x + fc(x); }
};

TEST(NnHandles, ChildrenRegisteredByValueAreCalledThroughHandles) {
  Generator gen(3);
  Net net(gen);
  std::vector<std::string> names;
  for (const auto& [name, p] : net.named_parameters()) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias",
                                             "head.1.weight", "head.1.bias"}));
  auto x = F::randn({5, 4}, 1);
  auto y = net(x);
  EXPECT_EQ(y.shape(), (Shape{5, 3}));
  // The handle and the registered child are one module: its forward is the expected product.
  auto by_hand = (*net.head)(net.fc2->forward(relu(linear(x, net.fc1->weight(), net.fc1->bias()))));
  EXPECT_EQ(y.value(), by_hand.value());
  // describe() defaults to the class name.
  EXPECT_EQ(net.describe(), "Net");
  EXPECT_NE(net.summary().find("Net (\n  (fc1): Linear(in_features=4"), std::string::npos)
      << net.summary();
  // Gradients reach every child.
  y.sum().backward();
  for (const auto& p : net.parameters()) EXPECT_TRUE(p.has_grad());

  Block<double> block(3);
  EXPECT_EQ(block.describe(), "Block<double>");
  EXPECT_EQ(block.named_parameters()[0].first, "fc.weight");
  EXPECT_EQ(block(D::ones({2, 3})).shape(), (Shape{2, 3}));
}

TEST(NnHandles, MistakesAreNamed) {
  struct Twice : nn::Module<float> {
    Twice() {
      register_module("fc", nn::Linear<float>(2, 2));
      register_module("fc", nn::Linear<float>(2, 2));
    }
    F forward(const F& x) override { return x; }
  };
  expect_error<ValueError>([] { Twice t; }, {"register_module", "'fc' is already registered"});
  struct Null : nn::Module<float> {
    Null() { register_module("fc", std::shared_ptr<nn::Linear<float>>()); }
    F forward(const F& x) override { return x; }
  };
  expect_error<ValueError>([] { Null n; }, {"register_module", "'fc' is a null module"});
  nn::Handle<nn::Linear<float>> empty;
  EXPECT_FALSE(empty);
  expect_error<ValueError>([&] { empty(F::ones({1, 2})); }, {"xgrad::nn::Handle", "empty"});
  // The old spelling still works: a shared_ptr in, a handle out that converts back.
  struct Old : nn::Module<float> {
    std::shared_ptr<nn::Linear<float>> fc;
    Old() : fc(register_module("fc", std::make_shared<nn::Linear<float>>(2, 2))) {}
    F forward(const F& x) override { return (*fc)(x); }
  };
  Old old;
  EXPECT_EQ(old.num_parameters(), 6u);
}

TEST(NnActivationTypes, TorchNamesAreModuleTypes) {
  auto x = F::from({{-1, 2}, {3, -4}});
  nn::ReLU<float> act;
  EXPECT_EQ(act(x).value(), relu(x).value());
  EXPECT_EQ(act.describe(), "ReLU()");
  EXPECT_EQ(nn::Tanh<float>()(x).value(), tanh(x).value());
  EXPECT_EQ(nn::Sigmoid<float>()(x).value(), sigmoid(x).value());
  EXPECT_EQ(nn::LeakyReLU<float>(0.5f)(x).value(), leaky_relu(x, 0.5f).value());
  EXPECT_EQ(nn::Identity<float>()(x).value(), x.value());
  nn::Softmax<float> soft(0);
  EXPECT_EQ(soft(x).value(), softmax(x, 0).value());
  EXPECT_EQ(soft.describe(), "Softmax(dim=0)");
  EXPECT_EQ(nn::LogSoftmax<float>(1)(x).value(), log_softmax(x, 1).value());
  EXPECT_EQ(nn::GELU<float>()(x).value(), gelu(x).value());
  EXPECT_EQ(nn::GELU<float>("tanh")(x).value(), gelu(x, true).value());
  EXPECT_EQ(nn::GELU<float>(true).describe(), "GELU(approximate='tanh')");
  EXPECT_EQ(nn::GELU<float>("none").describe(), "GELU(approximate='none')");
  EXPECT_EQ(nn::SiLU<float>()(x).value(), silu(x).value());
  EXPECT_EQ(nn::SiLU<float>().describe(), "SiLU()");
  nn::Softplus<float> sp(2.0f, 3.0f);
  EXPECT_EQ(sp(x).value(), softplus(x, 2.0f, 3.0f).value());
  EXPECT_EQ(sp.describe(), "Softplus(beta=2.000000, threshold=3.000000)");
  EXPECT_EQ(nn::Softplus<float>()(x).value(), softplus(x).value());
  Generator g(1);
  nn::MLP<float> mlp({2, 3, 1}, nn::Act::GELU, nn::Act::Softplus, g);
  EXPECT_EQ(mlp[1].describe(), "GELU(approximate='none')");
  EXPECT_EQ(mlp[1](x).value(), gelu(x).value());
  EXPECT_EQ(mlp[3](x).value(), softplus(x).value());
  EXPECT_EQ(nn::Activation<float>(nn::Act::SiLU)(x).value(), silu(x).value());
  nn::Flatten<float> flat;
  EXPECT_EQ(flat(F::ones({2, 3, 4})).shape(), (Shape{2, 12}));
  EXPECT_EQ(flat.describe(), "Flatten(start_dim=1, end_dim=-1)");
  nn::Dropout<float> drop(0.5f);
  drop.eval();
  EXPECT_EQ(drop(x).value(), x.value());

  // Values, shared pointers and handles mix in a Sequential.
  Generator gen(0);
  nn::Handle<nn::Linear<float>> last = std::make_shared<nn::Linear<float>>(3, 2, true, gen);
  nn::Sequential<float> seq{nn::Flatten<float>(), nn::Linear<float>(4, 3, true, gen),
                            nn::Tanh<float>(), last};
  seq.push_back(nn::Softmax<float>(-1));
  EXPECT_EQ(seq.size(), 5u);
  auto p = seq(F::ones({2, 2, 2}));
  EXPECT_EQ(p.shape(), (Shape{2, 2}));
  EXPECT_NEAR(p.sum().item(), 2.0f, 1e-5f);
  EXPECT_EQ(&seq[3], last.get());
}

TEST(NnInit, WorksOnALayersParametersDirectly) {
  Generator gen(5);
  nn::Linear<float> fc(100, 50);
  nn::init::xavier_uniform_(fc.weight(), 1.0f, gen);
  const float bound = std::sqrt(6.0f / 150.0f);
  EXPECT_LE(xt::amax(xt::abs(fc.weight().value()))(), bound);
  EXPECT_GT(xt::amax(xt::abs(fc.weight().value()))(), 0.9f * bound);
  nn::init::constant_(fc.bias(), 0.5);  // a double literal on a float tensor
  EXPECT_EQ(fc.bias().value()(7), 0.5f);
  auto w = nn::init::zeros_(fc.weight());  // returns the handle, as torch's init does
  EXPECT_EQ(xt::sum(fc.weight().value())(), 0.0f);
  EXPECT_EQ(&w.value(), &fc.weight().value());
  nn::init::kaiming_normal_(fc.weight());
  EXPECT_GT(xt::amax(xt::abs(fc.weight().value()))(), 0.0f);
}

TEST(TensorFrom, VectorAndShape) {
  std::vector<float> values = {1, 2, 3, 4, 5, 6};
  auto t = F::from(values, {2, 3});
  EXPECT_EQ(t.shape(), (Shape{2, 3}));
  EXPECT_EQ(t.value()(1, 0), 4.0f);
  values[3] = 40;  // a copy: the tensor keeps its own numbers
  EXPECT_EQ(t.value()(1, 0), 4.0f);
  std::vector<std::uint8_t> pixels = {0, 128, 255};
  EXPECT_EQ(F::from(pixels, {3}).value()(2), 255.0f);
  EXPECT_EQ(D::from(std::vector<int>{-1, 7}, {2, 1}).value()(1, 0), 7.0);
  EXPECT_EQ(F::from(std::vector<float>{}, {0, 3}).shape(), (Shape{0, 3}));
  expect_error<ShapeError>(
      [&] {
        F::from(values, {4, 2});
      },
      {"xgrad::from", "6 values", "[4,2]", "8 elements"});
}

TEST(Labels, AnyIntegerVectorAndOneHot) {
  auto logits = D::randn({4, 3}, 2);
  const std::vector<std::int64_t> wide = {2, 0, 1, 2};
  const double expected = cross_entropy(logits, wide).item();
  EXPECT_EQ(cross_entropy(logits, std::vector<int>{2, 0, 1, 2}).item(), expected);
  EXPECT_EQ(cross_entropy(logits, std::vector<std::uint8_t>{2, 0, 1, 2}).item(), expected);
  EXPECT_EQ(cross_entropy(logits, std::vector<long long>{2, 0, 1, 2}).item(), expected);
  auto lp = log_softmax(logits, 1);
  EXPECT_EQ(nll(lp, std::vector<unsigned>{2, 0, 1, 2}).item(), nll(lp, wide).item());
  expect_error<ValueError>(
      [&] {
        cross_entropy(logits, std::vector<int>{0, 1, 3, 0});
      },
      {"cross_entropy"});

  auto hot = one_hot<float>(std::vector<int>{2, 0, 1}, 4);
  EXPECT_EQ(hot.value(), (Array<float>{{0, 0, 1, 0}, {1, 0, 0, 0}, {0, 1, 0, 0}}));
  EXPECT_EQ(one_hot<double>({1, 3}).shape(), (Shape{2, 4}));  // classes inferred: max + 1
  auto from_tensor = one_hot(F::from({{1, 0}, {2, 2}}), 3);   // [2,2] -> [2,2,3]
  EXPECT_EQ(from_tensor.shape(), (Shape{2, 2, 3}));
  EXPECT_EQ(from_tensor.value()(1, 0, 2), 1.0f);
  EXPECT_EQ(xt::sum(from_tensor.value())(), 4.0f);
  expect_error<ValueError>(
      [] {
        one_hot<float>(std::vector<int>{0, 5}, 3);
      },
      {"xgrad::one_hot", "label 5 at index 1", "[0, 3)"});
  expect_error<ValueError>([] { one_hot<float>(std::vector<int>{-1}, 3); }, {"label -1"});
  expect_error<ValueError>([] { one_hot(F::from({0.5f}), 2); },
                           {"xgrad::one_hot", "not a non-negative whole number"});
  expect_error<ValueError>([] { one_hot<float>(std::vector<int>{}); }, {"cannot infer"});
  expect_error<ValueError>([] { one_hot<float>({1}, 0); }, {"num_classes 0"});
}

TEST(TensorMethods, ReductionsUnaryAndItem) {
  auto x = F::from({{1, 5, 2}, {7, 0, 3}});
  EXPECT_EQ(x.argmax(1).value(), argmax(x, 1).value());
  EXPECT_EQ(x.argmax(1, true).shape(), (Shape{2, 1}));
  EXPECT_EQ(x.argmin(0).value(), argmin(x, 0).value());
  EXPECT_EQ(x.argmax().item<int>(), 3);  // flat index, as torch's t.argmax()
  EXPECT_EQ(x.argmin().item<std::int64_t>(), 4);
  EXPECT_EQ(x.argmax().dim(), 0u);
  EXPECT_EQ(x.amax({1}).value(), max(x, {1}).value());
  EXPECT_EQ(x.amin({0}, true).value(), min(x, {0}, true).value());
  EXPECT_EQ(x.sum().item<double>(), 18.0);
  EXPECT_EQ(F::scalar(-2.75f).item<int>(), -2);  // toward zero, as a C++ cast

  auto y = F::from({{2, 2, 2}, {1, 1, 1}});
  EXPECT_EQ(x.add(y).value(), (x + y).value());
  EXPECT_EQ(x.add(1).value(), (x + 1.0f).value());
  EXPECT_EQ(x.sub(y).value(), (x - y).value());
  EXPECT_EQ(x.sub(1).value(), (x - 1.0f).value());
  EXPECT_EQ(x.mul(y).value(), (x * y).value());
  EXPECT_EQ(x.mul(2).value(), (x * 2.0f).value());
  EXPECT_EQ(x.div(y).value(), (x / y).value());
  EXPECT_EQ(x.div(2).value(), (x / 2.0f).value());
  EXPECT_EQ(x.maximum(y).value(), maximum(x, y).value());
  EXPECT_EQ(x.minimum(y).value(), minimum(x, y).value());
  EXPECT_EQ(x.where(x.gt(2), y).value(), where(gt(x, F::scalar(2)), x, y).value());
  EXPECT_EQ(x.heaviside(0.5f).value(), heaviside(x, 0.5f).value());
  EXPECT_EQ(x.gt(y).value(), gt(x, y).value());
  EXPECT_EQ(x.lt(2).value(), lt(x, F::scalar(2)).value());
  EXPECT_EQ(x.ge(y).value(), ge(x, y).value());
  EXPECT_EQ(x.le(3).value(), le(x, F::scalar(3)).value());
  EXPECT_EQ(x.eq(y).value(), eq(x, y).value());
  EXPECT_EQ(x.eq(0).value(), eq(x, F::scalar(0)).value());
  EXPECT_EQ(x.t().value(), x.T().value());

  // Methods record like the functions: gradients flow.
  auto w = D::from({1.0, -2.0, 3.0}).requires_grad_();
  w.mul(w).add(1).amax().backward();
  EXPECT_EQ(w.grad().value()(2), 6.0);

  expect_error<ValueError>([] { F::scalar(std::numeric_limits<float>::quiet_NaN()).item<int>(); },
                           {"xgrad::item", "does not fit"});
  expect_error<ValueError>([] { F::scalar(300.0f).item<std::uint8_t>(); }, {"300"});
  expect_error<ValueError>([] { F::scalar(-1.0f).item<unsigned>(); }, {"xgrad::item"});
  expect_error<ValueError>([] { D::scalar(9.3e18).item<std::int64_t>(); }, {"xgrad::item"});
  expect_error<ShapeError>([&] { x.item<int>(); }, {"xgrad::item", "[2,3]"});
}

TEST(Gradcheck, ReachableUnderUsingNamespaceXgrad) {
  auto x = D::randn({3}, 4).requires_grad_();
  auto report = gradcheck([](auto& in) { return in[0].exp().sum(); }, {x});
  EXPECT_TRUE(report) << report.summary();
  GradcheckOptions strict{.atol = 1e-7, .rtol = 1e-5};
  EXPECT_TRUE(xgrad::gradcheck([](auto& in) { return in[0] * 2.0; }, {x}, strict));
}

TEST(Gradcheck, ReportOnAPassingElementwiseOpNamesADiagonalEntry) {
  // exp of [4]: the Jacobian is diagonal. The reported entry must be one where the derivative
  // is nonzero (a diagonal one), not an off-diagonal 0 = 0.
  auto x = D::from({0.1, -0.7, 1.3, 0.4}).requires_grad_();
  auto report = gradcheck([](auto& in) { return in[0].exp(); }, {x});
  ASSERT_TRUE(report) << report.summary();
  const auto& r = report.inputs[0];
  EXPECT_EQ(r.worst_element, r.worst_output) << report.summary();
  EXPECT_NE(r.analytic, 0.0);
  EXPECT_NEAR(r.analytic, std::exp(x.value()(r.worst_element)), 1e-12);
  EXPECT_NEAR(r.numeric, r.analytic, 1e-6);

  // A failing entry is still the one reported.
  auto wrong = [](const D& a) {
    return record<double>("wrong_exp", Array<double>(xt::exp(a.value())), {a},
                          [](const D& grad, Grads<double>& g) {
                            g.to(0, grad * 2.0);  // exp: should be grad * result
                          });
  };
  auto bad = gradcheck([&](auto& in) { return wrong(in[0]); }, {x});
  EXPECT_FALSE(bad);
  const auto& b = bad.inputs[0];
  EXPECT_EQ(b.worst_element, b.worst_output);
  EXPECT_EQ(b.analytic, 2.0);
}

TEST(DataCsv, BinaryInputIsNamed) {
  const std::string dir = ::testing::TempDir();
  const std::string nul_path = dir + "/xgrad_binary_nul.csv";
  {
    std::ofstream out(nul_path, std::ios::binary);
    const char bytes[] = {'\x1f', '\x8b', '\x08', '\0', 'a', '\n', '\x01', '\0', ',', 'b', '\n'};
    out.write(bytes, sizeof bytes);
  }
  expect_error<IoError>([&] { data::read_csv<float>(nul_path); },
                        {"xgrad::read_csv", nul_path, "NUL byte at byte 3", "binary file"});

  // No NUL, but not text: the parse error says the file looks binary.
  const std::string bin_path = dir + "/xgrad_binary_utf8.csv";
  {
    std::ofstream out(bin_path, std::ios::binary);
    out << "a,b\n1,2\n\xff\xfe\x80,\x90\x91,3\n";
  }
  expect_error<IoError>([&] { data::read_csv<float>(bin_path); },
                        {"line 3", "3 columns", "looks binary", "byte 8"});
  // A text file with a Latin-1 header still reads, and a genuine mistake gets no binary hint.
  const std::string text_path = dir + "/xgrad_latin1.csv";
  {
    std::ofstream out(text_path, std::ios::binary);
    out << "caf\xe9,b\n1,2\n";
  }
  EXPECT_EQ(data::read_csv<float>(text_path).values.shape(), (Shape{1, 2}));
  {
    std::ofstream out(text_path, std::ios::binary | std::ios::app);
    out << "3,x\n";
  }
  try {
    data::read_csv<float>(text_path);
    ADD_FAILURE() << "expected an IoError";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("is not a number"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("binary"), std::string::npos) << e.what();
  }
}

}  // namespace
