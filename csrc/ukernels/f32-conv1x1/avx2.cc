// f32-conv1x1, AVX2 + FMA (8 floats, 16 registers): the generic vector kernel.
#define CD_UK_ISA avx2
#include "ukernels/f32-conv1x1/generic.inc"
