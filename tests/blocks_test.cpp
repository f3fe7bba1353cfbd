// The layers of image and sequence models: PyTorch's names, layouts and defaults, buffers saved
// and restored, and their behaviour as modules (training and evaluation, masks, gradients).

#include <cmath>
#include <limits>

#include "test_util.hpp"

namespace xgrad {
namespace {

using D = Tensor<double>;
using test::uniform;

std::vector<std::string> names_of(const std::vector<std::pair<std::string, D>>& named) {
  std::vector<std::string> out;
  for (const auto& [n, _] : named) out.push_back(n);
  return out;
}

TEST(Conv2dLayer, PyTorchLayoutAndDefaults) {
  Generator gen(1);
  nn::Conv2d<double> conv(3, 8, {3, 5}, {.padding = {1, 2}}, gen);
  const auto named = conv.named_parameters();
  EXPECT_EQ(names_of(named), (std::vector<std::string>{"weight", "bias"}));
  EXPECT_EQ(conv.weight().shape(), (Shape{8, 3, 3, 5}));
  const double bound = 1.0 / std::sqrt(3.0 * 15.0);
  EXPECT_LE(xt::amax(xt::abs(conv.weight().value()))(), bound);
  EXPECT_GT(xt::amax(xt::abs(conv.weight().value()))(), 0.8 * bound);
  EXPECT_EQ(conv(D::ones({2, 3, 6, 7})).shape(), (Shape{2, 8, 6, 7}));
  EXPECT_EQ(conv.describe(), "Conv2d(3, 8, kernel_size=(3, 5), stride=(1, 1), padding=(1, 2))");
  nn::Conv2d<double> grouped(4, 6, 1, {.groups = 2, .bias = false});
  EXPECT_EQ(grouped.num_parameters(), 6u * 2u);
  EXPECT_THROW(nn::Conv2d<double>(3, 6, 3, {.groups = 2}), ValueError);
}

TEST(PoolLayers, DefaultStrideIsTheKernel) {
  nn::MaxPool2d<double> mp(2);
  nn::AvgPool2d<double> ap(2);
  EXPECT_EQ(mp(D::ones({1, 2, 6, 4})).shape(), (Shape{1, 2, 3, 2}));
  EXPECT_EQ(ap(D::ones({1, 2, 6, 4})).shape(), (Shape{1, 2, 3, 2}));
  EXPECT_EQ(mp.describe(),
            "MaxPool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0), "
            "dilation=(1, 1))");
}

TEST(BatchNormLayer, BuffersFollowTrainingAndReachCheckpoints) {
  nn::BatchNorm2d<double> bn(3);
  EXPECT_EQ(names_of(bn.named_parameters()), (std::vector<std::string>{"weight", "bias"}));
  EXPECT_EQ(names_of(bn.named_buffers()),
            (std::vector<std::string>{"running_mean", "running_var", "num_batches_tracked"}));
  EXPECT_EQ(names_of(bn.state_dict()),
            (std::vector<std::string>{"weight", "bias", "running_mean", "running_var",
                                      "num_batches_tracked"}));
  for (const auto& b : bn.buffers()) EXPECT_FALSE(b.requires_grad());
  const D x = uniform({4, 3, 2, 2}, 3, 1, 3);
  bn(x);
  bn(x);
  EXPECT_EQ(bn.named_buffers()[2].second.item(), 2.0);
  const Array<double> mean_after_two = bn.running_mean().value();
  EXPECT_GT(xt::amin(mean_after_two)(), 0.0);
  // Evaluation leaves the statistics alone and normalises by them.
  bn.eval();
  const D y = bn(x);
  EXPECT_TRUE(xt::allclose(bn.running_mean().value(), mean_after_two));
  EXPECT_NEAR(
      y.value()(1, 2, 0, 1),
      (x.value()(1, 2, 0, 1) - mean_after_two(2)) / std::sqrt(bn.running_var().value()(2) + 1e-5),
      1e-12);
  EXPECT_THROW(bn(D::ones({4, 3})), ShapeError);
  nn::BatchNorm1d<double> bn1(3);
  EXPECT_EQ(bn1(uniform({5, 3}, 4)).shape(), (Shape{5, 3}));
  EXPECT_EQ(bn1(uniform({5, 3, 7}, 5)).shape(), (Shape{5, 3, 7}));

  // save/load carry the running statistics.
  test::ScratchDir dir("xgrad_bn_");
  io::save(bn, dir.path("bn.safetensors"));
  nn::BatchNorm2d<double> fresh(3);
  io::load(fresh, dir.path("bn.safetensors"));
  EXPECT_TRUE(xt::allclose(fresh.running_mean().value(), mean_after_two));
  EXPECT_EQ(fresh.named_buffers()[2].second.item(), 2.0);
}

TEST(LayerNormAndEmbedding, NamesAndShapes) {
  nn::LayerNorm<double> ln({4});
  EXPECT_EQ(names_of(ln.named_parameters()), (std::vector<std::string>{"weight", "bias"}));
  EXPECT_EQ(ln(uniform({2, 3, 4}, 6)).shape(), (Shape{2, 3, 4}));
  Generator gen(2);
  nn::Embedding<double> emb(10, 4, gen);
  EXPECT_EQ(emb.weight().shape(), (Shape{10, 4}));
  EXPECT_EQ(emb(D::from({{1.0, 9.0, 0.0}})).shape(), (Shape{1, 3, 4}));
  EXPECT_THROW(emb(D::from({10.0})), ValueError);
}

TEST(MultiheadAttentionLayer, NamesMatchPyTorch) {
  nn::MultiheadAttention<double> mha(8, 2);
  EXPECT_EQ(names_of(mha.named_parameters()),
            (std::vector<std::string>{"in_proj_weight", "in_proj_bias", "out_proj.weight",
                                      "out_proj.bias"}));
  EXPECT_EQ(mha.named_parameters()[0].second.shape(), (Shape{24, 8}));
  EXPECT_TRUE(xt::all(xt::equal(mha.named_parameters()[1].second.value(), 0.0)));
  EXPECT_THROW(nn::MultiheadAttention<double>(8, 3), ValueError);
}

TEST(MultiheadAttentionLayer, CausalOutputIgnoresTheFuture) {
  Generator gen(3);
  nn::MultiheadAttention<double> mha(8, 2, {.causal = true}, gen);
  D x = uniform({2, 5, 8}, 7);
  const D y = mha(x);
  ASSERT_EQ(y.shape(), (Shape{2, 5, 8}));
  Array<double> changed = x.value();
  xt::view(changed, xt::all(), 3, xt::all()) += 1.0;
  const D y2 = mha(D(changed));
  const auto past = xt::view(y.value(), xt::all(), xt::range(0, 3), xt::all());
  const auto past2 = xt::view(y2.value(), xt::all(), xt::range(0, 3), xt::all());
  EXPECT_TRUE(xt::allclose(past, past2, 1e-13, 1e-13));
  EXPECT_FALSE(xt::allclose(xt::view(y.value(), xt::all(), 3), xt::view(y2.value(), xt::all(), 3)));
  // The explicit path (separate query, key and value) gives the same result.
  const D xk(Array<double>(x.value()));
  const D xv(Array<double>(x.value()));
  EXPECT_TRUE(xt::allclose(mha.forward(x, xk, xv, D(), true).value(), y.value(), 1e-12, 1e-12));
  // Unbatched input.
  EXPECT_EQ(mha(uniform({4, 8}, 8)).shape(), (Shape{4, 8}));
  EXPECT_THROW(mha.forward(x, uniform({2, 4, 8}, 9), uniform({2, 4, 8}, 9), D(), true), ShapeError);
}

TEST(MultiheadAttentionLayer, GradientsMatchCentralDifferences) {
  // Attention written with the ops on the inputs as leaves.
  const auto attention = [](std::vector<D>& in) {
    const D& x = in[0];
    const D& w = in[1];
    const D& b = in[2];
    const D qkv = linear(x, w, b);
    auto heads = [](const D& t) { return permute(reshape(t, {2, 3, 2, 2}), {0, 2, 1, 3}); };
    const D q = heads(slice(qkv, 2, 0, 4)) * (1.0 / std::sqrt(2.0));
    const D k = heads(slice(qkv, 2, 4, 8));
    const D v = heads(slice(qkv, 2, 8, 12));
    const D s = masked_fill(matmul(q, transpose(k, -2, -1)), triu(D::ones({3, 3}), 1),
                            -std::numeric_limits<double>::infinity());
    return reshape(permute(matmul(softmax(s, -1), v), {0, 2, 1, 3}), {2, 3, 4});
  };
  std::vector<D> leaves{uniform({2, 3, 4}, 11), uniform({12, 4}, 12), uniform({12}, 13)};
  auto report = testing::gradcheck(attention, leaves);
  EXPECT_TRUE(report.ok) << report.summary();
  auto second = testing::gradgradcheck(attention, leaves);
  EXPECT_TRUE(second.ok) << second.summary();
  // The module computes the same function (its out_proj set to the identity).
  nn::MultiheadAttention<double> m(4, 2, {.causal = true});
  auto ps = m.parameters();
  ps[0].mutable_value() = leaves[1].value();
  ps[1].mutable_value() = leaves[2].value();
  ps[2].mutable_value() = xt::eye<double>(4);
  ps[3].mutable_value() = xt::zeros<double>({4});
  std::vector<D> again = leaves;
  EXPECT_TRUE(xt::allclose(m(leaves[0]).value(), attention(again).value(), 1e-12, 1e-12));
}

TEST(MultiheadAttentionLayer, MaskedAttentionMatchesTheOps) {
  // The attention op against the same attention written with ops, with a mask on key positions
  // and the causal mask together, values and gradients.
  const D q = uniform({2, 4, 6}, 31), k = uniform({2, 4, 6}, 32), v = uniform({2, 4, 6}, 33);
  const D mask = D::from({{0.0, 0.0, 1.0, 0.0}});  // key 2 hidden from every query
  const auto by_ops = [&](const D& qq, const D& kk, const D& vv) {
    auto heads = [](const D& t) { return permute(reshape(t, {2, 4, 3, 2}), {0, 2, 1, 3}); };
    D s = matmul(heads(qq) * (1.0 / std::sqrt(2.0)), transpose(heads(kk), -2, -1));
    s = masked_fill(s, mask, -std::numeric_limits<double>::infinity());
    s = masked_fill(s, triu(D::ones({4, 4}), 1), -std::numeric_limits<double>::infinity());
    return reshape(permute(matmul(softmax(s, -1), heads(vv)), {0, 2, 1, 3}), {2, 4, 6});
  };
  std::vector<D> a{D(Array<double>(q.value())).requires_grad_(),
                   D(Array<double>(k.value())).requires_grad_(),
                   D(Array<double>(v.value())).requires_grad_()};
  std::vector<D> b{D(Array<double>(q.value())).requires_grad_(),
                   D(Array<double>(k.value())).requires_grad_(),
                   D(Array<double>(v.value())).requires_grad_()};
  const D fused = multi_head_attention(a[0], a[1], a[2], 3, mask, true);
  const D reference = by_ops(b[0], b[1], b[2]);
  EXPECT_TRUE(xt::allclose(fused.value(), reference.value(), 1e-12, 1e-12));
  const D w = uniform({2, 4, 6}, 34);
  (fused * w).sum().backward();
  (reference * w).sum().backward();
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(xt::allclose(a[i].grad().value(), b[i].grad().value(), 1e-12, 1e-12)) << i;
  }
  // A query that may attend to nothing gives NaN, as softmax over -inf does.
  const D first = D::from({{1.0, 0.0, 0.0, 0.0}});
  const D y = multi_head_attention(q, k, v, 3, first, true);
  EXPECT_TRUE(xt::all(xt::isnan(xt::view(y.value(), xt::all(), 0, xt::all()))));
  EXPECT_FALSE(xt::any(xt::isnan(xt::view(y.value(), xt::all(), xt::range(1, 4), xt::all()))));
  EXPECT_THROW(multi_head_attention(q, k, v, 4), ShapeError);
  EXPECT_THROW(multi_head_attention(q, k, v, 3, D::ones({3, 4})), ShapeError);
  EXPECT_THROW(multi_head_self_attention(uniform({2, 4, 5}, 35), 1), ShapeError);
}

TEST(MultiheadAttentionLayer, LongSequencesMatchTheOps) {
  // Heads of 72 x 72 x 64: the blocks the op hands to the BLAS.
  const D qkv = uniform({1, 72, 192}, 36).requires_grad_();
  const D same = D(Array<double>(qkv.value())).requires_grad_();
  const D fused = multi_head_self_attention(qkv, 1, D(), true);
  const D q = slice(same, 2, 0, 64) * (1.0 / 8.0), k = slice(same, 2, 64, 128),
          v = slice(same, 2, 128, 192);
  const D s = masked_fill(matmul(q, transpose(k, -2, -1)), triu(D::ones({72, 72}), 1),
                          -std::numeric_limits<double>::infinity());
  const D reference = matmul(softmax(s, -1), v);
  EXPECT_TRUE(xt::allclose(fused.value(), reference.value(), 1e-12, 1e-12));
  const D w = uniform({1, 72, 64}, 37);
  (fused * w).sum().backward();
  (reference * w).sum().backward();
  EXPECT_TRUE(xt::allclose(qkv.grad().value(), same.grad().value(), 1e-12, 1e-12));
}

TEST(SmallCnn, TrainingLowersTheLoss) {
  Generator gen(5);
  nn::Sequential<double> net;
  net.push_back(nn::Conv2d<double>(1, 4, 3, {.padding = 1}, gen));
  net.push_back(nn::BatchNorm2d<double>(4));
  net.push_back(nn::ReLU<double>());
  net.push_back(nn::MaxPool2d<double>(2));
  net.push_back(nn::Flatten<double>(1));
  net.push_back(nn::Linear<double>(4 * 3 * 3, 2, true, gen));
  const D x = uniform({8, 1, 6, 6}, 14);
  const std::vector<std::int64_t> y{0, 1, 0, 1, 1, 0, 1, 0};
  optim::SGD<double> opt(net.parameters(), {.lr = 0.1});
  double first = 0, last = 0;
  for (int step = 0; step < 30; ++step) {
    opt.zero_grad();
    D loss = cross_entropy(net(x), y);
    loss.backward();
    opt.step();
    if (step == 0) first = loss.item();
    last = loss.item();
  }
  EXPECT_LT(last, 0.5 * first);
  EXPECT_EQ(names_of(net.state_dict())[2], "1.weight");
  EXPECT_EQ(names_of(net.named_buffers())[0], "1.running_mean");
}

}  // namespace
}  // namespace xgrad
