// The ISAs the micro-kernels are built for and the register budget each one's tiles follow from.
// One place for these numbers: the generic vector kernels (generic/) size their tiles from them
// and config.cc puts them in each ISA's table. The flags each ISA compiles with are in
// csrc/CMakeLists.txt (chosen by a kernel file's name, ukernels/<family>/<isa>.cc).
#pragma once

namespace cdops {

struct IsaParams {
  const char* name;  // as CONDENSE_DEPLOY_ISA and condense_deploy_isas() spell it
  int vl;            // floats per vector
  int regs;          // vector registers
  int mr_max;        // outputs per register tile of the position-vector convolutions (largest)
  int mrf_max;       // outputs per register tile of the 1x1 with the gather fused (largest)
};

namespace isa_params {
constexpr IsaParams scalar{"scalar", 1, 16, 4, 8};
constexpr IsaParams sse2{"sse2", 4, 16, 4, 8};
constexpr IsaParams avx2{"avx2", 8, 16, 4, 8};
// avx512 fuses the gather into the 1x1 for up to 32 outputs (four 8-output tiles; C=G=4's 28x28
// block 6 % faster than the separate gather and 4 x 6 tiles)
constexpr IsaParams avx512{"avx512", 16, 32, 6, 32};
constexpr IsaParams avx512y{"avx512y", 8, 32, 6, 16};  // AVX-512VL at 256 bits: 32 registers of 8 floats
constexpr IsaParams neon{"neon", 4, 32, 6, 16};
}  // namespace isa_params

}  // namespace cdops
