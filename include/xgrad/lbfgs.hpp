#pragma once
/// @file
/// Umbrella header of xgrad::lbfgs (target xgrad::lbfgs): the L-BFGS optimiser.

#include <xgrad/optim/lbfgs.hpp>
