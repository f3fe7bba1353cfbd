#pragma once
// Datasets of HDF5 files (through the HDF5 C library, which this header does not expose).

#include <string>

#include <xgrad/tensor.hpp>

namespace xgrad::data {

/// Reads one integer or floating-point dataset ("name" or "group/name") of an HDF5 file, converted
/// to T, with the dataset's shape (a scalar dataset gives a 0-dimensional tensor). The file is
/// opened read-only. A missing file or dataset, a dataset of strings or compound records, or one
/// declaring far more elements than the file stores raises IoError naming the path and dataset.
template <class T>
Tensor<T> read_hdf5(const std::string& path, const std::string& dataset);

}  // namespace xgrad::data
