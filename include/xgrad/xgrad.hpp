#pragma once
// Umbrella header: the engine, every operation, and the training stack above it.

#include <xgrad/autograd.hpp>
#include <xgrad/data/data.hpp>
#include <xgrad/error.hpp>
#include <xgrad/functional.hpp>
#include <xgrad/io/checkpoint.hpp>
#include <xgrad/io/safetensors.hpp>
#include <xgrad/nn/nn.hpp>
#include <xgrad/node.hpp>
#include <xgrad/ops.hpp>
#include <xgrad/optim/optim.hpp>
#include <xgrad/tensor.hpp>
#include <xgrad/testing/gradcheck.hpp>
#include <xgrad/version.hpp>
#include <xgrad/viz/plot.hpp>
#include <xgrad/viz/progress.hpp>
#include <xgrad/xt.hpp>

/// @namespace xgrad
/// Tensors, the autograd engine and every differentiable operation.
/// @namespace xgrad::nn
/// Modules as in torch.nn: layers, containers, initialisers, penalties.
/// @namespace xgrad::nn::init
/// In-place seeded parameter initialisers, as torch.nn.init.
/// @namespace xgrad::optim
/// Optimisers, learning-rate schedulers and gradient clipping, as torch.optim.
/// @namespace xgrad::data
/// File readers (IDX, CSV, .npy, HDF5, Fashion-MNIST) and the mini-batch DataLoader.
/// @namespace xgrad::io
/// Checkpoints and tensor files in the safetensors format.
/// @namespace xgrad::viz
/// Loss curves (SVG), decision boundaries (PNG) and a progress bar.
/// @namespace xgrad::testing
/// Gradient checking against central differences.
/// @namespace xgrad::blas
/// The matrix product the operations are built on (OpenBLAS gemm on row-major buffers).
