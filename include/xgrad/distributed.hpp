#pragma once
/// @file
/// Umbrella header of xgrad::distributed (target xgrad::distributed): data-parallel training
/// across processes and machines over MPI.

#include <xgrad/distributed/data_parallel.hpp>
#include <xgrad/distributed/process_group.hpp>
#include <xgrad/distributed/sampler.hpp>
