#pragma once
/// @file
/// Umbrella header of xgrad::viz (target xgrad::viz): loss curves, decision boundaries, progress.

#include <xgrad/viz/plot.hpp>
#include <xgrad/viz/progress.hpp>
