// Optimiser and scheduler state: a state_dict() loaded into a fresh optimiser continues bit for
// bit as the original would have, keyed by parameter name; a state that does not fit is refused.

#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <xgrad/optim/lbfgs.hpp>
#include <xgrad/optim/lr_scheduler.hpp>

#include "test_util.hpp"

namespace xgrad {
namespace {

using test::expect_error;

/// Two parameters of different shapes and a loss with curvature: sum((w x - y)^2) + sum(b^4).
struct Problem {
  explicit Problem(std::uint64_t seed)
      : w(Tensor<float>::randn({3, 4}, seed).requires_grad_()),
        b(Tensor<float>::randn({4}, seed + 1).requires_grad_()) {}
  Problem(const Problem& other)
      : w(Tensor<float>(Array<float>(other.w.value())).requires_grad_()),
        b(Tensor<float>(Array<float>(other.b.value())).requires_grad_()) {}
  Tensor<float> loss() const {
    const auto x = Tensor<float>::from({{0.5f, -1.0f, 2.0f}, {1.5f, 0.25f, -0.75f}});
    const auto r = x.matmul(w) - 1.0f;
    return sum(r * r) + sum(b * b * b * b);
  }
  std::vector<Tensor<float>> params() const { return {w, b}; }
  Tensor<float> w, b;
};

bool same_bits(const Tensor<float>& a, const Tensor<float>& b) {
  return a.shape() == b.shape() &&
         std::memcmp(a.value().data(), b.value().data(), a.numel() * sizeof(float)) == 0;
}

/// Runs `steps` steps of `opt` on `p`.
void run(optim::Optimizer<float>& opt, const Problem& p, int steps) {
  for (int i = 0; i < steps; ++i) {
    if (auto* lbfgs = dynamic_cast<optim::LBFGS<float>*>(&opt)) {
      lbfgs->step([&] {
        lbfgs->zero_grad();
        auto l = p.loss();
        l.backward();
        return l;
      });
    } else {
      opt.zero_grad();
      p.loss().backward();
      opt.step();
    }
  }
}

using Factory = std::function<std::unique_ptr<optim::Optimizer<float>>(std::vector<Tensor<float>>)>;

/// Three steps, a state_dict, then three more; against a fresh optimiser on a copy of the
/// parameters that loads the state and takes the same three steps. `reorder` lists the copy's
/// parameters the other way round (not for L-BFGS, whose dot products over the flattened
/// parameters would then sum in another order).
void expect_exact_resume(const Factory& make, bool reorder = true) {
  Problem original(1);
  auto opt = make(original.params());
  run(*opt, original, 3);
  const std::vector<std::string> names = {"w", "b"};
  const optim::StateDict state = opt->state_dict(names);
  EXPECT_FALSE(state.tensors.empty());

  Problem copy(original);
  auto resumed = reorder ? make({copy.b, copy.w}) : make({copy.w, copy.b});
  resumed->load_state_dict(state, reorder ? std::vector<std::string>{"b", "w"} : names);
  EXPECT_EQ(resumed->lr(), opt->lr());
  run(*opt, original, 3);
  run(*resumed, copy, 3);
  EXPECT_TRUE(same_bits(original.w, copy.w));
  EXPECT_TRUE(same_bits(original.b, copy.b));

  // Without the state the copy would have gone elsewhere: the test can tell.
  Problem fresh(original);
  Problem reference(original);
  auto a = make(fresh.params());
  run(*a, fresh, 1);
  auto with_state = make(reference.params());
  with_state->load_state_dict(opt->state_dict(names), names);
  run(*with_state, reference, 1);
  EXPECT_FALSE(same_bits(fresh.w, reference.w));
}

TEST(OptimState, SgdMomentumResumesExactly) {
  expect_exact_resume([](std::vector<Tensor<float>> p) {
    return std::make_unique<optim::SGD<float>>(
        std::move(p), optim::SGDOptions{.lr = 0.01, .momentum = 0.9, .nesterov = true});
  });
}

TEST(OptimState, AdamResumesExactly) {
  expect_exact_resume([](std::vector<Tensor<float>> p) {
    return std::make_unique<optim::Adam<float>>(std::move(p), optim::AdamOptions{.lr = 0.01});
  });
}

TEST(OptimState, AdamWResumesExactly) {
  expect_exact_resume([](std::vector<Tensor<float>> p) {
    return std::make_unique<optim::AdamW<float>>(std::move(p), optim::AdamWOptions{.lr = 0.01});
  });
}

TEST(OptimState, LbfgsResumesExactlyWithItsHistory) {
  expect_exact_resume(
      [](std::vector<Tensor<float>> p) {
        return std::make_unique<optim::LBFGS<float>>(std::move(p),
                                                     optim::LBFGSOptions{.lr = 0.5, .max_iter = 3});
      },
      /*reorder=*/false);
}

TEST(OptimState, KeysAreParameterNames) {
  Problem p(1);
  optim::Adam<float> adam(p.params());
  run(adam, p, 1);
  const auto state = adam.state_dict({"layer.weight", "layer.bias"});
  EXPECT_EQ(state.type, "Adam");
  EXPECT_EQ(state.scalars.at("layer.weight.step"), 1.0);
  EXPECT_EQ(state.tensors.at("layer.bias.exp_avg_sq").shape()[0], 4u);
  EXPECT_EQ(adam.state_dict().tensors.count("0.exp_avg"), 1u);
}

TEST(OptimState, AnotherOptimizerOrShapeIsRefusedAndChangesNothing) {
  Problem p(1);
  optim::SGD<float> sgd(p.params(), {.lr = 0.1, .momentum = 0.9});
  run(sgd, p, 1);
  const auto sgd_state = sgd.state_dict({"w", "b"});
  optim::Adam<float> adam(p.params());
  run(adam, p, 1);
  const auto adam_before = adam.state_dict({"w", "b"});
  expect_error<IoError>(
      [&] {
        adam.load_state_dict(sgd_state, {"w", "b"});
      },
      {"xgrad::Adam::load_state_dict", "SGD"});

  Problem other(2);
  optim::SGD<float> mismatched({Tensor<float>::zeros({4, 3}).requires_grad_(), other.b},
                               {.lr = 0.1, .momentum = 0.9});
  expect_error<IoError>(
      [&] {
        mismatched.load_state_dict(sgd_state, {"w", "b"});
      },
      {"'w.momentum_buffer'", "[3,4]", "[4,3]"});
  // Keys of parameters this optimiser does not have.
  expect_error<IoError>(
      [&] {
        sgd.load_state_dict(sgd_state, {"x", "b"});
      },
      {"'w.momentum_buffer'", "no parameter"});
  // A failed load changed nothing.
  const auto adam_after = adam.state_dict({"w", "b"});
  EXPECT_EQ(adam_after.scalars, adam_before.scalars);
  EXPECT_EQ(adam_after.tensors.at("w.exp_avg"), adam_before.tensors.at("w.exp_avg"));
  // Names must name every parameter once.
  expect_error<ValueError>([&] { sgd.state_dict({"w"}); }, {"1 names for 2 parameters"});
  expect_error<ValueError>([&] { sgd.load_state_dict(sgd_state, {"w", "w"}); }, {"both named"});
  // Adam's moments without their step count, or a step count without moments.
  auto broken = adam_before;
  broken.tensors.erase("b.exp_avg");
  expect_error<IoError>(
      [&] {
        adam.load_state_dict(broken, {"w", "b"});
      },
      {"'b.step'", "'b.exp_avg'"});
}

TEST(SchedulerState, ContinuesAndRefusesAnotherScheduler) {
  Problem p(1);
  optim::SGD<float> sgd(p.params(), {.lr = 1.0});
  optim::StepLR<float> step(sgd, 2, 0.5);
  for (int i = 0; i < 5; ++i) step.step();
  const auto state = step.state_dict();

  optim::SGD<float> sgd2(p.params(), {.lr = 1.0});
  optim::StepLR<float> resumed(sgd2, 7, 0.9);  // options come from the state, as in torch
  resumed.load_state_dict(state);
  EXPECT_EQ(resumed.last_epoch(), 5);
  EXPECT_EQ(resumed.get_last_lr(), step.get_last_lr());
  step.step();
  resumed.step();
  EXPECT_EQ(resumed.get_last_lr(), step.get_last_lr());
  EXPECT_EQ(sgd2.lr(), 0.125);

  optim::CosineAnnealingLR<float> cosine(sgd2, 10);
  expect_error<IoError>([&] { cosine.load_state_dict(state); },
                        {"xgrad::CosineAnnealingLR::load_state_dict", "StepLR"});
  auto bad = state;
  bad.scalars["gamma"] = -1;
  expect_error<IoError>([&] { resumed.load_state_dict(bad); }, {"gamma", "-1"});
  EXPECT_EQ(resumed.last_epoch(), 6);
}

}  // namespace
}  // namespace xgrad
