#pragma once
// The only header that includes xtensor. Everything else in xgrad sees xtensor through here,
// so a move to xtensor 0.25+ (which nests its headers in sub-folders) touches one file.

#include <xgrad/config.hpp>
#include <xtensor/xtensor_config.hpp>

#if XTENSOR_VERSION_MAJOR == 0 && XTENSOR_VERSION_MINOR < 25
#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xbroadcast.hpp>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xindex_view.hpp>
#include <xtensor/xio.hpp>
#include <xtensor/xmanipulation.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xnoalias.hpp>
#include <xtensor/xreducer.hpp>
#include <xtensor/xsort.hpp>
#include <xtensor/xstrided_view.hpp>
#include <xtensor/xview.hpp>
#else
#include <xtensor/containers/xadapt.hpp>
#include <xtensor/containers/xarray.hpp>
#include <xtensor/core/xmath.hpp>
#include <xtensor/core/xnoalias.hpp>
#include <xtensor/generators/xbuilder.hpp>
#include <xtensor/io/xio.hpp>
#include <xtensor/misc/xmanipulation.hpp>
#include <xtensor/misc/xsort.hpp>
#include <xtensor/reducers/xreducer.hpp>
#include <xtensor/views/xbroadcast.hpp>
#include <xtensor/views/xindex_view.hpp>
#include <xtensor/views/xstrided_view.hpp>
#include <xtensor/views/xview.hpp>
#endif

// Not xtensor, but what every user of Array needed from this header before they had their own.
#include <xgrad/blas.hpp>
#include <xgrad/buffer.hpp>
#include <xgrad/memory.hpp>
#include <xgrad/shape.hpp>
#include <xgrad/threads.hpp>

namespace xgrad {

/// Dense row-major n-dimensional array: the storage of every tensor value and gradient. An
/// xt::xarray whose elements live in a detail::Buffer, so that tensors can share them.
template <class T>
using Array = xt::xarray_container<detail::Buffer<T>, xt::layout_type::row_major,
                                   xt::svector<std::size_t, 4, std::allocator<std::size_t>, true>>;

}  // namespace xgrad
