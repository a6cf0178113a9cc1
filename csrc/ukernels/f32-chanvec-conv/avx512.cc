// f32-chanvec-conv, AVX-512F/VL/DQ at 512 bits (16 floats, 32 registers): the generic vector kernel.
#define CD_UK_ISA avx512
#include "ukernels/f32-chanvec-conv/generic.inc"
