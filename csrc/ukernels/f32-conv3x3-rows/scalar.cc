// f32-conv3x3-rows, scalar (no vectors; the fallback on every CPU): the generic vector kernel.
#define CD_UK_ISA scalar
#include "ukernels/f32-conv3x3-rows/generic.inc"
