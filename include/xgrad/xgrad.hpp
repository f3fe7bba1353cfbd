#pragma once
// Umbrella header: xgrad::core and every optional component this copy of xgrad was built with
// (config.hpp says which). A program that links only some components includes their own
// umbrella headers instead: <xgrad/core.hpp>, <xgrad/data.hpp>, <xgrad/io.hpp>, <xgrad/viz.hpp>,
// <xgrad/lbfgs.hpp>, <xgrad/distributed.hpp>.

#include <xgrad/config.hpp>
#include <xgrad/core.hpp>
#if XGRAD_HAS_DATA
#include <xgrad/data.hpp>
#endif
#if XGRAD_HAS_IO
#include <xgrad/io.hpp>
#endif
#if XGRAD_HAS_VIZ
#include <xgrad/viz.hpp>
#endif
#if XGRAD_HAS_LBFGS
#include <xgrad/lbfgs.hpp>
#endif
#if XGRAD_HAS_DISTRIBUTED
#include <xgrad/distributed.hpp>
#endif

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
/// @namespace xgrad::dist
/// Data-parallel training over MPI: process groups, DataParallel, DistributedSampler.
/// @namespace xgrad::viz
/// Loss curves (SVG), decision boundaries (PNG) and a progress bar.
/// @namespace xgrad::testing
/// Gradient checking against central differences.
/// @namespace xgrad::blas
/// The matrix product the operations are built on (row-major gemm).
