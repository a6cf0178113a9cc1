// f32-conv1x1, AVX-512VL at 256 bits (8 floats, 32 registers): the generic vector kernel.
#define CD_UK_ISA avx512y
#include "ukernels/f32-conv1x1/generic.inc"
