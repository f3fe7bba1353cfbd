#pragma once
// Everything in xgrad::nn.

#include <xgrad/nn/blocks.hpp>
#include <xgrad/nn/init.hpp>
#include <xgrad/nn/layers.hpp>
#include <xgrad/nn/module.hpp>
#include <xgrad/nn/regularization.hpp>
