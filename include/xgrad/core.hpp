#pragma once
/// @file
/// Umbrella header of xgrad::core: tensors, the engine, every operation, modules, the first-order
/// optimisers, schedulers, gradient clipping and gradient checking. Needs xtensor, xsimd and a
/// BLAS only.

#include <xgrad/autograd.hpp>
#include <xgrad/blas.hpp>
#include <xgrad/error.hpp>
#include <xgrad/functional.hpp>
#include <xgrad/memory.hpp>
#include <xgrad/nn/nn.hpp>
#include <xgrad/node.hpp>
#include <xgrad/ops.hpp>
#include <xgrad/optim/clip_grad.hpp>
#include <xgrad/optim/lr_scheduler.hpp>
#include <xgrad/optim/optimizer.hpp>
#include <xgrad/profiler.hpp>
#include <xgrad/tensor.hpp>
#include <xgrad/testing/gradcheck.hpp>
#include <xgrad/threads.hpp>
#include <xgrad/version.hpp>
#include <xgrad/xt.hpp>
