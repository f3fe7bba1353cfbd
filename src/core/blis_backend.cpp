// Matrix products through BLIS, when it is installed and has kernels for this CPU.
//
// Why: Debian 12's OpenBLAS (0.3.21) runs its AVX2 ("Haswell") kernels on CPUs newer than it
// knows, AMD Zen 5 among them, while BLIS's AVX-512 ("skx") kernels do the products of an MLP
// 1.2-1.7x faster there (benchmarks/ops_bench: matmul against cblas_sgemm). OpenBLAS stays the
// BLAS of the process: BLIS is loaded privately (RTLD_LOCAL) because it also exports the BLAS
// and CBLAS symbols, which must keep resolving to OpenBLAS for everyone else (libtorch in the
// benchmarks, a user's own cblas calls). Without BLIS, or on a CPU without AVX-512, every
// product goes to OpenBLAS.

#include "blis_backend.hpp"

#include <algorithm>
#include <cstdlib>
#include <string>

#ifndef XGRAD_HAVE_BLIS  // set by CMakeLists.txt when blis.h is found
#define XGRAD_HAVE_BLIS 0
#endif
#if XGRAD_HAVE_BLIS && !defined(__x86_64__)  // the AVX-512 kernels are what BLIS is here for
#undef XGRAD_HAVE_BLIS
#define XGRAD_HAVE_BLIS 0
#endif

#if XGRAD_HAVE_BLIS
#include <dlfcn.h>

#include <blis.h>
#endif

namespace xgrad::blas::detail {

#if XGRAD_HAVE_BLIS

namespace {

struct Blis {
  decltype(&bli_sgemm_ex) sgemm = nullptr;
  decltype(&bli_dgemm_ex) dgemm = nullptr;
};

bool cpu_has_avx512() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
}

// Sets BLIS_ARCH_TYPE while alive, unless the user has set it, and then removes it again.
class ArchChoice {
 public:
  ArchChoice() : ours_(std::getenv("BLIS_ARCH_TYPE") == nullptr) {
    // BLIS 0.9 reads the variable as a number.
    if (ours_) setenv("BLIS_ARCH_TYPE", std::to_string(static_cast<int>(BLIS_ARCH_SKX)).c_str(), 0);
  }
  ~ArchChoice() {
    if (ours_) unsetenv("BLIS_ARCH_TYPE");
  }
  ArchChoice(const ArchChoice&) = delete;
  ArchChoice& operator=(const ArchChoice&) = delete;

 private:
  bool ours_;
};

Blis load() {
  Blis none;
  if (!cpu_has_avx512()) return none;
  // BLIS 0.9 falls back to its slow generic kernels on CPUs newer than it knows; on any CPU
  // with AVX-512 its Skylake-X kernels are the right ones. It reads BLIS_ARCH_TYPE once, as it
  // initialises below, so the variable is set for that moment only (children and other
  // libraries never see it). A user's own choice wins, and then BLIS is used only if that
  // choice is those kernels.
  const ArchChoice arch;
  // The soname is BLIS's ABI version: libblis.so.4 is the library that the blis.h of the
  // same Debian package (0.9) describes, whose inline code fills in rntm_t below.
  void* lib = dlopen("libblis.so.4", RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) return none;
  auto init = reinterpret_cast<decltype(&bli_init)>(dlsym(lib, "bli_init"));
  auto query = reinterpret_cast<decltype(&bli_arch_query_id)>(dlsym(lib, "bli_arch_query_id"));
  Blis blis;
  blis.sgemm = reinterpret_cast<decltype(&bli_sgemm_ex)>(dlsym(lib, "bli_sgemm_ex"));
  blis.dgemm = reinterpret_cast<decltype(&bli_dgemm_ex)>(dlsym(lib, "bli_dgemm_ex"));
  if (init == nullptr || query == nullptr || blis.sgemm == nullptr || blis.dgemm == nullptr) {
    return none;
  }
  init();  // the architecture query below reads tables that only initialisation fills
  if (query() != BLIS_ARCH_SKX) return none;
  return blis;
}

const Blis& blis() {
  static const Blis b = load();
  return b;
}

// Loaded as the program starts, before its own threads do: setting an environment variable
// while another thread reads the environment is undefined behaviour.
[[maybe_unused]] const bool loaded_at_start = (blis(), true);

// BLIS's setup costs a few microseconds per call, and its kernels suit neither products below
// about 80^3 nor skinny ones (an output dim below 32), where OpenBLAS is faster (ops_bench).
bool worth_it(std::size_t m, std::size_t n, std::size_t k) {
  return std::min(m, n) >= 32 && m * n * k >= (std::size_t(1) << 19);
}

trans_t flag(bool t) {
  return t ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE;
}

// BLIS describes each stored matrix by its row and column strides; row-major storage with
// leading dimension ld has strides (ld, 1), transposed or not (the flag says which).
template <class T, class Fn>
void call(Fn fn, bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, T alpha, const T* a,
          std::size_t lda, const T* b, std::size_t ldb, T beta, T* c, std::size_t ldc) {
  rntm_t rntm = BLIS_RNTM_INITIALIZER;
  bli_rntm_set_num_threads(1, &rntm);
  fn(flag(ta), flag(tb), static_cast<dim_t>(m), static_cast<dim_t>(n), static_cast<dim_t>(k),
     &alpha, const_cast<T*>(a), static_cast<inc_t>(lda), 1, const_cast<T*>(b),
     static_cast<inc_t>(ldb), 1, &beta, c, static_cast<inc_t>(ldc), 1, nullptr, &rntm);
}

bool blis_available() {
  return blis().sgemm != nullptr;
}

}  // namespace

bool blis_gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, float alpha,
               const float* a, std::size_t lda, const float* b, std::size_t ldb, float beta,
               float* c, std::size_t ldc) {
  if (!blis_available() || !worth_it(m, n, k)) return false;
  call(blis().sgemm, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  return true;
}

bool blis_gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k,
               double alpha, const double* a, std::size_t lda, const double* b, std::size_t ldb,
               double beta, double* c, std::size_t ldc) {
  if (!blis_available() || !worth_it(m, n, k)) return false;
  call(blis().dgemm, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  return true;
}

#else  // built without BLIS's header: every product goes to OpenBLAS

bool blis_gemm(bool, bool, std::size_t, std::size_t, std::size_t, float, const float*, std::size_t,
               const float*, std::size_t, float, float*, std::size_t) {
  return false;
}
bool blis_gemm(bool, bool, std::size_t, std::size_t, std::size_t, double, const double*,
               std::size_t, const double*, std::size_t, double, double*, std::size_t) {
  return false;
}

#endif

}  // namespace xgrad::blas::detail
