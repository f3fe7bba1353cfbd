#pragma once
// Umbrella header for xgrad::optim: optimisers, L-BFGS, learning-rate schedulers, clipping.

#include <xgrad/optim/clip_grad.hpp>
#include <xgrad/optim/lbfgs.hpp>
#include <xgrad/optim/lr_scheduler.hpp>
#include <xgrad/optim/optimizer.hpp>
