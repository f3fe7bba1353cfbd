#pragma once
/// @file
/// Umbrella header of xgrad::io (target xgrad::io): safetensors files and checkpoints.

#include <xgrad/io/checkpoint.hpp>
#include <xgrad/io/safetensors.hpp>
