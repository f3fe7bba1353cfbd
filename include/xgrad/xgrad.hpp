#pragma once
// Umbrella header: everything a model needs.

#include <xgrad/autograd.hpp>
#include <xgrad/error.hpp>
#include <xgrad/node.hpp>
#include <xgrad/ops.hpp>
#include <xgrad/tensor.hpp>
#include <xgrad/testing/gradcheck.hpp>
#include <xgrad/xt.hpp>
