#pragma once
// Learning-rate schedulers: each sets its optimiser's lr from the epoch count by torch's closed
// form. Call step() once per epoch, after the optimiser's steps.

#include <xgrad/optim/optimizer.hpp>

namespace xgrad::optim {

/// Base of the schedulers. The optimiser must outlive the scheduler.
template <class T>
class LRScheduler {
 public:
  virtual ~LRScheduler() = default;
  LRScheduler(const LRScheduler&) = delete;
  LRScheduler& operator=(const LRScheduler&) = delete;

  /// Advances one epoch and sets the optimiser's lr to that epoch's value.
  void step();
  /// The lr set by the last step() (or by the constructor: the epoch-0 value).
  double get_last_lr() const { return last_lr_; }
  /// Epochs stepped so far (torch's last_epoch; 0 after construction).
  int last_epoch() const { return last_epoch_; }
  /// The optimiser's lr when the scheduler was built.
  double base_lr() const { return base_lr_; }
  /// "StepLR", "CosineAnnealingLR".
  virtual const char* type() const = 0;

  // ---- state, for checkpoints ----
  /// last_epoch, base_lr, last_lr and the options (step_size and gamma, T_max and eta_min).
  StateDict state_dict() const;
  /// Restores a state_dict() of the same scheduler type, options included (as torch does); the
  /// optimiser's lr is the optimiser's own state. IoError, changing nothing, for another type, a
  /// missing or unknown entry or a value out of its domain.
  void load_state_dict(const StateDict& state);

 protected:
  /// Remembers the optimiser and its lr as base_lr().
  explicit LRScheduler(Optimizer<T>& optimizer);
  /// The lr at `epoch`.
  virtual double lr_at(int epoch) const = 0;
  /// Sets the optimiser's lr to lr_at(last_epoch()); derived constructors call it once.
  void apply();
  /// The options as state entries.
  virtual void save_options(StateDict& out) const = 0;
  /// Checks the options of `state` (IoError via state_error) and, if `apply`, takes them.
  virtual void load_options(const StateDict& state, bool apply) = 0;
  /// The number `key` of `state`, IoError when missing.
  double state_scalar(const StateDict& state, const char* key) const;
  /// IoError("xgrad::<type>::load_state_dict: <what>").
  [[noreturn]] void state_error(const std::string& what) const;

 private:
  Optimizer<T>& optimizer_;
  double base_lr_;
  int last_epoch_ = 0;
  double last_lr_;
};

/// lr = base_lr * gamma^floor(epoch / step_size), as torch.optim.lr_scheduler.StepLR.
template <class T>
class StepLR : public LRScheduler<T> {
 public:
  /// Raises ValueError for step_size < 1 or gamma not finite and > 0.
  StepLR(Optimizer<T>& optimizer, int step_size, double gamma = 0.1);
  const char* type() const override { return "StepLR"; }

 protected:
  double lr_at(int epoch) const override;
  /// "step_size" and "gamma" (or "T_max" and "eta_min").
  void save_options(StateDict& out) const override;
  /// Checks and takes what save_options writes.
  void load_options(const StateDict& state, bool apply) override;

 private:
  int step_size_;
  double gamma_;
};

/// lr = eta_min + (base_lr - eta_min) (1 + cos(pi epoch / T_max)) / 2, torch's closed form of
/// CosineAnnealingLR (periodic past T_max).
template <class T>
class CosineAnnealingLR : public LRScheduler<T> {
 public:
  /// Raises ValueError for T_max < 1 or eta_min not finite and >= 0.
  CosineAnnealingLR(Optimizer<T>& optimizer, int T_max, double eta_min = 0);
  const char* type() const override { return "CosineAnnealingLR"; }

 protected:
  double lr_at(int epoch) const override;
  /// "step_size" and "gamma" (or "T_max" and "eta_min").
  void save_options(StateDict& out) const override;
  /// Checks and takes what save_options writes.
  void load_options(const StateDict& state, bool apply) override;

 private:
  int t_max_;
  double eta_min_;
};

extern template class LRScheduler<float>;
extern template class LRScheduler<double>;
extern template class StepLR<float>;
extern template class StepLR<double>;
extern template class CosineAnnealingLR<float>;
extern template class CosineAnnealingLR<double>;

}  // namespace xgrad::optim
