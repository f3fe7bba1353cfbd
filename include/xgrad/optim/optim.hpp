#pragma once
// Umbrella header for xgrad::optim: optimisers, L-BFGS, learning-rate schedulers, clipping.

#include <xgrad/config.hpp>
#include <xgrad/optim/clip_grad.hpp>
#if XGRAD_HAS_LBFGS  // component xgrad::lbfgs
#include <xgrad/optim/lbfgs.hpp>
#endif
#include <xgrad/optim/lr_scheduler.hpp>
#include <xgrad/optim/optimizer.hpp>
