#pragma once
// L-BFGS with a strong Wolfe line search, closure style as torch.optim.LBFGS. The two-loop
// recursion and the line search are LBFGSpp's (BFGSMat, LineSearchNocedalWright); this class
// drives them with torch's iteration and stopping rules over the flattened parameters.

#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include <xgrad/optim/optimizer.hpp>

namespace xgrad::optim {

/// Line searches LBFGS can use.
enum class LineSearch {
  StrongWolfe,  ///< Nocedal & Wright's bracketing and zoom, c1 = 1e-4, c2 = 0.9, 25 evaluations
};

/// torch.optim.LBFGS's options, except history_size (10 here, 100 there) and line_search
/// (strong Wolfe here, none there).
struct LBFGSOptions {
  /// Step length scale (torch's lr).
  double lr = 1;
  /// Most iterations per step().
  int max_iter = 20;
  /// Most closure evaluations per step(); unset means max_iter * 5 / 4, as in torch.
  std::optional<int> max_eval = std::nullopt;
  /// Curvature pairs kept for the two-loop recursion.
  int history_size = 10;
  /// Stop when the largest gradient element is at most this.
  double tolerance_grad = 1e-7;
  /// Stop when a step or loss change is below this.
  double tolerance_change = 1e-9;
  /// The line search.
  LineSearch line_search = LineSearch::StrongWolfe;
};

/// Limited-memory BFGS. Works in double on the flattened parameters whatever T is; the curvature
/// history, direction and step carry over between step() calls, as in torch.
template <class T>
class LBFGS : public Optimizer<T> {
 public:
  /// Zeroes the gradients, computes the loss, calls backward() and returns the loss.
  using Closure = std::function<Tensor<T>()>;

  /// Raises ValueError for lr <= 0, max_iter, max_eval or history_size < 1, or a negative
  /// tolerance.
  LBFGS(std::vector<Tensor<T>> params, LBFGSOptions options = {});
  ~LBFGS() override;

  /// Always raises ValueError: L-BFGS re-evaluates the loss, so it needs step(closure).
  void step() override;
  /// Runs up to max_iter iterations and returns the loss at the parameters it leaves in place
  /// (torch returns the loss at entry instead). Stops early when the largest gradient element is
  /// <= tolerance_grad, or a step or loss change is below tolerance_change, or after max_eval
  /// evaluations. If the line search fails (no decrease, a non-finite loss, or LBFGSpp's loss of
  /// precision), the step stops there and leaves the parameters and gradients at the last
  /// accepted point instead of raising. Raises ValueError when the closure returns an undefined
  /// or multi-element tensor, leaves no parameter with a gradient (it did not call backward()),
  /// or gives a non-finite loss or gradient at the starting point; an error
  /// raised by the closure propagates after the parameters are restored to that point.
  T step(const Closure& closure);

  /// The options given to the constructor.
  const LBFGSOptions& options() const { return options_; }
  /// Iterations run over all step() calls (torch's state['n_iter']).
  std::int64_t n_iter() const;
  /// Closure evaluations over all step() calls (torch's state['func_evals']).
  std::int64_t func_evals() const;

 protected:
  /// Per parameter: its part of the direction "d", of the previous gradient "prev_flat_grad",
  /// and of the curvature pairs "old_dirs" (y) and "old_stps" (s), oldest first, [k, ...shape];
  /// numbers "t", "n_iter", "func_evals" (torch's names).
  void save_state(const std::vector<std::string>& names, StateDict& out) const override;
  /// Reads what save_state writes and rebuilds the two-loop recursion from the pairs.
  void load_state(const std::vector<std::string>& names, const StateDict& state,
                  const std::function<void(const std::string&)>& take, bool apply) override;

 private:
  struct State;
  LBFGSOptions options_;
  std::unique_ptr<State> state_;
};

extern template class LBFGS<float>;
extern template class LBFGS<double>;

}  // namespace xgrad::optim
