#pragma once
// Umbrella header: the engine, every operation, and the training stack above it.

#include <xgrad/autograd.hpp>
#include <xgrad/data/data.hpp>
#include <xgrad/error.hpp>
#include <xgrad/io/safetensors.hpp>
#include <xgrad/nn/nn.hpp>
#include <xgrad/node.hpp>
#include <xgrad/ops.hpp>
#include <xgrad/optim/optim.hpp>
#include <xgrad/tensor.hpp>
#include <xgrad/testing/gradcheck.hpp>
#include <xgrad/viz/plot.hpp>
#include <xgrad/viz/progress.hpp>
#include <xgrad/xt.hpp>
