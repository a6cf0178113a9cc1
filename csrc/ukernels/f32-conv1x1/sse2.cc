// f32-conv1x1, SSE2 (4 floats, 16 registers): the generic vector kernel.
#define CD_UK_ISA sse2
#include "ukernels/f32-conv1x1/generic.inc"
