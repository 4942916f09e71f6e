// LSQ fake quantization on CPU: forward and both gradients, each in one pass over memory.
//
// The forward reads x once and writes the output once. The backward recomputes v = x / s from
// the saved input (cheaper than storing v and round(v)), writes grad_x and accumulates the step
// gradient in the same pass. Rounding is half to even, like torch.round, by the float magic
// number 1.5 * 2^23 (exact for |v| < 2^22; larger values are clipped anyway), which vectorizes
// on any CPU. Built with -fno-trapping-math (so selects vectorize), -ffp-contract=off (no FMA:
// the forward stays bit-identical to torch's), -fopenmp (ATen's parallel_for uses OpenMP threads,
// torch.set_num_threads) and, where torch reports AVX2, -mavx2.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

namespace {

constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23
constexpr int64_t kGrain = 1 << 15;

inline float round_even(float v) {
  float r = (v + kMagic) - kMagic;
  return std::abs(v) < 4194304.0f ? r : v;  // beyond 2^22 (and inf, nan): v itself
}

// One block of elements sharing the step: out = clamp(round(x * inv)) * step.
void forward_block(const float* __restrict x, float* __restrict out, int64_t n, float step, float inv,
                   float qmin, float qmax) {
  for (int64_t i = 0; i < n; ++i) {
    out[i] = std::min(std::max(round_even(x[i] * inv), qmin), qmax) * step;
  }
}

// One element of the backward: writes grad_x, returns g * d v_hat / d s (before the scale).
// round(v) is inside the range exactly when clamping leaves it unchanged (NaN never is).
inline float backward_element(float x, float g, float* __restrict gx, float inv, float qmin, float qmax) {
  const float v = x * inv;
  const float r = round_even(v);
  const float c = std::min(std::max(r, qmin), qmax);
  const bool inside = r == c;
  *gx = inside ? g : 0.0f;
  return g * (inside ? r - v : c);
}

// One block: grad_x where round(v) is in range, else 0; returns the sum of g * d v_hat / d s.
// The simd reduction lets the compiler keep one partial sum per vector lane.
double backward_block(const float* __restrict x, const float* __restrict g, float* __restrict gx,
                      int64_t n, float inv, float qmin, float qmax) {
  float total = 0.0f;
#pragma omp simd reduction(+ : total)
  for (int64_t i = 0; i < n; ++i) total += backward_element(x[i], g[i], gx + i, inv, qmin, qmax);
  return total;
}

// x is processed as its flat storage: it must be dense, in the default or the channels-last
// layout (dim 0, the channel of a per-channel step, is outermost in both).
void check_inputs(const torch::Tensor& x, const torch::Tensor& step) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == torch::kFloat &&
                  (x.is_contiguous() || x.is_contiguous(at::MemoryFormat::ChannelsLast)),
              "lsq_cpu: x must be a dense float32 CPU tensor (contiguous or channels last)");
  TORCH_CHECK(step.device().is_cpu() && step.scalar_type() == torch::kFloat && step.is_contiguous(),
              "lsq_cpu: step must be a contiguous float32 CPU tensor");
  TORCH_CHECK(step.numel() == 1 || (x.dim() >= 1 && step.numel() == x.size(0)),
              "lsq_cpu: step must have one value or one per channel (dim 0)");
}

}  // namespace

torch::Tensor lsq_forward(torch::Tensor x, torch::Tensor step, int64_t qmin, int64_t qmax) {
  check_inputs(x, step);
  auto out = torch::empty_like(x);
  const float* px = x.data_ptr<float>();
  float* po = out.data_ptr<float>();
  const float* ps = step.data_ptr<float>();
  const float lo = static_cast<float>(qmin), hi = static_cast<float>(qmax);
  const int64_t n = x.numel();
  if (step.numel() == 1) {
    const float s = ps[0], inv = 1.0f / s;
    at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
      forward_block(px + begin, po + begin, end - begin, s, inv, lo, hi);
    });
  } else {
    const int64_t channels = step.numel(), inner = n / channels;
    at::parallel_for(0, channels, std::max<int64_t>(1, kGrain / std::max<int64_t>(inner, 1)),
                     [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        forward_block(px + c * inner, po + c * inner, inner, ps[c], 1.0f / ps[c], lo, hi);
      }
    });
  }
  return out;
}

std::vector<torch::Tensor> lsq_backward(torch::Tensor grad, torch::Tensor x, torch::Tensor step,
                                        int64_t qmin, int64_t qmax, double grad_scale) {
  check_inputs(x, step);
  TORCH_CHECK(grad.strides() == x.strides(), "lsq_cpu: grad must have the layout of x");
  auto grad_x = torch::empty_like(x);
  auto grad_step = torch::empty_like(step);
  const float* px = x.data_ptr<float>();
  const float* pg = grad.data_ptr<float>();
  float* pgx = grad_x.data_ptr<float>();
  const float* ps = step.data_ptr<float>();
  float* pgs = grad_step.data_ptr<float>();
  const float lo = static_cast<float>(qmin), hi = static_cast<float>(qmax);
  const int64_t n = x.numel();
  if (step.numel() == 1) {
    const float inv = 1.0f / ps[0];
    const int64_t chunks = (n + kGrain - 1) / kGrain;
    std::vector<double> partial(std::max<int64_t>(chunks, 1), 0.0);
    at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        const int64_t start = c * kGrain, len = std::min(kGrain, n - start);
        partial[c] = backward_block(px + start, pg + start, pgx + start, len, inv, lo, hi);
      }
    });
    double total = 0.0;
    for (double p : partial) total += p;
    pgs[0] = static_cast<float>(total * grad_scale);
  } else {
    const int64_t channels = step.numel(), inner = n / channels;
    at::parallel_for(0, channels, std::max<int64_t>(1, kGrain / std::max<int64_t>(inner, 1)),
                     [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        double total = backward_block(px + c * inner, pg + c * inner, pgx + c * inner, inner,
                                      1.0f / ps[c], lo, hi);
        pgs[c] = static_cast<float>(total * grad_scale);
      }
    });
  }
  return {grad_x, grad_step};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &lsq_forward, "LSQ fake quantization forward (CPU)");
  m.def("backward", &lsq_backward, "LSQ fake quantization backward: grad_x, grad_step (CPU)");
}
