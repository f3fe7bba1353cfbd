#pragma once
// Everything for getting data into tensors: file readers and the mini-batch loader.

#include <xgrad/config.hpp>
#include <xgrad/data/csv.hpp>
#include <xgrad/data/dataloader.hpp>
#include <xgrad/data/fashion_mnist.hpp>
#if XGRAD_HAS_HDF5  // built with HDF5
#include <xgrad/data/hdf5.hpp>
#endif
#include <xgrad/data/idx.hpp>
#include <xgrad/data/npy.hpp>
