// The onnxruntime binding: op registration (domain ai.condense_deploy, version 1), reading inputs
// and attributes, type/shape checks, packing constant inputs at kernel creation, ParallelFor.
// All operator logic lives in dense_block.cc / grouped_conv.cc.
#define ORT_API_MANUAL_INIT
#include "onnxruntime_cxx_api.h"
#undef ORT_API_MANUAL_INIT

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dense_block.h"
#include "grouped_conv.h"

namespace cdops {
namespace {

constexpr const char* kDomain = "ai.condense_deploy";

// An input tensor, read either from the kernel info (constant initializer) or the context.
struct Tensor {
  bool present = false;
  ONNXTensorElementDataType type = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
  std::vector<int64_t> shape;
  std::size_t count = 0;
  const void* data = nullptr;
};

Tensor read_value(const Ort::ConstValue& v) {
  Tensor t;
  if (!v) return t;
  if (!v.IsTensor()) throw InvalidArgument("an input is not a tensor");
  auto info = v.GetTensorTypeAndShapeInfo();
  t.present = true;
  t.type = info.GetElementType();
  t.shape = info.GetShape();
  t.count = info.GetElementCount();
  t.data = v.GetTensorRawData();
  return t;
}

const char* type_name(ONNXTensorElementDataType t) {
  switch (t) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: return "float32";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE: return "float64";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16: return "float16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: return "int64";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32: return "int32";
    default: return "another type";
  }
}

void check_type(const Tensor& t, ONNXTensorElementDataType want, const std::string& what) {
  if (t.type != want)
    throw InvalidArgument(what + " must be " + type_name(want) + ", got " + type_name(t.type));
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (std::size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

int64_t attr_int(const Ort::ConstKernelInfo& info, const char* op, const char* name, const int64_t* dflt) {
  int64_t v = 0;
  OrtStatus* st = Ort::GetApi().KernelInfoGetAttribute_int64(info, name, &v);
  if (st) {
    Ort::GetApi().ReleaseStatus(st);
    if (dflt) return *dflt;
    throw InvalidArgument(std::string(op) + ": missing or non-int attribute '" + name + "'");
  }
  return v;
}

std::vector<int64_t> attr_ints(const Ort::ConstKernelInfo& info, const char* op, const char* name) {
  std::size_t n = 0;
  OrtStatus* st = Ort::GetApi().KernelInfoGetAttributeArray_int64(info, name, nullptr, &n);
  if (st) {
    Ort::GetApi().ReleaseStatus(st);
    throw InvalidArgument(std::string(op) + ": missing or non-ints attribute '" + name + "'");
  }
  std::vector<int64_t> v(n);
  if (n) {
    st = Ort::GetApi().KernelInfoGetAttributeArray_int64(info, name, v.data(), &n);
    if (st) {
      Ort::GetApi().ReleaseStatus(st);
      throw InvalidArgument(std::string(op) + ": cannot read attribute '" + name + "'");
    }
  }
  return v;
}

template <typename F>
OrtStatusPtr guarded(const OrtApi& api, F&& f) {
  try {
    f();
    return nullptr;
  } catch (const InvalidArgument& e) {
    return api.CreateStatus(ORT_INVALID_ARGUMENT, e.what());
  } catch (const Ort::Exception& e) {
    return api.CreateStatus(e.GetOrtErrorCode(), e.what());
  } catch (const std::bad_alloc&) {
    return api.CreateStatus(ORT_FAIL, "condense_deploy ops: out of memory");
  } catch (const std::exception& e) {
    return api.CreateStatus(ORT_FAIL, e.what());
  } catch (...) {
    return api.CreateStatus(ORT_FAIL, "condense_deploy ops: unknown error");
  }
}

ParallelFor make_parallel(const Ort::KernelContext& ctx) {
  return [&ctx](std::size_t n, const std::function<void(std::size_t)>& fn) {
    if (n == 0) return;
    if (n == 1) {
      fn(0);
      return;
    }
    ctx.ParallelFor(
        [](void* p, std::size_t i) { (*static_cast<const std::function<void(std::size_t)>*>(p))(i); }, n, 0,
        const_cast<void*>(static_cast<const void*>(&fn)));
  };
}

const float* as_float(const Tensor& t) { return static_cast<const float*>(t.data); }

// ------------------------------------------------------------------------------------------------
// DenseBlock
class DenseBlockKernel {
 public:
  DenseBlockKernel(const OrtApi& api, const OrtKernelInfo* raw) : api_(api) {
    Ort::ConstKernelInfo info(raw);
    DenseBlockAttrs a;
    a.growth = attr_int(info, "DenseBlock", "growth", nullptr);
    a.mid = attr_int(info, "DenseBlock", "mid", nullptr);
    a.groups_1x1 = attr_int(info, "DenseBlock", "groups_1x1", nullptr);
    a.groups_3x3 = attr_int(info, "DenseBlock", "groups_3x3", nullptr);
    a.kept = attr_ints(info, "DenseBlock", "kept");
    op_ = std::make_unique<DenseBlock>(a);
    if (info.GetInputCount() != 7) throw InvalidArgument("DenseBlock: expects 7 inputs");
    Tensor t[7];
    bool all_const = true;
    for (std::size_t i = 1; i < 7 && all_const; ++i) {
      int is_const = 0;
      Ort::ConstValue v = info.GetTensorConstantInput(i, &is_const);
      if (!is_const) {
        all_const = false;
        break;
      }
      t[i] = read_value(v);
    }
    if (all_const) {
      packed_ = std::make_unique<DenseBlockPacked>();
      pack(t, *packed_);
    }
  }

  OrtStatusPtr ComputeV2(OrtKernelContext* raw) {
    return guarded(api_, [&] { compute(raw); });
  }

 private:
  void pack(const Tensor* t, DenseBlockPacked& out) const {
    static const char* names[7] = {"X", "index", "bn_scale", "bn_shift", "w1", "b1", "w3"};
    for (int i = 1; i < 7; ++i) {
      if (!t[i].present) throw InvalidArgument(std::string("DenseBlock: input ") + names[i] + " is missing");
      check_type(t[i], i == 1 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64 : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT,
                 std::string("DenseBlock: input ") + names[i]);
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
    op_->pack(p, *mk_, out);
  }

  void compute(OrtKernelContext* raw) {
    Ort::KernelContext ctx(raw);
    if (ctx.GetInputCount() != 7) throw InvalidArgument("DenseBlock: expects 7 inputs");
    const Tensor x = read_value(ctx.GetInput(0));
    if (!x.present) throw InvalidArgument("DenseBlock: input X is missing");
    check_type(x, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, "DenseBlock: input X");
    if (x.shape.size() != 4)
      throw InvalidArgument("DenseBlock: X must have rank 4 [N, C0, H, W], got shape " + shape_str(x.shape));
    for (int64_t d : x.shape)
      if (d < 0) throw InvalidArgument("DenseBlock: X has a negative dimension " + shape_str(x.shape));
    const int64_t N = x.shape[0], C0 = x.shape[1], H = x.shape[2], W = x.shape[3];
    if (C0 < 1 || H < 1 || W < 1)
      throw InvalidArgument("DenseBlock: X must have C0, H, W >= 1, got shape " + shape_str(x.shape));
    const DenseBlockPacked* p = packed_.get();
    DenseBlockPacked local;
    if (!p) {
      Tensor t[7];
      for (std::size_t i = 1; i < 7; ++i) t[i] = read_value(ctx.GetInput(i));
      pack(t, local);
      p = &local;
    }
    const int64_t Ctot = C0 + op_->layers() * op_->growth();
    auto y = ctx.GetOutput(0, std::vector<int64_t>{N, Ctot, H, W});
    float* Y = y.GetTensorMutableData<float>();
    op_->run(*p, as_float(x), N, C0, H, W, Y, make_parallel(ctx));
  }

  const OrtApi& api_;
  std::unique_ptr<DenseBlock> op_;
  std::unique_ptr<DenseBlockPacked> packed_;
  const MicroKernels* mk_ = &select_kernels();
};

struct DenseBlockOp : Ort::CustomOpBase<DenseBlockOp, DenseBlockKernel, true> {
  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const {
    return guarded(api, [&] { *kernel = new DenseBlockKernel(api, info); });
  }
  const char* GetName() const { return "DenseBlock"; }
  std::size_t GetInputTypeCount() const { return 7; }
  ONNXTensorElementDataType GetInputType(std::size_t i) const {
    return i == 1 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64 : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  }
  std::size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(std::size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
};

// ------------------------------------------------------------------------------------------------
// GroupedConv
class GroupedConvKernel {
 public:
  GroupedConvKernel(const OrtApi& api, const OrtKernelInfo* raw) : api_(api) {
    Ort::ConstKernelInfo info(raw);
    const int64_t one = 1, zero = 0;
    op_ = std::make_unique<GroupedConv>(attr_int(info, "GroupedConv", "group", &one),
                                        attr_int(info, "GroupedConv", "relu", &zero));
    const std::size_t n_in = info.GetInputCount();
    int w_const = 0, b_const = 1;
    Tensor w, b;
    w = read_value(info.GetTensorConstantInput(1, &w_const));
    if (n_in > 2) {
      b_const = 0;
      b = read_value(info.GetTensorConstantInput(2, &b_const));
    }
    if (w_const && b_const) {
      packed_ = std::make_unique<GroupedConvPacked>();
      pack(w, b, *packed_);
    }
  }

  OrtStatusPtr ComputeV2(OrtKernelContext* raw) {
    return guarded(api_, [&] { compute(raw); });
  }

 private:
  void pack(const Tensor& w, const Tensor& b, GroupedConvPacked& out) const {
    if (!w.present) throw InvalidArgument("GroupedConv: input W is missing");
    check_type(w, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, "GroupedConv: input W");
    if (b.present) check_type(b, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, "GroupedConv: input B");
    if (b.present && b.shape.size() != 1)
      throw InvalidArgument("GroupedConv: B must have rank 1, got shape " + shape_str(b.shape));
    op_->pack(as_float(w), w.shape.data(), w.shape.size(), b.present ? as_float(b) : nullptr,
              b.present ? static_cast<int64_t>(b.count) : 0, *mk_, out);
  }

  void compute(OrtKernelContext* raw) {
    Ort::KernelContext ctx(raw);
    const Tensor x = read_value(ctx.GetInput(0));
    if (!x.present) throw InvalidArgument("GroupedConv: input X is missing");
    check_type(x, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, "GroupedConv: input X");
    if (x.shape.size() != 4)
      throw InvalidArgument("GroupedConv: X must have rank 4 [N, C, H, W], got shape " + shape_str(x.shape));
    for (int64_t d : x.shape)
      if (d < 0) throw InvalidArgument("GroupedConv: X has a negative dimension " + shape_str(x.shape));
    const GroupedConvPacked* p = packed_.get();
    GroupedConvPacked local;
    if (!p) {
      Tensor w = read_value(ctx.GetInput(1)), b;
      if (ctx.GetInputCount() > 2) b = read_value(ctx.GetInput(2));
      pack(w, b, local);
      p = &local;
    }
    const int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
    if (H < 1 || W < 1) throw InvalidArgument("GroupedConv: X must have H, W >= 1, got " + shape_str(x.shape));
    auto y = ctx.GetOutput(0, std::vector<int64_t>{N, p->O, H, W});
    op_->run(*p, as_float(x), N, C, H, W, y.GetTensorMutableData<float>(), make_parallel(ctx));
  }
  const OrtApi& api_;
  std::unique_ptr<GroupedConv> op_;
  std::unique_ptr<GroupedConvPacked> packed_;
  const MicroKernels* mk_ = &select_kernels();
};

struct GroupedConvOp : Ort::CustomOpBase<GroupedConvOp, GroupedConvKernel, true> {
  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const {
    return guarded(api, [&] { *kernel = new GroupedConvKernel(api, info); });
  }
  const char* GetName() const { return "GroupedConv"; }
  std::size_t GetInputTypeCount() const { return 3; }
  ONNXTensorElementDataType GetInputType(std::size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(std::size_t i) const {
    return i == 2 ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;
  }
  std::size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(std::size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
};

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
}  // namespace cdops

// The onnxruntime C API version the library was built against (RegisterCustomOps needs at least it):
// `condense-deploy info` and the loader compare it with what the installed onnxruntime offers.
extern "C" __attribute__((visibility("default"))) int condense_deploy_ort_api_version(void) {
  return ORT_API_VERSION;
}

extern "C" __attribute__((visibility("default"))) OrtStatus* ORT_API_CALL
RegisterCustomOps(OrtSessionOptions* options, const OrtApiBase* api_base) {
  const OrtApi* api = api_base->GetApi(ORT_API_VERSION);
  if (!api) return nullptr;  // cannot even report: onnxruntime older than the header's API
  Ort::InitApi(api);
  static cdops::DenseBlockOp dense_block;
  static cdops::GroupedConvOp grouped_conv;
  OrtCustomOpDomain* domain = nullptr;
  if (OrtStatus* st = api->CreateCustomOpDomain(cdops::kDomain, &domain)) return st;
  {
    auto& r = cdops::registry();
    std::lock_guard<std::mutex> lock(r.mu);
    r.domains.push_back(domain);
  }
  if (OrtStatus* st = api->CustomOpDomain_Add(domain, &dense_block)) return st;
  if (OrtStatus* st = api->CustomOpDomain_Add(domain, &grouped_conv)) return st;
  return api->AddCustomOpDomain(options, domain);
}
