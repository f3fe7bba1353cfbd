#pragma once
/// @file
/// Umbrella header of xgrad::data (target xgrad::data): IDX, CSV, .npy and, when built with it,
/// HDF5 readers, Fashion-MNIST and the DataLoader.

#include <xgrad/data/data.hpp>
