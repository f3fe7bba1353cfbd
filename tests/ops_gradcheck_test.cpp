// ONE table of operation cases. Every row is gradchecked in double precision against central
// differences (eps 1e-6, atol 1e-5, rtol 1e-3), over the full Jacobian of every input, and
// gradgradchecked: its gradient, recorded with create_graph, is checked the same way (second
// derivatives, and the first derivative's dependence on the incoming gradient).
// Rows cover broadcast shapes (row, column, scalar, size-1 dims), empty dims where meaningful,
// and inputs moved off kinks.

#include <functional>
#include <limits>

#include "test_util.hpp"

namespace xgrad {
namespace {

using D = Tensor<double>;
using Fn = std::function<D(std::vector<D>&)>;
using test::off_zero;
using test::uniform;

struct OpCase {
  std::string name;
  std::vector<D> inputs;
  Fn fn;
};

std::ostream& operator<<(std::ostream& os, const OpCase& c) {
  return os << c.name;
}

D positive(const Shape& s, std::uint64_t seed) {
  return uniform(s, seed, 0.3, 2.0);
}
D probs(const Shape& s, std::uint64_t seed) {
  return uniform(s, seed, 0.05, 0.95);
}
// Marks the inputs to check when a row has inputs that must not be perturbed (a where mask).
D req(D t) {
  return t.requires_grad_();
}

std::vector<OpCase> cases() {
  std::vector<OpCase> c;
  auto add_case = [&](std::string name, std::vector<D> in, Fn fn) {
    c.push_back({std::move(name), std::move(in), std::move(fn)});
  };

  // ---- arithmetic, with every broadcast pattern ----
  const std::vector<std::pair<std::string, std::pair<Shape, Shape>>> shapes = {
      {"same", {{3, 4}, {3, 4}}},
      {"row", {{3, 4}, {4}}},
      {"col", {{3, 4}, {3, 1}}},
      {"0d", {{3, 4}, {}}},
      {"outer", {{3, 1}, {1, 4}}},
      {"lead", {{2, 3, 4}, {3, 1}}},
      {"size1", {{1, 1}, {2, 3}}},
      {"empty", {{0, 4}, {4}}},
      // Same shapes take flat vector loops: a length that leaves a partial batch, and nothing.
      {"same_tail", {{3, 5}, {3, 5}}},
      {"same_empty", {{0, 4}, {0, 4}}},
  };
  for (const auto& [tag, sh] : shapes) {
    const auto& [sa, sb] = sh;
    add_case("add_" + tag, {uniform(sa, 1), uniform(sb, 2)},
             [](auto& in) { return in[0] + in[1]; });
    add_case("sub_" + tag, {uniform(sa, 3), uniform(sb, 4)},
             [](auto& in) { return in[0] - in[1]; });
    add_case("mul_" + tag, {uniform(sa, 5), uniform(sb, 6)},
             [](auto& in) { return in[0] * in[1]; });
    add_case("div_" + tag, {uniform(sa, 7), off_zero(sb, 8, 0.5)},
             [](auto& in) { return in[0] / in[1]; });
    add_case("maximum_" + tag, {uniform(sa, 9), uniform(sb, 10)},
             [](auto& in) { return maximum(in[0], in[1]); });
    add_case("minimum_" + tag, {uniform(sa, 11), uniform(sb, 12)},
             [](auto& in) { return minimum(in[0], in[1]); });
    add_case("pow_tensor_" + tag, {positive(sa, 13), uniform(sb, 14, -2, 2)},
             [](auto& in) { return pow(in[0], in[1]); });
  }
  add_case("add_scalar", {uniform({3, 2}, 20)}, [](auto& in) { return in[0] + 2.5; });
  add_case("scalar_add", {uniform({3, 2}, 20)}, [](auto& in) { return 2.5 + in[0]; });
  add_case("sub_scalar", {uniform({3, 2}, 21)}, [](auto& in) { return in[0] - 1.5; });
  add_case("rsub", {uniform({3, 2}, 22)}, [](auto& in) { return 1.5 - in[0]; });
  add_case("mul_scalar", {uniform({3, 2}, 23)}, [](auto& in) { return in[0] * -3.0; });
  add_case("scalar_mul", {uniform({3, 2}, 23)}, [](auto& in) { return -3.0 * in[0]; });
  add_case("div_scalar", {uniform({3, 2}, 24)}, [](auto& in) { return in[0] / 4.0; });
  add_case("rdiv", {off_zero({3, 2}, 25, 0.5)}, [](auto& in) { return 2.0 / in[0]; });
  add_case("neg", {uniform({3, 2}, 26)}, [](auto& in) { return -in[0]; });
  add_case("neg_0d", {uniform({}, 26)}, [](auto& in) { return in[0].neg(); });
  add_case("pow_2", {uniform({3, 2}, 27)}, [](auto& in) { return pow(in[0], 2.0); });
  add_case("pow_3", {uniform({3, 2}, 28)}, [](auto& in) { return in[0].pow(3.0); });
  add_case("pow_half", {positive({3, 2}, 29)}, [](auto& in) { return pow(in[0], 0.5); });
  add_case("pow_minus1", {off_zero({3, 2}, 30, 0.5)}, [](auto& in) { return pow(in[0], -1.0); });
  add_case("pow_0", {uniform({3, 2}, 31)}, [](auto& in) { return pow(in[0], 0.0); });
  add_case("exp", {uniform({3, 4}, 32, -3, 3)}, [](auto& in) { return exp(in[0]); });
  add_case("exp_tail", {uniform({7}, 32, -3, 3)}, [](auto& in) { return in[0].exp(); });
  add_case("log_tail", {positive({2, 3, 3}, 33)}, [](auto& in) { return in[0].log(); });
  add_case("unary_empty", {uniform({0, 3}, 33)}, [](auto& in) {
    return (exp(in[0]) + log(in[0]) + sigmoid(in[0]) + tanh(in[0]) + relu(in[0]) + in[0] * 2.0) /
           3.0;
  });
  add_case("log", {positive({3, 4}, 33)}, [](auto& in) { return log(in[0]); });
  add_case("sin", {uniform({3, 4}, 152, -4, 4)}, [](auto& in) { return sin(in[0]); });
  add_case("cos_tail", {uniform({2, 5}, 153, -4, 4)}, [](auto& in) { return in[0].cos(); });
  add_case("sin_cos_empty", {uniform({0, 2}, 154)},
           [](auto& in) { return sin(in[0]) + cos(in[0]); });
  add_case("sqrt", {positive({3, 4}, 34)}, [](auto& in) { return sqrt(in[0]); });
  add_case("abs", {off_zero({3, 4}, 35)}, [](auto& in) { return abs(in[0]); });
  add_case("clamp", {D::from({{-1.1, -0.3, 0.1}, {0.7, 1.3, -0.9}})},
           [](auto& in) { return clamp(in[0], -0.5, 0.5); });
  add_case("where_bcast",
           {D::from({{1.0}, {0.0}, {1.0}}), req(uniform({3, 4}, 36)), req(uniform({4}, 37))},
           [](auto& in) { return where(in[0].detach(), in[1], in[2]); });
  add_case("where_scalar_branch",
           {D::from({1.0, 0.0, 0.0}), req(uniform({3}, 38)), req(uniform({}, 39))},
           [](auto& in) { return where(in[0].detach(), in[1], in[2]); });

  // ---- activations ----
  add_case("sigmoid", {uniform({3, 4}, 40, -6, 6)}, [](auto& in) { return sigmoid(in[0]); });
  add_case("sigmoid_large", {D::from({-30.0, -12.0, 0.0, 12.0, 30.0})},
           [](auto& in) { return in[0].sigmoid(); });
  add_case("sigmoid_tail", {uniform({5, 3}, 40, -6, 6)}, [](auto& in) { return sigmoid(in[0]); });
  add_case("tanh", {uniform({3, 4}, 41, -3, 3)}, [](auto& in) { return tanh(in[0]); });
  add_case("tanh_tail", {uniform({9}, 41, -3, 3)}, [](auto& in) { return tanh(in[0]); });
  add_case("relu_tail", {off_zero({5, 3}, 42)}, [](auto& in) { return relu(in[0]); });
  add_case("relu", {off_zero({3, 4}, 42)}, [](auto& in) { return relu(in[0]); });
  add_case("leaky_relu", {off_zero({3, 4}, 43)}, [](auto& in) { return leaky_relu(in[0], 0.1); });
  add_case("softmax_dim1", {uniform({3, 4}, 44, -2, 2)},
           [](auto& in) { return softmax(in[0], 1); });
  add_case("softmax_dim0", {uniform({3, 4}, 45, -2, 2)},
           [](auto& in) { return softmax(in[0], 0); });
  add_case("softmax_3d_mid", {uniform({2, 3, 2}, 46, -2, 2)},
           [](auto& in) { return in[0].softmax(-2); });
  add_case("softmax_size1", {uniform({3, 1}, 47)}, [](auto& in) { return softmax(in[0], 1); });
  add_case("log_softmax_dim1", {uniform({3, 4}, 48, -2, 2)},
           [](auto& in) { return log_softmax(in[0], 1); });
  add_case("log_softmax_dim0", {uniform({3, 4}, 49, -2, 2)},
           [](auto& in) { return log_softmax(in[0], 0); });
  add_case("log_softmax_large", {D::from({{1000.0, 999.0, -1000.0}, {-1000.0, -999.5, -998.0}})},
           [](auto& in) { return log_softmax(in[0], 1); });
  add_case("erf", {uniform({3, 4}, 155, -2.5, 2.5)}, [](auto& in) { return erf(in[0]); });
  add_case("erf_tail_large", {D::from({-6.0, -1.5, 0.0, 0.4, 2.0, 6.0, 30.0})},
           [](auto& in) { return in[0].erf(); });
  add_case("gelu", {uniform({3, 4}, 156, -4, 4)}, [](auto& in) { return gelu(in[0]); });
  add_case("gelu_tail", {uniform({2, 5}, 157, -3, 3)}, [](auto& in) { return in[0].gelu(); });
  add_case("gelu_large", {D::from({-40.0, -9.0, -0.2, 0.0, 9.0, 40.0})},
           [](auto& in) { return gelu(in[0]); });
  add_case("gelu_0d", {uniform({}, 158)}, [](auto& in) { return gelu(in[0]); });
  add_case("gelu_tanh", {uniform({3, 4}, 159, -4, 4)}, [](auto& in) { return gelu(in[0], true); });
  add_case("gelu_tanh_large", {D::from({-40.0, -9.0, -0.2, 0.0, 9.0, 40.0})},
           [](auto& in) { return in[0].gelu("tanh"); });
  add_case("silu", {uniform({3, 4}, 160, -6, 6)}, [](auto& in) { return silu(in[0]); });
  add_case("silu_tail", {uniform({7}, 161, -6, 6)}, [](auto& in) { return in[0].silu(); });
  add_case("silu_large", {D::from({-800.0, -40.0, -0.5, 0.0, 40.0, 800.0})},
           [](auto& in) { return silu(in[0]); });
  add_case("silu_0d", {uniform({}, 162)}, [](auto& in) { return silu(in[0]); });
  add_case("softplus", {uniform({3, 4}, 163, -5, 5)}, [](auto& in) { return softplus(in[0]); });
  // Both sides of the threshold (beta x = 20 at x = 20), and far below it.
  add_case("softplus_edges", {D::from({-800.0, -50.0, -0.3, 0.0, 19.0, 21.0, 100.0, 1e4})},
           [](auto& in) { return in[0].softplus(); });
  // beta 2, threshold 5: beta x = -6, -1, 0.4, 4, 4.8, 5.2, 8, 60, -60.
  add_case("softplus_beta", {D::from({{-3.0, -0.5, 0.2}, {2.0, 2.4, 2.6}, {4.0, 30.0, -30.0}})},
           [](auto& in) { return softplus(in[0], 2.0, 5.0); });
  add_case("softplus_negative_beta", {D::from({-20.0, -2.0, 0.5, 3.0})},
           [](auto& in) { return softplus(in[0], -1.5, 20.0); });
  add_case("softplus_0d", {uniform({}, 164, -3, 3)}, [](auto& in) { return softplus(in[0]); });
  add_case("activations_new_empty", {uniform({0, 3}, 165)}, [](auto& in) {
    return gelu(in[0]) + gelu(in[0], true) + silu(in[0]) + softplus(in[0]) + erf(in[0]);
  });
  add_case("dropout_4d", {uniform({2, 2, 3, 3}, 52)}, [](auto& in) {
    Generator gen(3);  // the same mask at every evaluation
    return dropout(in[0], 0.4, true, gen);
  });
  add_case("step", {off_zero({3, 4}, 50)}, [](auto& in) { return step(in[0]); });
  add_case("heaviside", {off_zero({3, 4}, 51)}, [](auto& in) { return heaviside(in[0], 0.5); });

  // ---- reductions ----
  add_case("sum_all", {uniform({3, 4}, 60)}, [](auto& in) { return in[0].sum(); });
  add_case("sum_dim0", {uniform({3, 4}, 61)}, [](auto& in) { return in[0].sum(0); });
  add_case("sum_dim1_keep", {uniform({3, 4}, 62)}, [](auto& in) { return in[0].sum(1, true); });
  add_case("sum_dims02", {uniform({2, 3, 4}, 63)}, [](auto& in) { return sum(in[0], {0, 2}); });
  add_case("sum_neg_dim", {uniform({2, 3, 4}, 64)}, [](auto& in) { return in[0].sum(-1); });
  add_case("sum_empty", {uniform({0, 3}, 65)}, [](auto& in) { return in[0].sum(0); });
  add_case("sum_0d", {uniform({}, 66)}, [](auto& in) { return in[0].sum(); });
  // Long enough for the vector sum's four accumulators and its scalar tail.
  add_case("sum_all_long", {uniform({7, 11}, 74)}, [](auto& in) { return in[0].sum(); });
  add_case("sum_leading_dims", {uniform({2, 3, 5}, 75)}, [](auto& in) {
    return sum(in[0], {0, 1});
  });
  add_case("sum_trailing_dims", {uniform({2, 3, 5}, 76)}, [](auto& in) {
    return sum(in[0], {1, 2}, true);
  });
  add_case("sum_size1_kept", {uniform({4, 1, 3}, 77)}, [](auto& in) { return in[0].sum(0); });
  add_case("sum_all_empty", {uniform({2, 0}, 78)}, [](auto& in) { return in[0].sum() * 1.0; });
  add_case("mean_leading", {uniform({5, 3}, 79)}, [](auto& in) { return in[0].mean(0); });
  add_case("mean_all", {uniform({3, 4}, 67)}, [](auto& in) { return in[0].mean(); });
  add_case("mean_dim1", {uniform({3, 4}, 68)}, [](auto& in) { return in[0].mean(1); });
  add_case("mean_dims_keep", {uniform({2, 3, 4}, 69)}, [](auto& in) {
    return mean(in[0], {0, 1}, true);
  });
  add_case("max_all", {uniform({3, 4}, 70)}, [](auto& in) { return in[0].max(); });
  add_case("max_dim1_keep", {uniform({3, 4}, 71)}, [](auto& in) { return in[0].max(1, true); });
  add_case("min_dim0", {uniform({3, 4}, 72)}, [](auto& in) { return in[0].min(0); });
  add_case("min_all", {uniform({2, 2, 3}, 73)}, [](auto& in) { return in[0].min(); });

  add_case("logsumexp_dim1", {uniform({3, 4}, 170, -2, 2)},
           [](auto& in) { return logsumexp(in[0], {1}); });
  add_case("logsumexp_dim0_keep", {uniform({3, 4}, 171, -2, 2)},
           [](auto& in) { return in[0].logsumexp(0, true); });
  add_case("logsumexp_dims02", {uniform({2, 3, 4}, 172, -2, 2)}, [](auto& in) {
    return logsumexp(in[0], {0, 2});
  });
  add_case("logsumexp_neg_dims_keep", {uniform({2, 3, 4}, 173, -2, 2)}, [](auto& in) {
    return in[0].logsumexp({-1, -3}, true);
  });
  add_case("logsumexp_all", {uniform({3, 4}, 174, -2, 2)},
           [](auto& in) { return logsumexp(in[0], {}); });
  add_case("logsumexp_size1", {uniform({3, 1}, 175)},
           [](auto& in) { return logsumexp(in[0], {1}); });
  add_case("logsumexp_0d", {uniform({}, 176)}, [](auto& in) { return logsumexp(in[0], {}); });
  add_case("logsumexp_large",
           {D::from({{1000.0, 999.0, -1000.0}, {-1000.0, -999.5, -998.0}, {0.5, 1000.0, 0.0}})},
           [](auto& in) { return logsumexp(in[0], {1}); });
  // A -inf entry gets gradient 0 and leaves the rest of its row as it would be without it.
  add_case("logsumexp_neg_inf_entries",
           {D::from({{0.5, -std::numeric_limits<double>::infinity(), 1.0},
                     {-std::numeric_limits<double>::infinity(), 2.0, -1.0}})},
           [](auto& in) { return logsumexp(in[0], {-1}); });
  add_case("logsumexp_empty_rows", {uniform({0, 3}, 177)},
           [](auto& in) { return logsumexp(in[0], {1}); });
  add_case("var_all", {uniform({3, 4}, 180)}, [](auto& in) { return var(in[0]); });
  add_case("var_dim1_biased", {uniform({3, 4}, 181)}, [](auto& in) { return in[0].var(1, 0.0); });
  add_case("var_dims02_keep", {uniform({2, 3, 4}, 182)}, [](auto& in) {
    return var(in[0], {0, 2}, 1.0, true);
  });
  add_case("var_neg_dim", {uniform({2, 3, 4}, 183)},
           [](auto& in) { return in[0].var(-2, 1.0, true); });
  add_case("var_size1_biased", {uniform({3, 1}, 184)},
           [](auto& in) { return var(in[0], {1}, 0.0); });
  add_case("var_0d_biased", {uniform({}, 185)}, [](auto& in) { return var(in[0], {}, 0.0); });
  add_case("var_offset_mean", {uniform({2, 5}, 186, 999.0, 1001.0)},
           [](auto& in) { return var(in[0], {1}); });
  add_case("var_correction_half", {uniform({4, 3}, 187)},
           [](auto& in) { return var(in[0], {0}, 0.5); });
  add_case("std_all", {uniform({3, 4}, 190)}, [](auto& in) { return in[0].std(); });
  add_case("std_dim1_biased", {uniform({3, 4}, 191)},
           [](auto& in) { return std(in[0], {1}, 0.0); });
  add_case("std_dims01_keep", {uniform({2, 3, 4}, 192)}, [](auto& in) {
    return in[0].std({0, 1}, 1.0, true);
  });
  add_case("std_neg_dim", {uniform({2, 3, 4}, 193)}, [](auto& in) { return in[0].std(-1); });
  // One element per result: std 0, where the gradient is taken as 0.
  add_case("std_size1_biased", {uniform({3, 1, 2}, 194)},
           [](auto& in) { return std(in[0], {1}, 0.0); });

  // ---- linear algebra ----
  add_case("matmul_2d", {uniform({3, 4}, 80), uniform({4, 2}, 81)},
           [](auto& in) { return in[0].matmul(in[1]); });
  add_case("matmul_batched", {uniform({2, 3, 4}, 82), uniform({2, 4, 5}, 83)},
           [](auto& in) { return matmul(in[0], in[1]); });
  add_case("matmul_3d_2d", {uniform({2, 3, 4}, 84), uniform({4, 2}, 85)},
           [](auto& in) { return matmul(in[0], in[1]); });
  add_case("matmul_2d_3d", {uniform({3, 4}, 86), uniform({2, 4, 2}, 87)},
           [](auto& in) { return matmul(in[0], in[1]); });
  add_case("matmul_vec_mat", {uniform({4}, 88), uniform({4, 3}, 89)},
           [](auto& in) { return matmul(in[0], in[1]); });
  add_case("matmul_mat_vec", {uniform({3, 4}, 90), uniform({4}, 91)},
           [](auto& in) { return matmul(in[0], in[1]); });
  add_case("matmul_vec_vec", {uniform({4}, 92), uniform({4}, 93)},
           [](auto& in) { return matmul(in[0], in[1]); });
  add_case("matmul_k0", {uniform({3, 0}, 94), uniform({0, 2}, 95)},
           [](auto& in) { return matmul(in[0], in[1]) + in[0].sum(); });
  add_case("matmul_size1", {uniform({1, 4}, 96), uniform({4, 1}, 97)},
           [](auto& in) { return matmul(in[0], in[1]); });
  add_case("matmul_transposed", {uniform({3, 4}, 98), uniform({2, 4}, 99)},
           [](auto& in) { return in[0].matmul(in[1].T()); });
  add_case("linear", {uniform({5, 4}, 101), uniform({3, 4}, 102), uniform({3}, 103)},
           [](auto& in) { return linear(in[0], in[1], in[2]); });
  add_case("linear_no_bias", {uniform({5, 4}, 104), uniform({3, 4}, 105)},
           [](auto& in) { return linear(in[0], in[1]); });
  add_case("linear_3d_input", {uniform({2, 3, 4}, 106), uniform({2, 4}, 107), uniform({2}, 108)},
           [](auto& in) { return linear(in[0], in[1], in[2]); });
  add_case("linear_1d_input", {uniform({4}, 109), uniform({3, 4}, 110), uniform({3}, 111)},
           [](auto& in) { return linear(in[0], in[1], in[2]); });
  add_case("linear_empty_batch", {uniform({0, 4}, 112), uniform({3, 4}, 113), uniform({3}, 114)},
           [](auto& in) { return linear(in[0], in[1], in[2]); });
  add_case("transpose_3d", {uniform({2, 3, 4}, 100)},
           [](auto& in) { return transpose(in[0], 0, 2); });
  add_case("matmul_4d", {uniform({2, 2, 3, 4}, 160), uniform({2, 2, 4, 3}, 161)},
           [](auto& in) { return matmul(in[0], in[1]); });
  add_case("matmul_batch_bcast", {uniform({2, 3, 4}, 162), uniform({1, 4, 5}, 163)},
           [](auto& in) { return matmul(in[0], in[1]); });
  add_case("matmul_4d_3d_bcast", {uniform({2, 1, 3, 4}, 164), uniform({3, 4, 2}, 165)},
           [](auto& in) { return matmul(in[0], in[1]); });
  add_case("matmul_4d_2d", {uniform({2, 2, 3, 4}, 166), uniform({4, 2}, 167)},
           [](auto& in) { return matmul(in[0], in[1]); });
  add_case("matmul_vec_4d", {uniform({3}, 168), uniform({2, 1, 3, 2}, 169)},
           [](auto& in) { return matmul(in[0], in[1]); });

  // ---- shape ----
  add_case("reshape_infer", {uniform({2, 3, 2}, 110)}, [](auto& in) {
    return in[0].reshape({3, -1});
  });
  add_case("flatten", {uniform({2, 3, 2}, 111)}, [](auto& in) { return in[0].flatten(1); });
  add_case("unsqueeze", {uniform({2, 3}, 112)}, [](auto& in) { return in[0].unsqueeze(-1); });
  add_case("squeeze_all", {uniform({1, 3, 1}, 113)}, [](auto& in) { return in[0].squeeze(); });
  add_case("squeeze_dim", {uniform({1, 3, 1}, 114)}, [](auto& in) { return in[0].squeeze(2); });
  add_case("broadcast_to_row", {uniform({3}, 115)}, [](auto& in) {
    return in[0].broadcast_to({2, 3});
  });
  add_case("broadcast_to_col", {uniform({3, 1}, 116)}, [](auto& in) {
    return broadcast_to(in[0], {2, 3, 4});
  });
  add_case("concat_dim0", {uniform({2, 3}, 117), uniform({1, 3}, 118), uniform({0, 3}, 119)},
           [](auto& in) { return concat(in, 0); });
  add_case("concat_dim1", {uniform({2, 3}, 120), uniform({2, 1}, 121)},
           [](auto& in) { return concat(in, -1); });
  add_case("stack_dim1", {uniform({2, 3}, 122), uniform({2, 3}, 123)},
           [](auto& in) { return stack(in, 1); });
  add_case("index_select_rows", {uniform({4, 3}, 124)}, [](auto& in) {
    return in[0].index_select(0, {3, 0, 3, 1});
  });
  add_case("index_select_cols", {uniform({2, 4}, 125)}, [](auto& in) {
    return index_select(in[0], 1, {2, 2, 0});
  });
  add_case("slice_step", {uniform({5, 3}, 126)}, [](auto& in) { return in[0].slice(0, 1, 5, 2); });
  add_case("slice_negative", {uniform({3, 5}, 127)},
           [](auto& in) { return slice(in[0], 1, -3, 100); });
  add_case("permute_3d", {uniform({2, 3, 4}, 170)}, [](auto& in) {
    return permute(in[0], {2, 0, 1});
  });
  add_case("permute_negative", {uniform({2, 1, 3, 2}, 171)}, [](auto& in) {
    return permute(in[0], {0, -2, -1, 1});
  });
  add_case("tril", {uniform({4, 3}, 172)}, [](auto& in) { return tril(in[0]); });
  add_case("tril_batched_above", {uniform({2, 3, 4}, 173)},
           [](auto& in) { return tril(in[0], 1); });
  add_case("triu_below", {uniform({3, 4}, 174)}, [](auto& in) { return triu(in[0], -1); });
  add_case("masked_fill_bcast", {D::from({{1.0}, {0.0}, {1.0}}), req(uniform({3, 4}, 175))},
           [](auto& in) { return masked_fill(in[1], in[0], -2.0); });
  add_case("causal_softmax", {req(uniform({2, 3, 3}, 176))}, [](auto& in) {
    const D upper = triu(D::ones({3, 3}), 1);
    return softmax(masked_fill(in[0], upper, -std::numeric_limits<double>::infinity()), -1);
  });
  add_case("embedding_tensor",
           {D::from({{2.0, 0.0, 2.0}, {1.0, 1.0, 3.0}}), req(uniform({4, 3}, 177))},
           [](auto& in) { return embedding(in[0], in[1]); });
  add_case("embedding_list", {uniform({3, 2}, 178)}, [](auto& in) {
    return embedding(std::vector<std::int64_t>{1, 1, 0, 2}, in[0]);
  });

  // ---- convolution and pooling ----
  add_case("unfold", {uniform({2, 2, 4, 5}, 180)}, [](auto& in) { return unfold(in[0], {2, 3}); });
  add_case("unfold_pad_stride_dilation", {uniform({1, 2, 5, 6}, 181)}, [](auto& in) {
    return unfold(in[0], 2, {2, 1}, {1, 2}, {2, 3});
  });
  add_case("fold_overlap", {uniform({2, 2 * 4, 6}, 182)}, [](auto& in) {
    return fold(in[0], {3, 4}, 2);
  });
  add_case("fold_pad_stride", {uniform({1, 3 * 4, 4}, 183)}, [](auto& in) {
    return fold(in[0], {3, 3}, 2, 1, 1, 2);
  });
  add_case("conv2d", {uniform({2, 2, 5, 5}, 184), uniform({3, 2, 3, 3}, 185), uniform({3}, 186)},
           [](auto& in) { return conv2d(in[0], in[1], in[2]); });
  add_case("conv2d_stride_pad_dilation",
           {uniform({1, 2, 6, 5}, 187), uniform({2, 2, 2, 3}, 188), uniform({2}, 189)},
           [](auto& in) {
             return conv2d(in[0], in[1], in[2], {2, 1}, {1, 2}, {2, 1});
           });
  add_case("conv2d_groups_no_bias", {uniform({2, 4, 4, 4}, 190), uniform({6, 2, 2, 2}, 191)},
           [](auto& in) { return conv2d(in[0], in[1], D(), 1, 1, 1, 2); });
  add_case("conv2d_depthwise", {uniform({1, 3, 4, 4}, 192), uniform({3, 1, 3, 3}, 193)},
           [](auto& in) { return conv2d(in[0], in[1], D(), 1, 1, 1, 3); });
  add_case("conv2d_same_dilated", {uniform({2, 2, 4, 5}, 213), uniform({3, 2, 3, 3}, 214)},
           [](auto& in) { return conv2d(in[0], in[1], D(), 1, 2, 2); });
  add_case("conv2d_one_row_image", {uniform({1, 2, 1, 3}, 215), uniform({2, 2, 3, 3}, 216)},
           [](auto& in) { return conv2d(in[0], in[1], D(), 1, 1); });
  add_case("conv2d_unbatched_1x1", {uniform({3, 3, 2}, 194), uniform({2, 3, 1, 1}, 195)},
           [](auto& in) { return conv2d(in[0], in[1]); });
  add_case("max_pool2d", {uniform({2, 2, 4, 6}, 196)},
           [](auto& in) { return max_pool2d(in[0], 2); });
  add_case("max_pool2d_overlap_pad", {uniform({1, 2, 5, 5}, 197)},
           [](auto& in) { return max_pool2d(in[0], 3, 2, 1); });
  add_case("max_pool2d_dilation_unbatched", {uniform({2, 5, 6}, 198)},
           [](auto& in) { return max_pool2d(in[0], 2, 1, 0, 2); });
  add_case("avg_pool2d", {uniform({2, 2, 4, 6}, 199)}, [](auto& in) {
    return avg_pool2d(in[0], {2, 3});
  });
  add_case("avg_pool2d_pad", {uniform({1, 2, 5, 5}, 200)},
           [](auto& in) { return avg_pool2d(in[0], 3, 2, 1); });
  add_case("avg_pool2d_pad_exclude", {uniform({1, 2, 5, 5}, 201)},
           [](auto& in) { return avg_pool2d(in[0], 3, 2, 1, false); });

  // ---- normalisation ----
  add_case("batch_norm_train", {uniform({3, 2, 2, 2}, 202), uniform({2}, 203), uniform({2}, 204)},
           [](auto& in) { return batch_norm(in[0], D(), D(), in[1], in[2], true); });
  add_case("batch_norm_train_2d", {uniform({4, 3}, 205)},
           [](auto& in) { return batch_norm(in[0], D(), D(), D(), D(), true, 0.1, 1e-3); });
  add_case("batch_norm_eval", {uniform({2, 2, 3}, 206), uniform({2}, 207), uniform({2}, 208)},
           [](auto& in) {
             return batch_norm(in[0], D::from({0.3, -0.2}), D::from({0.8, 1.7}), in[1], in[2]);
           });
  add_case("layer_norm", {uniform({3, 4}, 209), uniform({4}, 210), uniform({4}, 211)},
           [](auto& in) { return layer_norm(in[0], {4}, in[1], in[2]); });
  add_case("layer_norm_two_dims", {uniform({2, 2, 3}, 212)}, [](auto& in) {
    return layer_norm(in[0], {2, 3});
  });
  add_case("layer_norm_weight_only", {uniform({2, 5}, 213), uniform({5}, 214)},
           [](auto& in) { return layer_norm(in[0], {5}, in[1], D(), 1e-3); });
  add_case("layer_norm_bias_only", {uniform({3, 2, 2}, 215), uniform({2}, 216)},
           [](auto& in) { return layer_norm(in[0], {2}, D(), in[1]); });

  // ---- attention (2 heads of width 2; key and value longer than the query) ----
  add_case("multi_head_attention",
           {uniform({2, 3, 4}, 217), uniform({2, 5, 4}, 218), uniform({2, 5, 4}, 219)},
           [](auto& in) { return multi_head_attention(in[0], in[1], in[2], 2); });
  add_case(
      "multi_head_attention_mask",
      {uniform({1, 3, 4}, 220), uniform({1, 4, 4}, 221), uniform({1, 4, 4}, 222)}, [](auto& in) {
        const D mask = D::from({{0.0, 1.0, 0.0, 1.0}, {1.0, 0.0, 0.0, 0.0}, {0.0, 0.0, 1.0, 1.0}});
        return multi_head_attention(in[0], in[1], in[2], 2, mask);
      });
  add_case("multi_head_attention_causal",
           {uniform({2, 3, 4}, 223), uniform({2, 3, 4}, 224), uniform({2, 3, 4}, 225)},
           [](auto& in) { return multi_head_attention(in[0], in[1], in[2], 2, D(), true); });
  add_case("multi_head_self_attention_causal", {uniform({2, 4, 12}, 226)},
           [](auto& in) { return multi_head_self_attention(in[0], 2, D(), true); });
  add_case("multi_head_self_attention_one_head", {uniform({1, 3, 6}, 227)},
           [](auto& in) { return multi_head_self_attention(in[0], 1); });

  // ---- losses (targets are checked too where they have a gradient) ----
  for (auto [tag, red] : {std::pair{"mean", Reduction::Mean}, std::pair{"sum", Reduction::Sum},
                          std::pair{"none", Reduction::None}}) {
    const std::string t = tag;
    add_case("mse_" + t, {uniform({4, 3}, 130), uniform({4, 3}, 131)},
             [red](auto& in) { return mse(in[0], in[1], red); });
    add_case("bce_" + t, {probs({4, 1}, 132), probs({4, 1}, 133)},
             [red](auto& in) { return bce(in[0], in[1], red); });
    add_case("bce_with_logits_" + t, {uniform({4, 2}, 134, -5, 5), probs({4, 2}, 135)},
             [red](auto& in) { return bce_with_logits(in[0], in[1], red); });
    add_case("cross_entropy_" + t, {uniform({4, 5}, 136, -3, 3)}, [red](auto& in) {
      return cross_entropy(in[0], std::vector<std::int64_t>{1, 0, 4, 4}, red);
    });
    add_case("nll_" + t, {uniform({4, 5}, 137, -3, 0)}, [red](auto& in) {
      return nll(in[0], std::vector<std::int64_t>{2, 3, 0, 2}, red);
    });
  }
  add_case("cross_entropy_large", {D::from({{1000.0, -1000.0, 0.0}, {-1000.0, 999.0, 1000.0}})},
           [](auto& in) {
             return cross_entropy(in[0], std::vector<std::int64_t>{1, 2});
           });
  add_case("cross_entropy_tensor_labels", {uniform({3, 4}, 138)}, [](auto& in) {
    return cross_entropy(in[0], D::from({3.0, 0.0, 1.0}));
  });
  add_case("bce_with_logits_large", {D::from({-800.0, -20.0, 20.0, 800.0}), probs({4}, 139)},
           [](auto& in) { return bce_with_logits(in[0], in[1]); });

  // ---- whole expressions ----
  add_case("logistic_model", {uniform({4, 3}, 140), uniform({3, 1}, 141), uniform({1}, 142)},
           [](auto& in) { return (in[0].matmul(in[1]) + in[2]).sigmoid().sum(); });
  add_case("diamond_reuse", {uniform({3}, 143)}, [](auto& in) {
    auto a = in[0] * 2.0;  // a feeds two branches that meet again
    return (a.exp() + a * a + in[0]).sum();
  });
  return c;
}

class OpsGradcheck : public ::testing::TestWithParam<OpCase> {};

TEST_P(OpsGradcheck, MatchesCentralDifferences) {
  const OpCase& c = GetParam();
  auto report = testing::gradcheck(c.fn, c.inputs);
  EXPECT_TRUE(report.ok) << report.summary();
  bool any_checked = false;
  for (const auto& r : report.inputs) any_checked = any_checked || r.checked;
  EXPECT_TRUE(any_checked);
}

INSTANTIATE_TEST_SUITE_P(Table, OpsGradcheck, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<OpCase>& param) {
                           return param.param.name;
                         });

// The rows whose second derivative with respect to their inputs is zero everywhere the row is
// evaluated: linear and piecewise-linear ops (these rows sit away from the kinks), and
// piecewise-constant ones. Their first derivative still depends on the incoming gradient, which
// gradgradcheck checks like any other row.
bool zero_second_derivative(const std::string& name) {
  static const std::vector<std::string> prefixes = {
      "add",          "sub",        "scalar_add", "rsub",      "neg",       "mul_scalar",
      "scalar_mul",   "div_scalar", "pow_0",      "maximum",   "minimum",   "abs",
      "clamp",        "where",      "relu",       "leaky",     "step",      "heaviside",
      "sum",          "mean",       "max",        "min",       "transpose", "reshape",
      "flatten",      "unsqueeze",  "squeeze",    "broadcast", "concat",    "stack",
      "index_select", "slice",      "nll",        "permute",   "tril",      "triu",
      "masked_fill",  "embedding",  "unfold",     "dropout",   "fold",      "max_pool",
      "avg_pool"};
  for (const auto& p : prefixes) {
    if (name.rfind(p, 0) == 0) return true;
  }
  return false;
}

class OpsGradgradcheck : public ::testing::TestWithParam<OpCase> {};

TEST_P(OpsGradgradcheck, SecondDerivativesMatchCentralDifferences) {
  const OpCase& c = GetParam();
  auto report = testing::gradgradcheck(c.fn, c.inputs);
  EXPECT_TRUE(report.ok) << report.summary();
}

class OpsZeroSecondDerivative : public ::testing::TestWithParam<OpCase> {};

TEST_P(OpsZeroSecondDerivative, HessianIsExactlyZero) {
  const OpCase& c = GetParam();
  bool any = false;
  for (const auto& t : c.inputs) any = any || t.requires_grad();
  std::vector<D> xs;
  std::vector<D> wrt;
  for (const auto& t : c.inputs) {
    xs.emplace_back(Array<double>(t.value()), !any || t.requires_grad());
    if (xs.back().requires_grad()) wrt.push_back(xs.back());
  }
  D out = c.fn(xs);
  if (!out.requires_grad()) return;
  D v = D::ones(out.shape());
  auto g = grad({out}, wrt, {v}, {.create_graph = true, .allow_unused = true});
  for (std::size_t i = 0; i < g.size(); ++i) {
    if (!g[i].requires_grad()) continue;
    auto h = grad({(g[i] * D::ones(g[i].shape())).sum()}, wrt, {.allow_unused = true});
    for (const auto& hi : h) {
      EXPECT_TRUE(xt::all(xt::equal(hi.value(), 0.0))) << c.name << ": " << hi;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Table, OpsGradgradcheck, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<OpCase>& param) {
                           return param.param.name;
                         });

std::vector<OpCase> zero_second_cases() {
  std::vector<OpCase> out;
  for (auto& c : cases()) {
    if (zero_second_derivative(c.name)) out.push_back(std::move(c));
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Table, OpsZeroSecondDerivative, ::testing::ValuesIn(zero_second_cases()),
                         [](const ::testing::TestParamInfo<OpCase>& param) {
                           return param.param.name;
                         });

}  // namespace
}  // namespace xgrad
