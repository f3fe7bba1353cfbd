// L-BFGS as torch.optim.LBFGS (torch/optim/lbfgs.py, strong Wolfe line search), with LBFGSpp doing
// the numerical work: BFGSMat keeps the curvature pairs and applies the two-loop recursion, and
// LineSearchNocedalWright finds the strong Wolfe step. LBFGSSolver::minimize is not used: it
// fixes every line search's first trial step (lr would mean nothing), keeps no history between
// calls, and leaves x at the last trial point when its line search throws.

#include <xgrad/optim/lbfgs.hpp>
#include <xgrad/profiler.hpp>

#include <LBFGS.h>

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <deque>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include <xgrad/autograd.hpp>

#include "common.hpp"

namespace xgrad::optim {

using internal::num;

namespace {
double max_abs(const Eigen::VectorXd& v) {
  return v.lpNorm<Eigen::Infinity>();
}
}  // namespace

template <class T>
struct LBFGS<T>::State {
  LBFGSpp::LBFGSParam<double> param;
  LBFGSpp::BFGSMat<double> bfgs;
  Eigen::VectorXd x, g, xp, prev_g, d, s, y;
  double t = 0;             // last step length along d
  std::int64_t n_iter = 0;  // 0 until the first iteration, and after the parameters resize
  std::int64_t func_evals = 0;
  std::size_t n = 0;  // flattened size the vectors were built for
  // The curvature pairs (s, y) in bfgs, oldest first: BFGSMat does not give them back, and a
  // checkpoint needs them. Replaying them into a reset BFGSMat gives the same two-loop recursion.
  std::deque<std::pair<Eigen::VectorXd, Eigen::VectorXd>> history;
};

template <class T>
LBFGS<T>::LBFGS(std::vector<Tensor<T>> params, LBFGSOptions options)
    : Optimizer<T>(std::move(params), options.lr, "LBFGS"),
      options_(options),
      state_(std::make_unique<State>()) {
  const auto at_least_one = [&](const char* option, int value) {
    if (value < 1) {
      throw ValueError(this->prefix() + option + " must be >= 1, got " + std::to_string(value));
    }
  };
  at_least_one("max_iter", options.max_iter);
  if (options.max_eval) at_least_one("max_eval", *options.max_eval);
  at_least_one("history_size", options.history_size);
  this->check_option("tolerance_grad", options.tolerance_grad);
  this->check_option("tolerance_change", options.tolerance_change);
  // torch's _strong_wolfe: c1 = 1e-4, c2 = 0.9, max_ls = 25.
  auto& param = state_->param;
  param.m = options.history_size;
  param.linesearch = LBFGSpp::LBFGS_LINESEARCH_BACKTRACKING_STRONG_WOLFE;
  param.max_linesearch = 25;
  param.ftol = 1e-4;
  param.wolfe = 0.9;
  param.check_param();
}

template <class T>
LBFGS<T>::~LBFGS() = default;

template <class T>
void LBFGS<T>::step() {
  const profiler::record_function region("LBFGS.step");
  throw ValueError(this->prefix() +
                   "step() needs a closure that zeroes the gradients, computes the loss, calls "
                   "backward() and returns the loss: call step(closure)");
}

template <class T>
std::int64_t LBFGS<T>::n_iter() const {
  return state_->n_iter;
}

template <class T>
std::int64_t LBFGS<T>::func_evals() const {
  return state_->func_evals;
}

template <class T>
T LBFGS<T>::step(const Closure& closure) {
  const std::string pre = this->prefix();
  if (!closure) throw ValueError(pre + "step() got an empty closure");
  auto& params = this->mutable_params();
  State& st = *state_;

  std::size_t n = 0;
  for (const auto& p : params) n += p.numel();
  if (n != st.n) {
    st.n = n;
    st.n_iter = 0;
    for (auto* v : {&st.x, &st.g, &st.xp, &st.prev_g, &st.d, &st.s, &st.y}) v->resize(n);
  }

  const auto write_params = [&](const Eigen::VectorXd& x) {
    NoGradGuard no_grad;
    std::size_t off = 0;
    for (auto& p : params) {
      T* v = p.mutable_value().data();
      const std::size_t np = p.numel();
      for (std::size_t k = 0; k < np; ++k) v[k] = static_cast<T>(x[off + k]);
      off += np;
    }
  };
  const auto read_params = [&](Eigen::VectorXd& x) {
    std::size_t off = 0;
    for (const auto& p : params) {
      const T* v = p.value().data();
      const std::size_t np = p.numel();
      for (std::size_t k = 0; k < np; ++k) x[off + k] = v[k];
      off += np;
    }
  };
  // A parameter the loss does not reach has gradient zero, as in torch's _gather_flat_grad.
  const auto read_grads = [&](Eigen::VectorXd& g) {
    std::size_t off = 0;
    for (std::size_t i = 0; i < params.size(); ++i) {
      const std::size_t np = params[i].numel();
      const Array<T>* grad = this->grad_for_step(i);
      for (std::size_t k = 0; k < np; ++k) g[off + k] = grad ? grad->data()[k] : 0.0;
      off += np;
    }
  };
  const auto write_grads = [&](const Eigen::VectorXd& g) {
    std::size_t off = 0;
    for (auto& p : params) {
      const std::size_t np = p.numel();
      // The closure's zero_grad() may have dropped the buffer before it failed.
      auto& grad = p.impl()->grad;
      if (!grad) grad = Tensor<T>(Array<T>::from_shape(p.value().shape())).impl();
      T* gp = p.mutable_grad().data();
      for (std::size_t k = 0; k < np; ++k) gp[k] = static_cast<T>(g[off + k]);
      off += np;
    }
  };

  // True while the closure or our checks of its result run, so that an exception raised there
  // is told apart from LBFGSpp's line-search failures (both may be std::runtime_error).
  bool evaluating = false;
  std::int64_t evals = 0;
  const auto evaluate = [&](Eigen::VectorXd& g) -> double {
    evaluating = true;
    const Tensor<T> loss = closure();
    if (!loss.defined()) {
      throw ValueError(pre + "the closure returned an undefined tensor; it must return the loss");
    }
    if (loss.numel() != 1) {
      throw ValueError(pre + "the closure must return a one-element loss, got shape " +
                       shape_str(loss.shape()));
    }
    read_grads(g);
    ++evals;
    evaluating = false;
    return static_cast<double>(loss.item());
  };
  // The objective LBFGSpp's line search calls.
  const auto f = [&](const Eigen::VectorXd& x, Eigen::VectorXd& g) -> double {
    write_params(x);
    return evaluate(g);
  };

  read_params(st.x);
  double loss = evaluate(st.g);
  st.func_evals += evals;
  // Without this check a closure that forgets backward() reads as a zero gradient everywhere,
  // and the step reports convergence without moving.
  if (std::none_of(params.begin(), params.end(), [](const Tensor<T>& p) { return p.has_grad(); })) {
    throw ValueError(pre + "none of the " + std::to_string(params.size()) +
                     " parameters has a gradient after the closure ran: the closure must call "
                     "backward() on the loss it returns");
  }
  if (!std::isfinite(loss)) {
    throw ValueError(pre + "the closure returned a non-finite loss (" + num(loss) +
                     ") at the starting point");
  }
  if (!st.g.allFinite()) {
    std::size_t off = 0, i = 0;
    while (st.g.segment(off, params[i].numel()).allFinite()) off += params[i++].numel();
    throw ValueError(pre + "the gradient of parameter " + std::to_string(i) + " (shape " +
                     shape_str(params[i].shape()) + ") is not finite at the starting point");
  }
  const double tol_grad = options_.tolerance_grad;
  const double tol_change = options_.tolerance_change;
  if (n == 0 || max_abs(st.g) <= tol_grad) return static_cast<T>(loss);

  const double lr = this->lr();
  const int max_iter = options_.max_iter;
  const std::int64_t max_eval =
      options_.max_eval.value_or(static_cast<std::int64_t>(max_iter) * 5 / 4);
  std::int64_t current_evals = 1;
  for (int iter = 1; iter <= max_iter; ++iter) {
    ++st.n_iter;
    if (st.n_iter == 1) {
      st.bfgs.reset(static_cast<int>(n), options_.history_size);
      st.history.clear();
      st.d = -st.g;
    } else {
      st.y = st.g - st.prev_g;
      st.s = st.t * st.d;
      // torch skips pairs with too little curvature, which would make H indefinite.
      if (st.y.dot(st.s) > 1e-10) {
        st.bfgs.add_correction(st.s, st.y);
        st.history.emplace_back(st.s, st.y);
        if (st.history.size() > static_cast<std::size_t>(options_.history_size)) {
          st.history.pop_front();
        }
      }
      st.bfgs.apply_Hv(st.g, -1.0, st.d);
    }
    st.prev_g = st.g;
    const double prev_loss = loss;
    st.t = st.n_iter == 1 ? std::min(1.0, 1.0 / st.g.cwiseAbs().sum()) * lr : lr;
    if (st.g.dot(st.d) > -tol_change) break;  // not a descent direction to within tolerance

    st.xp = st.x;
    double fx = loss;
    bool failed = false;
    evals = 0;
    try {
      LBFGSpp::LineSearchNocedalWright<double>::LineSearch(f, fx, st.x, st.g, st.t, st.d, st.xp,
                                                           st.param);
    } catch (const std::exception&) {
      if (evaluating) {
        st.x = st.xp;
        write_params(st.x);
        throw;
      }
      failed = true;  // LBFGSpp lost precision while zooming
    }
    st.func_evals += evals;
    current_evals += evals;
    // The line search returns its last trial point even when it ran out of evaluations, which
    // may be worse than where it started (or NaN): keep the last accepted point then.
    if (failed || !(fx <= loss) || !st.g.allFinite()) {
      st.x = st.xp;
      st.g = st.prev_g;
      write_params(st.x);
      write_grads(st.g);
      break;
    }
    loss = fx;

    if (iter == max_iter || current_evals >= max_eval) break;
    if (max_abs(st.g) <= tol_grad) break;
    if (st.t * max_abs(st.d) <= tol_change) break;
    if (std::abs(loss - prev_loss) < tol_change) break;
  }
  return static_cast<T>(loss);
}

// ---- state ----

template <class T>
void LBFGS<T>::save_state(const std::vector<std::string>& names, StateDict& out) const {
  const State& st = *state_;
  const auto& params = this->params();
  std::size_t n = 0;
  for (const auto& p : params) n += p.numel();
  // After a resize the next step starts afresh, so the stale vectors are not worth keeping.
  const bool fresh = st.n_iter == 0 || st.n != n;
  out.scalars["n_iter"] = fresh ? 0.0 : static_cast<double>(st.n_iter);
  out.scalars["func_evals"] = static_cast<double>(st.func_evals);
  if (fresh) return;
  out.scalars["t"] = st.t;
  const auto k = st.history.size();
  std::size_t off = 0;
  for (std::size_t i = 0; i < params.size(); ++i) {
    const Shape shape = params[i].shape();
    const std::size_t np = params[i].numel();
    for (const auto& [suffix, v] :
         {std::pair{".d", &st.d}, std::pair{".prev_flat_grad", &st.prev_g}}) {
      Array<double> a = Array<double>::from_shape(shape);
      std::copy(v->data() + off, v->data() + off + np, a.data());
      out.tensors[names[i] + suffix] = std::move(a);
    }
    Shape stacked{k};
    stacked.insert(stacked.end(), shape.begin(), shape.end());
    Array<double> dirs = Array<double>::from_shape(stacked);
    Array<double> stps = Array<double>::from_shape(stacked);
    for (std::size_t j = 0; j < k; ++j) {
      const auto& [s, y] = st.history[j];
      std::copy(y.data() + off, y.data() + off + np, dirs.data() + j * np);
      std::copy(s.data() + off, s.data() + off + np, stps.data() + j * np);
    }
    out.tensors[names[i] + ".old_dirs"] = std::move(dirs);
    out.tensors[names[i] + ".old_stps"] = std::move(stps);
    off += np;
  }
}

template <class T>
void LBFGS<T>::load_state(const std::vector<std::string>& names, const StateDict& state,
                          const std::function<void(const std::string&)>& take, bool apply) {
  const auto count = [&](const char* key, bool required) -> std::int64_t {
    const auto it = state.scalars.find(key);
    if (it == state.scalars.end()) {
      if (required) this->state_error(std::string("the state has no \"") + key + "\"");
      return 0;
    }
    take(key);
    if (!(it->second >= 0 && it->second <= 9007199254740992.0 &&
          it->second == std::floor(it->second))) {
      this->state_error(std::string("the state's \"") + key + "\" is " + num(it->second) +
                        ", not a count");
    }
    return static_cast<std::int64_t>(it->second);
  };
  const std::int64_t n_iter = count("n_iter", true);
  const std::int64_t func_evals = count("func_evals", false);
  const auto& params = this->params();
  std::size_t n = 0;
  for (const auto& p : params) n += p.numel();

  double t = 0;
  std::size_t k = 0;
  std::vector<const Array<double>*> d(params.size()), prev(params.size()), dirs(params.size()),
      stps(params.size());
  if (n_iter > 0) {
    const auto it = state.scalars.find("t");
    if (it == state.scalars.end()) this->state_error("the state has no \"t\"");
    take("t");
    t = it->second;
    if (!std::isfinite(t)) this->state_error("the state's \"t\" is " + num(t));
    const auto need = [&](std::size_t i, const std::string& suffix, const Shape& lead) {
      const std::string key = names[i] + suffix;
      // L-BFGS works in double whatever T is.
      const Array<double>* a = this->state_buffer(state, key, i, lead, /*in_T=*/false);
      if (!a) this->state_error("the state has no '" + key + "'");
      take(key);
      return a;
    };
    // The number of curvature pairs, from the first parameter's; all must agree.
    const auto first = state.tensors.find(names[0] + ".old_dirs");
    if (first != state.tensors.end() && first->second.dimension() > 0) {
      k = first->second.shape()[0];
    }
    if (k > static_cast<std::size_t>(options_.history_size)) {
      this->state_error("the state holds " + std::to_string(k) +
                        " curvature pairs, more than history_size " +
                        std::to_string(options_.history_size));
    }
    for (std::size_t i = 0; i < params.size(); ++i) {
      d[i] = need(i, ".d", {});
      prev[i] = need(i, ".prev_flat_grad", {});
      dirs[i] = need(i, ".old_dirs", {k});
      stps[i] = need(i, ".old_stps", {k});
    }
  }
  if (!apply) return;

  State& st = *state_;
  st.func_evals = func_evals;
  st.n_iter = n_iter;
  st.n = n;
  for (auto* v : {&st.x, &st.g, &st.xp, &st.prev_g, &st.d, &st.s, &st.y}) v->resize(n);
  st.history.clear();
  if (n_iter == 0) return;
  st.t = t;
  st.bfgs.reset(static_cast<int>(n), options_.history_size);
  std::vector<std::pair<Eigen::VectorXd, Eigen::VectorXd>> pairs(
      k, {Eigen::VectorXd(n), Eigen::VectorXd(n)});
  std::size_t off = 0;
  for (std::size_t i = 0; i < params.size(); ++i) {
    const std::size_t np = params[i].numel();
    std::copy(d[i]->data(), d[i]->data() + np, st.d.data() + off);
    std::copy(prev[i]->data(), prev[i]->data() + np, st.prev_g.data() + off);
    for (std::size_t j = 0; j < k; ++j) {
      std::copy(stps[i]->data() + j * np, stps[i]->data() + (j + 1) * np,
                pairs[j].first.data() + off);
      std::copy(dirs[i]->data() + j * np, dirs[i]->data() + (j + 1) * np,
                pairs[j].second.data() + off);
    }
    off += np;
  }
  for (auto& [s, y] : pairs) {
    st.bfgs.add_correction(s, y);
    st.history.emplace_back(std::move(s), std::move(y));
  }
}

template class LBFGS<float>;
template class LBFGS<double>;

}  // namespace xgrad::optim
