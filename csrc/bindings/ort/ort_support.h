// The onnxruntime side of every op, written once: reading tensors and attributes, status-returning
// error handling (no C++ exception crosses into onnxruntime), ParallelFor on onnxruntime's thread
// pool, and the one kernel wrapper (Kernel<Adapter>, Op<Adapter>) each op instantiates with a small
// adapter (see register.cc) that maps onnxruntime inputs onto the operator's logic in ops/.
#pragma once

#define ORT_API_MANUAL_INIT
#include "onnxruntime_cxx_api.h"
#undef ORT_API_MANUAL_INIT

#include <memory>
#include <string>
#include <vector>

#include "ops/common.h"
#include "ukernels/config.h"

namespace cdops {
namespace ort {

// An input tensor, read either from the kernel info (constant initializer) or the context.
struct Tensor {
  bool present = false;
  ONNXTensorElementDataType type = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
  std::vector<int64_t> shape;
  std::size_t count = 0;
  const void* data = nullptr;
};

inline Tensor read_value(const Ort::ConstValue& v) {
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

inline const float* as_float(const Tensor& t) { return static_cast<const float*>(t.data); }

inline const char* type_name(ONNXTensorElementDataType t) {
  switch (t) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: return "float32";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE: return "float64";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16: return "float16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: return "int64";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32: return "int32";
    default: return "another type";
  }
}

inline void check_type(const Tensor& t, ONNXTensorElementDataType want, const std::string& what) {
  if (t.type != want) throw InvalidArgument(what + " must be " + type_name(want) + ", got " + type_name(t.type));
}

inline std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (std::size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

// The one place attributes are read (an op's adapter asks it for each attribute by name).
//
// Every attribute is checked for its type as well as its value, as stock onnxruntime does ("Mismatched
// attribute type"): onnxruntime's getters each read one field of the attribute, so a value of another
// type (a float `relu`, ints for `group`, a string) would read as absent and silently become the default.
class Attributes {
 public:
  Attributes(const Ort::ConstKernelInfo& info, const char* op) : info_(info), op_(op) {}

  // An int attribute; dflt when absent (nullptr: required).
  int64_t get_int(const char* name, const int64_t* dflt = nullptr) const {
    int64_t v = 0;
    const bool is_int = ok(Ort::GetApi().KernelInfoGetAttribute_int64(info_, name, &v));
    const std::string other = other_kind(name, Kind::kInt);
    if (!other.empty()) mismatched(name, "an int", other);
    if (!is_int) {
      if (dflt) return *dflt;
      throw InvalidArgument(std::string(op_) + ": missing attribute '" + name + "' (an int)");
    }
    return v;
  }

  // A required ints attribute (at least one value).
  std::vector<int64_t> get_ints(const char* name) const {
    std::size_t n = 0;
    const bool readable = ok(Ort::GetApi().KernelInfoGetAttributeArray_int64(info_, name, nullptr, &n));
    const std::string other = other_kind(name, Kind::kInts);
    if (!other.empty()) mismatched(name, "ints", other);
    if (!readable || n == 0)
      throw InvalidArgument(std::string(op_) + ": missing attribute '" + name + "' (ints, at least one)");
    std::vector<int64_t> v(n);
    if (!ok(Ort::GetApi().KernelInfoGetAttributeArray_int64(info_, name, v.data(), &n)))
      throw InvalidArgument(std::string(op_) + ": cannot read attribute '" + name + "'");
    return v;
  }

  // A string attribute; dflt when absent (nullptr: required).
  std::string get_string(const char* name, const char* dflt = nullptr) const {
    std::size_t n = 0;
    const bool is_string = ok(Ort::GetApi().KernelInfoGetAttribute_string(info_, name, nullptr, &n));
    const std::string other = other_kind(name, Kind::kString);
    if (!other.empty()) mismatched(name, "a string", other);
    if (!is_string) {
      if (dflt) return dflt;
      throw InvalidArgument(std::string(op_) + ": missing attribute '" + name + "' (a string)");
    }
    std::string v(n, '\0');  // n counts the terminating zero
    if (!ok(Ort::GetApi().KernelInfoGetAttribute_string(info_, name, &v[0], &n)))
      throw InvalidArgument(std::string(op_) + ": cannot read attribute '" + name + "'");
    v.resize(n > 0 ? n - 1 : 0);
    return v;
  }

 private:
  enum class Kind { kInt, kInts, kString };

  static bool ok(OrtStatus* st) {
    if (!st) return true;
    Ort::GetApi().ReleaseStatus(st);
    return false;
  }

  // The kind of value `name` holds when it is not the wanted one ("" when absent or of the wanted
  // kind).
  std::string other_kind(const char* name, Kind want) const {
    const OrtApi& api = Ort::GetApi();
    float f = 0;
    int64_t i = 0;
    std::size_t n = 0;
    if (ok(api.KernelInfoGetAttribute_float(info_, name, &f))) return "a float";
    if (want != Kind::kString && ok(api.KernelInfoGetAttribute_string(info_, name, nullptr, &n))) return "a string";
    n = 0;
    if (ok(api.KernelInfoGetAttributeArray_float(info_, name, nullptr, &n)) && n > 0) return "floats";
    if (want != Kind::kInt && ok(api.KernelInfoGetAttribute_int64(info_, name, &i))) return "one int";
    n = 0;
    if (want != Kind::kInts && ok(api.KernelInfoGetAttributeArray_int64(info_, name, nullptr, &n)) && n > 0)
      return "ints";
    OrtAllocator* alloc = nullptr;
    OrtValue* tensor = nullptr;
    if (ok(api.GetAllocatorWithDefaultOptions(&alloc)) &&
        ok(api.KernelInfoGetAttribute_tensor(info_, name, alloc, &tensor))) {
      api.ReleaseValue(tensor);
      return "a tensor";
    }
    return "";
  }

  [[noreturn]] void mismatched(const char* name, const char* want, const std::string& got) const {
    throw InvalidArgument(std::string(op_) + ": mismatched attribute type: '" + name + "' must be " + want +
                          ", got " + got);
  }

  const Ort::ConstKernelInfo& info_;
  const char* op_;
};

// Runs f; any exception becomes an error status.
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

inline ParallelFor make_parallel(const Ort::KernelContext& ctx) {
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

// The kernel of one op. Input 0 is X [N, C, H, W] (float32); inputs 1.. are parameters, packed once
// at kernel creation when all are constant initializers, else at every run. The adapter A gives:
//   kName, kInputs (most inputs), kXDims ("[N, C, H, W]" for messages), types Op and Packed;
//   make(const Attributes&) -> std::unique_ptr<Op>;        check_input_count(n);
//   input_type(i), optional(i);                            check_x(shape) (op-specific);
//   pack(const Op&, const Tensor* t (t[1..n-1]), std::size_t n, const MicroKernels&, Packed&);
//   run(const Op&, const Packed&, const Tensor& x, Ort::KernelContext&, const ParallelFor&).
template <typename A>
class Kernel {
 public:
  Kernel(const OrtApi& api, const OrtKernelInfo* raw) : api_(api) {
    Ort::ConstKernelInfo info(raw);
    op_ = A::make(Attributes(info, A::kName));
    const std::size_t n = info.GetInputCount();
    A::check_input_count(n);
    Tensor t[A::kInputs];
    bool all_const = true;
    for (std::size_t i = 1; i < n; ++i) {
      int is_const = 0;
      Ort::ConstValue v = info.GetTensorConstantInput(i, &is_const);
      if (!is_const) {
        all_const = false;
        break;
      }
      t[i] = read_value(v);
    }
    if (all_const) {
      packed_ = std::make_unique<typename A::Packed>();
      A::pack(*op_, t, n, *mk_, *packed_);
    }
  }

  OrtStatusPtr ComputeV2(OrtKernelContext* raw) {
    return guarded(api_, [&] { compute(raw); });
  }

 private:
  void compute(OrtKernelContext* raw) {
    Ort::KernelContext ctx(raw);
    const std::size_t n = ctx.GetInputCount();
    A::check_input_count(n);
    const std::string op = A::kName;
    const Tensor x = read_value(ctx.GetInput(0));
    if (!x.present) throw InvalidArgument(op + ": input X is missing");
    check_type(x, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, op + ": input X");
    if (x.shape.size() != 4)
      throw InvalidArgument(op + ": X must have rank 4 " + A::kXDims + ", got shape " + shape_str(x.shape));
    for (int64_t d : x.shape)
      if (d < 0) throw InvalidArgument(op + ": X has a negative dimension " + shape_str(x.shape));
    A::check_x(x.shape);
    const typename A::Packed* p = packed_.get();
    typename A::Packed local;
    if (!p) {
      Tensor t[A::kInputs];
      for (std::size_t i = 1; i < n; ++i) t[i] = read_value(ctx.GetInput(i));
      A::pack(*op_, t, n, *mk_, local);
      p = &local;
    }
    A::run(*op_, *p, x, ctx, make_parallel(ctx));
  }

  const OrtApi& api_;
  std::unique_ptr<typename A::Op> op_;
  std::unique_ptr<typename A::Packed> packed_;
  const MicroKernels* mk_ = &select_kernels();
};

template <typename A>
struct Op : Ort::CustomOpBase<Op<A>, Kernel<A>, true> {
  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const {
    return guarded(api, [&] { *kernel = new Kernel<A>(api, info); });
  }
  const char* GetName() const { return A::kName; }
  std::size_t GetInputTypeCount() const { return A::kInputs; }
  ONNXTensorElementDataType GetInputType(std::size_t i) const { return A::input_type(i); }
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(std::size_t i) const {
    return A::optional(i) ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;
  }
  std::size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(std::size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
};

}  // namespace ort
}  // namespace cdops
