// f32-conv3x3-rows, NEON / Advanced SIMD (4 floats, 32 registers): the generic vector kernel.
#define CD_UK_ISA neon
#include "ukernels/f32-conv3x3-rows/generic.inc"
