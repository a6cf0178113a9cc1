// The onnxruntime binding: the ops' adapters onto ops/ (which inputs and attributes each op has,
// their type and shape checks) and RegisterCustomOps (domain ai.condense_deploy, version 1). The
// kernel wrapper and the helpers every op shares are in ort_support.h.
#include <mutex>
#include <string>
#include <vector>

#include "bindings/ort/ort_support.h"
#include "ops/dense_block.h"
#ifdef CONDENSE_DEPLOY_GROUPED_CONV
#include "ops/grouped_conv.h"
#endif

namespace cdops {
namespace ort {
namespace {

constexpr const char* kDomain = "ai.condense_deploy";

// ------------------------------------------------------------------------------------------------
// DenseBlock(X, index, bn_scale, bn_shift, w1, b1, w3) -> Y
struct DenseBlockAdapter {
  using Op = DenseBlock;
  using Packed = DenseBlockPacked;
  static constexpr const char* kName = "DenseBlock";
  static constexpr std::size_t kInputs = 7;
  static constexpr const char* kXDims = "[N, C0, H, W]";

  static ONNXTensorElementDataType input_type(std::size_t i) {
    return i == 1 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64 : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  }
  static bool optional(std::size_t) { return false; }

  static std::unique_ptr<Op> make(const Attributes& attrs) {
    DenseBlockAttrs a;
    a.growth = attrs.get_int("growth");
    a.mid = attrs.get_int("mid");
    a.groups_1x1 = attrs.get_int("groups_1x1");
    a.groups_3x3 = attrs.get_int("groups_3x3");
    a.kept = attrs.get_ints("kept");
    const std::string precision = attrs.get_string("precision", "fp32");
    if (precision == "fp16")
      a.precision = Precision::fp16;
    else if (precision != "fp32")
      throw InvalidArgument("DenseBlock: attribute 'precision' must be \"fp32\" or \"fp16\", got \"" + precision +
                            "\"");
    return std::make_unique<Op>(a);
  }

  static void check_input_count(std::size_t n) {
    if (n != kInputs) throw InvalidArgument("DenseBlock: expects 7 inputs");
  }

  static void check_x(const std::vector<int64_t>& s) {
    if (s[1] < 1 || s[2] < 1 || s[3] < 1)
      throw InvalidArgument("DenseBlock: X must have C0, H, W >= 1, got shape " + shape_str(s));
  }

  static void pack(const Op& op, const Tensor* t, std::size_t, const MicroKernels& mk, Packed& out) {
    static const char* names[7] = {"X", "index", "bn_scale", "bn_shift", "w1", "b1", "w3"};
    for (std::size_t i = 1; i < kInputs; ++i) {
      if (!t[i].present) throw InvalidArgument(std::string("DenseBlock: input ") + names[i] + " is missing");
      check_type(t[i], input_type(i), std::string("DenseBlock: input ") + names[i]);
      if (t[i].shape.size() != 1)  // the contract's parameters are flat: another rank is another layout
        throw InvalidArgument(std::string("DenseBlock: input ") + names[i] + " must have rank 1, got shape " +
                              shape_str(t[i].shape));
    }
    DenseBlockParams p;
    p.index = static_cast<const int64_t*>(t[1].data);
    p.n_index = t[1].count;
    p.scale = as_float(t[2]);
    p.n_scale = t[2].count;
    p.shift = as_float(t[3]);
    p.n_shift = t[3].count;
    p.w1 = as_float(t[4]);
    p.n_w1 = t[4].count;
    p.b1 = as_float(t[5]);
    p.n_b1 = t[5].count;
    p.w3 = as_float(t[6]);
    p.n_w3 = t[6].count;
    op.pack(p, mk, out);
  }

  static void run(const Op& op, const Packed& p, const Tensor& x, Ort::KernelContext& ctx, const ParallelFor& par) {
    const int64_t N = x.shape[0], C0 = x.shape[1], H = x.shape[2], W = x.shape[3];
    const int64_t Ctot = C0 + op.layers() * op.growth();
    auto y = ctx.GetOutput(0, std::vector<int64_t>{N, Ctot, H, W});
    op.run(p, as_float(x), N, C0, H, W, y.GetTensorMutableData<float>(), par);
  }
};

#ifdef CONDENSE_DEPLOY_GROUPED_CONV
// ------------------------------------------------------------------------------------------------
// GroupedConv(X, W, B?) -> Y
struct GroupedConvAdapter {
  using Op = GroupedConv;
  using Packed = GroupedConvPacked;
  static constexpr const char* kName = "GroupedConv";
  static constexpr std::size_t kInputs = 3;
  static constexpr const char* kXDims = "[N, C, H, W]";

  static ONNXTensorElementDataType input_type(std::size_t) { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
  static bool optional(std::size_t i) { return i == 2; }

  static std::unique_ptr<Op> make(const Attributes& attrs) {
    const int64_t one = 1, zero = 0;
    return std::make_unique<Op>(attrs.get_int("group", &one), attrs.get_int("relu", &zero));
  }

  static void check_input_count(std::size_t n) {
    if (n < 2 || n > kInputs) throw InvalidArgument("GroupedConv: expects 2 or 3 inputs");
  }

  static void check_x(const std::vector<int64_t>&) {}

  static void pack(const Op& op, const Tensor* t, std::size_t n, const MicroKernels& mk, Packed& out) {
    const Tensor& w = t[1];
    const Tensor none;
    const Tensor& b = n > 2 ? t[2] : none;
    if (!w.present) throw InvalidArgument("GroupedConv: input W is missing");
    check_type(w, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, "GroupedConv: input W");
    if (b.present) check_type(b, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, "GroupedConv: input B");
    if (b.present && b.shape.size() != 1)
      throw InvalidArgument("GroupedConv: B must have rank 1, got shape " + shape_str(b.shape));
    if (b.present && b.count == 0)  // an empty bias is not "no bias": leave the input out for that
      throw InvalidArgument("GroupedConv: B has 0 elements; a bias has one per output channel "
                            "(leave the input out for no bias)");
    op.pack(as_float(w), w.shape.data(), w.shape.size(), b.present ? as_float(b) : nullptr,
            b.present ? static_cast<int64_t>(b.count) : 0, mk, out);
  }

  static void run(const Op& op, const Packed& p, const Tensor& x, Ort::KernelContext& ctx, const ParallelFor& par) {
    const int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
    if (H < 1 || W < 1) throw InvalidArgument("GroupedConv: X must have H, W >= 1, got " + shape_str(x.shape));
    auto y = ctx.GetOutput(0, std::vector<int64_t>{N, p.O, H, W});
    op.run(p, as_float(x), N, C, H, W, y.GetTensorMutableData<float>(), par);
  }
};
#endif

// Domains handed to sessions live until the library is unloaded.
struct Registry {
  std::mutex mu;
  std::vector<OrtCustomOpDomain*> domains;
  ~Registry() {
    for (OrtCustomOpDomain* d : domains) Ort::GetApi().ReleaseCustomOpDomain(d);
  }
};
Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace
}  // namespace ort
}  // namespace cdops

// The onnxruntime C API version the library was built against (RegisterCustomOps needs at least it):
// `condense-deploy info` and the loader compare it with what the installed onnxruntime offers.
extern "C" __attribute__((visibility("default"))) int condense_deploy_ort_api_version(void) {
  return ORT_API_VERSION;
}

extern "C" __attribute__((visibility("default"))) OrtStatus* ORT_API_CALL
RegisterCustomOps(OrtSessionOptions* options, const OrtApiBase* api_base) {
  using namespace cdops::ort;
  const OrtApi* api = api_base->GetApi(ORT_API_VERSION);
  if (!api) {
    // An onnxruntime older than our headers: report it through the oldest API, which every
    // onnxruntime provides (rather than register nothing and claim success).
    const OrtApi* v1 = api_base->GetApi(1);
    const std::string msg = "condense_deploy ops: built for onnxruntime C API version " +
                            std::to_string(ORT_API_VERSION) + ", which this onnxruntime (" +
                            api_base->GetVersionString() + ") does not provide; use a newer onnxruntime";
    return v1 ? v1->CreateStatus(ORT_FAIL, msg.c_str()) : nullptr;
  }
  Ort::InitApi(api);
  static Op<DenseBlockAdapter> dense_block;
#ifdef CONDENSE_DEPLOY_GROUPED_CONV
  static Op<GroupedConvAdapter> grouped_conv;
#endif
  OrtCustomOpDomain* domain = nullptr;
  if (OrtStatus* st = api->CreateCustomOpDomain(kDomain, &domain)) return st;
  {
    auto& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    r.domains.push_back(domain);
  }
  if (OrtStatus* st = api->CustomOpDomain_Add(domain, &dense_block)) return st;
#ifdef CONDENSE_DEPLOY_GROUPED_CONV
  if (OrtStatus* st = api->CustomOpDomain_Add(domain, &grouped_conv)) return st;
#endif
  return api->AddCustomOpDomain(options, domain);
}
