// Modules: parameter registration and names, layer arithmetic, initialisers, modes, dropout,
// and whole-model gradients against central differences.

#include <cmath>

#include <xgrad/nn/nn.hpp>

#include "test_util.hpp"

namespace xgrad {
namespace {

using D = Tensor<double>;
using test::expect_error;

TEST(Nn, LinearComputesXWtPlusB) {
  Generator gen(1);
  nn::Linear<double> fc(3, 2, true, gen);
  auto x = D::from({{1.0, 2.0, 3.0}, {-1.0, 0.5, 0.0}});
  auto y = fc(x).value();
  const auto& w = fc.weight().value();
  const auto& b = fc.bias().value();
  for (std::size_t i = 0; i < 2; ++i)
    for (std::size_t j = 0; j < 2; ++j) {
      double s = b(j);
      for (std::size_t k = 0; k < 3; ++k) s += x.value()(i, k) * w(j, k);
      EXPECT_NEAR(y(i, j), s, 1e-12);
    }
  const double bound = 1 / std::sqrt(3.0);
  EXPECT_LE(xt::amax(xt::abs(w))(), bound);
  EXPECT_LE(xt::amax(xt::abs(b))(), bound);
  EXPECT_EQ(fc.describe(), "Linear(in_features=3, out_features=2, bias=true)");
  nn::Linear<double> no_bias(3, 2, false, gen);
  EXPECT_FALSE(no_bias.bias().defined());
  EXPECT_EQ(no_bias.num_parameters(), 6u);
  expect_error<ShapeError>([&] { fc(D::ones({2, 4})); }, {"xgrad::linear", "[2,4]", "[2,3]"});
  expect_error<ValueError>([&] { nn::Linear<double>(0, 2); }, {"xgrad::nn::Linear"});
}

TEST(Nn, MlpNamesCountsAndSummary) {
  Generator gen(0);
  nn::MLP<float> mlp({784, 256, 128, 10}, nn::Act::ReLU, nn::Act::Identity, gen);
  std::vector<std::string> names;
  for (const auto& [name, p] : mlp.named_parameters()) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias", "4.weight",
                                             "4.bias"}));
  EXPECT_EQ(mlp.num_parameters(), 784u * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10);
  EXPECT_EQ(mlp.linears().size(), 3u);
  const std::string s = mlp.summary();
  EXPECT_NE(s.find("MLP(784-256-128-10)"), std::string::npos) << s;
  EXPECT_NE(s.find("(1): ReLU()"), std::string::npos) << s;
  EXPECT_NE(s.find("Trainable parameters: 235,146"), std::string::npos) << s;
  // SEEDS.md section 4: (8 * 4096 + 8) + (8 + 1) = 32,785 parameters.
  nn::MLP<float> cat({4096, 8, 1}, nn::Act::ReLU, nn::Act::Sigmoid, gen);
  EXPECT_EQ(cat.num_parameters(), 32785u);
  for (const auto& p : mlp.parameters()) EXPECT_TRUE(p.requires_grad());
  expect_error<ValueError>([] { nn::MLP<float>({3}); }, {"xgrad::nn::MLP"});
}

TEST(Nn, SameSeedSameWeights) {
  Generator a(42), b(42);
  nn::MLP<double> m1({3, 4, 2}, nn::Act::Tanh, nn::Act::Identity, a);
  nn::MLP<double> m2({3, 4, 2}, nn::Act::Tanh, nn::Act::Identity, b);
  auto p1 = m1.parameters();
  auto p2 = m2.parameters();
  for (std::size_t i = 0; i < p1.size(); ++i) EXPECT_EQ(p1[i].value(), p2[i].value());
}

TEST(Nn, MlpGradientsMatchCentralDifferences) {
  Generator gen(3);
  nn::MLP<double> model({3, 4, 2}, nn::Act::Tanh, nn::Act::Sigmoid, gen);
  auto x = test::uniform({5, 3}, 4);
  auto y = test::uniform({5, 2}, 5, 0, 1);
  auto loss = [&] { return mse(model(x), y); };
  model.zero_grad();
  loss().backward();
  const double eps = 1e-6;
  for (auto& [name, p] : model.named_parameters()) {
    for (std::size_t k = 0; k < p.numel(); ++k) {
      auto& v = p.mutable_value();
      const double saved = v.flat(k);
      v.flat(k) = saved + eps;
      const double plus = loss().item();
      v.flat(k) = saved - eps;
      const double minus = loss().item();
      v.flat(k) = saved;
      const double numeric = (plus - minus) / (2 * eps);
      EXPECT_NEAR(p.grad().value().flat(k), numeric, 1e-5 + 1e-3 * std::abs(numeric))
          << name << "[" << k << "]";
    }
  }
}

TEST(Nn, ZeroGradAndModes) {
  nn::Sequential<double> seq{std::make_shared<nn::Linear<double>>(2, 2), nn::ReLU<double>(),
                             std::make_shared<nn::Dropout<double>>(0.5, 1)};
  seq(D::ones({1, 2})).sum().backward();
  seq.zero_grad(/*set_to_none=*/false);
  for (const auto& p : seq.parameters()) EXPECT_EQ(xt::amax(xt::abs(p.grad().value()))(), 0.0);
  seq.zero_grad();  // PyTorch's default: the buffers go
  for (const auto& p : seq.parameters()) EXPECT_FALSE(p.has_grad());
  EXPECT_TRUE(seq[2].is_training());
  seq.eval();
  EXPECT_FALSE(seq[2].is_training());
  seq.train();
  EXPECT_TRUE(seq[0].is_training());
  expect_error<ValueError>([&] { seq.push_back(nullptr); }, {"xgrad::nn::Sequential"});
}

TEST(Nn, DropoutScalesSurvivorsAndIsIdentityInEval) {
  nn::Dropout<double> drop(0.25, 7);
  auto x = D::ones({100, 100}).requires_grad_();
  auto y = drop(x);
  const auto& v = y.value();
  const double kept = static_cast<double>(xt::sum(xt::not_equal(v, 0.0))());
  EXPECT_NEAR(kept / 10000, 0.75, 0.02);
  EXPECT_TRUE(xt::all(xt::equal(v, 0.0) || xt::isclose(v, 1 / 0.75)));
  y.sum().backward();
  EXPECT_EQ(x.grad().value(), v);  // gradient is the mask itself
  drop.eval();
  EXPECT_EQ(&drop(x).value(), &x.value());
  expect_error<ValueError>([] { nn::Dropout<double>(1.0); }, {"xgrad::nn::Dropout", "[0, 1)"});
  // Any shape; the functional form with its own generator repeats its mask.
  Generator g1(9), g2(9);
  const auto images = D::ones({2, 3, 4, 5});
  const auto a = dropout(images, 0.5, true, g1);
  EXPECT_EQ(a.shape(), images.shape());
  EXPECT_EQ(a.value(), dropout(images, 0.5, true, g2).value());
  EXPECT_EQ(&dropout(images, 0.5, false).value(), &images.value());
  expect_error<ValueError>([&] { dropout(images, -0.1); }, {"xgrad::dropout", "[2,3,4,5]"});
}

TEST(Nn, Initialisers) {
  Generator gen(11);
  D w(Array<double>::from_shape({200, 100}));
  nn::init::xavier_uniform_(w, 1.0, gen);
  const double bound = std::sqrt(6.0 / 300);
  EXPECT_LE(xt::amax(xt::abs(w.value()))(), bound);
  EXPECT_GT(xt::amax(xt::abs(w.value()))(), 0.95 * bound);
  nn::init::kaiming_normal_(w, 0.0, gen);
  EXPECT_NEAR(xt::stddev(w.value())(), std::sqrt(2.0 / 100), 0.005);
  nn::init::xavier_normal_(w, 1.0, gen);
  EXPECT_NEAR(xt::stddev(w.value())(), std::sqrt(2.0 / 300), 0.003);
  nn::init::kaiming_uniform_(w, 0.0, gen);
  EXPECT_LE(xt::amax(xt::abs(w.value()))(), std::sqrt(6.0 / 100));
  nn::init::normal_(w, 2.0, 0.5, gen);
  EXPECT_NEAR(xt::mean(w.value())(), 2.0, 0.01);
  nn::init::constant_(w, 3.0);
  EXPECT_EQ(w.value()(5, 5), 3.0);
  nn::init::zeros_(w);
  EXPECT_EQ(xt::sum(w.value())(), 0.0);
  EXPECT_EQ(nn::init::fans({8, 4, 3, 3}), (std::pair<std::size_t, std::size_t>{36, 72}));
  expect_error<ValueError>([&] { nn::init::uniform_(w, 1.0, 0.0, gen); }, {"uniform_"});
  expect_error<ShapeError>([] { nn::init::fans({}); }, {"0-d"});
}

TEST(Nn, L2PenaltyLeavesBiasesOut) {
  nn::Linear<double> fc(2, 1);
  D w = fc.weight();  // a handle: writes reach the layer's parameter
  D b = fc.bias();
  nn::init::constant_(w, 2.0);
  nn::init::constant_(b, 5.0);
  EXPECT_EQ(nn::l2_penalty(fc).item(), 8.0);
  EXPECT_EQ(nn::l2_penalty(fc, true).item(), 33.0);
}

}  // namespace
}  // namespace xgrad
