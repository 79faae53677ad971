// Submanifold 3x3x3 convolution on the CPU, fused (an XLA FFI custom call; see fused.py).
//
// Each output row reads its neighbours' input rows through the (N, 27) neighbour table and
// multiplies them by their offsets' weights into accumulators held in registers. Nothing of
// size (pairs x channels) is written to memory, which is what the pure-JAX pairs dataflow
// spends most of its time on at the small channel counts of the label-efficiency benchmark
// (gathered rows, per-chunk products, scatter-add: docs/benchmarks.md).
//
//   ws3d_subm_conv        out[i] = sum_k x[nbr[i, k']] @ w[k],  k' = k, or K - 1 - k with mirror
//   ws3d_subm_conv_wgrad  gw[k]  = sum_i x[nbr[i, k]]^T g[i]
//
// over a table of K <= 27 columns: the 27 neighbours of the submanifold convolution, or the 8
// child slots of the strided convolution and its transpose (fused.py builds those tables).
//
// A neighbour index outside [0, rows of x) is a missing neighbour. The neighbourhood is
// symmetric (j is i's neighbour at offset k iff i is j's at 26 - k), so the input gradient is
// the forward with mirror set and each offset's weight transposed. Every output row is summed
// by one thread in a fixed order, and the weight gradient's per-block partial sums are added in
// block order: results do not depend on the thread count or on scheduling.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int kOffsets = 27;

struct Progress {
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
};

// body(b) for every b in [0, blocks), on this thread and on the pool's; returns when all are done.
// A helper that starts after the work ran out touches only the shared counters it keeps alive.
template <typename Body>
void ParallelBlocks(ffi::ThreadPool& pool, int64_t blocks, Body body) {
  if (blocks <= 1) {
    for (int64_t b = 0; b < blocks; ++b) body(b);
    return;
  }
  auto progress = std::make_shared<Progress>();
  auto work = [progress, blocks, body]() {
    for (int64_t b; (b = progress->next.fetch_add(1)) < blocks;) {
      body(b);
      progress->done.fetch_add(1, std::memory_order_release);
    }
  };
  int64_t helpers = std::min<int64_t>(pool.num_threads(), blocks - 1);
  for (int64_t h = 0; h < helpers; ++h) pool.Schedule(decltype(work)(work));
  work();
  while (progress->done.load(std::memory_order_acquire) < blocks) std::this_thread::yield();
}

// Rows [r0, r1) of out, output channels [o0, o0 + OT). Each row's present neighbours are listed
// first, without branches (which neighbours exist is close to random, and a mispredicted branch
// per offset cost more than the arithmetic at 8-16 channels). U partial sums over the input
// channels keep U independent chains of fused multiply-adds in flight.
template <int OT, int U>
void ConvTile(const float* x, int64_t nin, int ci, const float* w, int co, const int32_t* nbr, int K,
              bool mirror, int64_t r0, int64_t r1, int o0, float* out) {
  const int64_t wstride = static_cast<int64_t>(ci) * co;
  for (int64_t i = r0; i < r1; ++i) {
    const int32_t* nb = nbr + i * K;
    int32_t js[kOffsets], ks[kOffsets];
    int m = 0;
    for (int k = 0; k < K; ++k) {
      const int32_t j = nb[mirror ? K - 1 - k : k];
      js[m] = j;
      ks[m] = k;
      m += (j >= 0) & (j < nin);
    }
    float acc[U][OT] = {};
    for (int t = 0; t < m; ++t) {
      const float* xr = x + static_cast<int64_t>(js[t]) * ci;
      const float* wk = w + ks[t] * wstride + o0;
      int c = 0;
      for (; c + U <= ci; c += U) {
        for (int u = 0; u < U; ++u) {
          const float xv = xr[c + u];
          const float* wr = wk + static_cast<int64_t>(c + u) * co;
          for (int o = 0; o < OT; ++o) acc[u][o] += xv * wr[o];
        }
      }
      for (; c < ci; ++c) {
        const float xv = xr[c];
        const float* wr = wk + static_cast<int64_t>(c) * co;
        for (int o = 0; o < OT; ++o) acc[0][o] += xv * wr[o];
      }
    }
    for (int u = 1; u < U; ++u)
      for (int o = 0; o < OT; ++o) acc[0][o] += acc[u][o];
    std::memcpy(out + i * co + o0, acc[0], sizeof(float) * OT);
  }
}

// The pairs (input row j, output row i) of offset k among rows [r0, r1), listed without branches
// (which neighbours exist is close to random: a branch per row and offset mispredicts often).
struct PairList {
  std::vector<int32_t> in, out;
  int64_t size = 0;

  void Collect(const int32_t* nbr, int K, int64_t nin, int k, int64_t r0, int64_t r1) {
    in.resize(static_cast<size_t>(r1 - r0));
    out.resize(static_cast<size_t>(r1 - r0));
    size = 0;
    for (int64_t i = r0; i < r1; ++i) {
      const int32_t j = nbr[i * K + k];
      in[size] = j;
      out[size] = static_cast<int32_t>(i);
      size += (j >= 0) & (j < nin);
    }
  }
};

// Input channels [c0, c0 + CT), output channels [o0, o0 + OT) of offset k's weight gradient,
// summed over its listed pairs in registers: gk += x[in]^T g[out].
template <int OT, int CT>
void WgradTile(const float* x, int ci, const float* g, int co, const PairList& pairs, int o0, int c0,
               float* gk) {
  float acc[CT][OT] = {};
  for (int64_t p = 0; p < pairs.size; ++p) {
    const float* xr = x + static_cast<int64_t>(pairs.in[p]) * ci + c0;
    const float* gr = g + static_cast<int64_t>(pairs.out[p]) * co + o0;
    for (int cc = 0; cc < CT; ++cc) {
      const float xv = xr[cc];
      for (int o = 0; o < OT; ++o) acc[cc][o] += xv * gr[o];
    }
  }
  for (int cc = 0; cc < CT; ++cc)
    for (int o = 0; o < OT; ++o) gk[static_cast<int64_t>(c0 + cc) * co + o0 + o] += acc[cc][o];
}

// The widest output tile that divides co (channel counts of these networks are multiples of 8;
// others take tiles of 1).
template <template <int> class Kernel, typename... Args>
void ByTile(int co, const Args&... args) {
  if (co % 64 == 0) {
    for (int o0 = 0; o0 < co; o0 += 64) Kernel<64>::Run(args..., o0);
  } else if (co % 48 == 0) {
    for (int o0 = 0; o0 < co; o0 += 48) Kernel<48>::Run(args..., o0);
  } else if (co % 32 == 0) {
    for (int o0 = 0; o0 < co; o0 += 32) Kernel<32>::Run(args..., o0);
  } else if (co % 24 == 0) {
    for (int o0 = 0; o0 < co; o0 += 24) Kernel<24>::Run(args..., o0);
  } else if (co % 16 == 0) {
    for (int o0 = 0; o0 < co; o0 += 16) Kernel<16>::Run(args..., o0);
  } else if (co % 8 == 0) {
    for (int o0 = 0; o0 < co; o0 += 8) Kernel<8>::Run(args..., o0);
  } else {
    for (int o0 = 0; o0 < co; o0 += 1) Kernel<1>::Run(args..., o0);
  }
}

template <int OT>
struct Conv {
  static void Run(const float* x, int64_t nin, int ci, const float* w, int co, const int32_t* nbr, int K,
                  bool mirror, int64_t r0, int64_t r1, float* out, int o0) {
    constexpr int U = OT >= 64 ? 1 : 2;
    ConvTile<OT, U>(x, nin, ci, w, co, nbr, K, mirror, r0, r1, o0, out);
  }
};

template <int OT>
struct Wgrad {
  // Input-channel tiles of at most 256 accumulators (16 zmm registers), then narrower ones for
  // what is left (every tile reads the offset's pairs again).
  static constexpr int kWide = OT <= 32 ? 8 : 4;
  static void Run(const float* x, int ci, const float* g, int co, const PairList& pairs, float* gk, int o0) {
    int c0 = 0;
    for (; c0 + kWide <= ci; c0 += kWide) WgradTile<OT, kWide>(x, ci, g, co, pairs, o0, c0, gk);
    for (; c0 + 4 <= ci; c0 += 4) WgradTile<OT, 4>(x, ci, g, co, pairs, o0, c0, gk);
    for (; c0 < ci; ++c0) WgradTile<OT, 1>(x, ci, g, co, pairs, o0, c0, gk);
  }
};

constexpr int64_t kRowsPerBlock = 512;

// The table (N, K) and the weight (K, Cin, Cout) agree on K, at most 27 offsets.
ffi::Error CheckShapes(int64_t nbr_rank, int64_t nbr_cols, int64_t w_rank, int64_t w_offsets) {
  if (nbr_rank != 2 || nbr_cols < 1 || nbr_cols > kOffsets)
    return ffi::Error::InvalidArgument("ws3d_subm_conv: the neighbour table must be (N, K), K <= 27");
  if (w_rank != 3 || w_offsets != nbr_cols)
    return ffi::Error::InvalidArgument("ws3d_subm_conv: the weight must be (K, Cin, Cout), K as the table's");
  return ffi::Error::Success();
}

ffi::Error SubmConv(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> w,
                    ffi::Buffer<ffi::S32> nbr, ffi::ResultBuffer<ffi::F32> out, int32_t mirror) {
  auto xd = x.dimensions(), wd = w.dimensions(), nd = nbr.dimensions();
  if (auto e = CheckShapes(nd.size(), nd.size() == 2 ? nd[1] : 0, wd.size(), wd.size() == 3 ? wd[0] : 0);
      e.failure())
    return e;
  if (xd.size() != 2 || xd[1] != wd[1])
    return ffi::Error::InvalidArgument("ws3d_subm_conv: x must be (N_in, Cin) with Cin = weight.shape[1]");
  const int64_t nin = xd[0], rows = nd[0];
  const int ci = static_cast<int>(wd[1]), co = static_cast<int>(wd[2]), K = static_cast<int>(nd[1]);
  const float* xp = x.typed_data();
  const float* wp = w.typed_data();
  const int32_t* np = nbr.typed_data();
  float* op = out->typed_data();
  const int64_t blocks = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
  ParallelBlocks(pool, blocks, [=](int64_t b) {
    const int64_t r0 = b * kRowsPerBlock, r1 = std::min(rows, r0 + kRowsPerBlock);
    ByTile<Conv>(co, xp, nin, ci, wp, co, np, K, mirror != 0, r0, r1, op);
  });
  return ffi::Error::Success();
}

ffi::Error SubmConvWgrad(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> g,
                         ffi::Buffer<ffi::S32> nbr, ffi::ResultBuffer<ffi::F32> gw) {
  auto xd = x.dimensions(), gd = g.dimensions(), nd = nbr.dimensions(), wd = gw->dimensions();
  if (auto e = CheckShapes(nd.size(), nd.size() == 2 ? nd[1] : 0, wd.size(), wd.size() == 3 ? wd[0] : 0);
      e.failure())
    return e;
  if (xd.size() != 2 || gd.size() != 2 || xd[1] != wd[1] || gd[1] != wd[2] || gd[0] != nd[0])
    return ffi::Error::InvalidArgument("ws3d_subm_conv_wgrad: x (N_in, Cin), g (N, Cout), nbr (N, K)");
  const int64_t nin = xd[0], rows = nd[0];
  const int ci = static_cast<int>(wd[1]), co = static_cast<int>(wd[2]), K = static_cast<int>(nd[1]);
  const int64_t size = static_cast<int64_t>(K) * ci * co;
  // A fixed number of row blocks, each with its own partial sum, added in block order below.
  const int64_t blocks = std::max<int64_t>(1, std::min<int64_t>(8, rows / kRowsPerBlock));
  const int64_t per_block = (rows + blocks - 1) / blocks;
  std::vector<float> partial(static_cast<size_t>(blocks * size), 0.0f);
  const float* xp = x.typed_data();
  const float* gp = g.typed_data();
  const int32_t* np = nbr.typed_data();
  float* pp = partial.data();
  ParallelBlocks(pool, blocks, [=](int64_t b) {
    const int64_t r0 = b * per_block, r1 = std::min(rows, r0 + per_block);
    PairList pairs;
    for (int k = 0; k < K && r0 < r1; ++k) {
      pairs.Collect(np, K, nin, k, r0, r1);
      ByTile<Wgrad>(co, xp, ci, gp, co, pairs, pp + b * size + static_cast<int64_t>(k) * ci * co);
    }
  });
  float* out = gw->typed_data();
  std::memcpy(out, pp, sizeof(float) * size);
  for (int64_t b = 1; b < blocks; ++b) {
    const float* src = pp + b * size;
    for (int64_t e = 0; e < size; ++e) out[e] += src[e];
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(Ws3dSubmConv, SubmConv,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int32_t>("mirror"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(Ws3dSubmConvWgrad, SubmConvWgrad,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());
