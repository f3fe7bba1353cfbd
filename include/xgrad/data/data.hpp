#pragma once
// Everything for getting data into tensors: file readers and the mini-batch loader.

#include <xgrad/data/csv.hpp>
#include <xgrad/data/dataloader.hpp>
#include <xgrad/data/fashion_mnist.hpp>
#include <xgrad/data/hdf5.hpp>
#include <xgrad/data/idx.hpp>
#include <xgrad/data/npy.hpp>
