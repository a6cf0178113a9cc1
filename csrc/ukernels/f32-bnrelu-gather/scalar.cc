// f32-bnrelu-gather, scalar (no vectors; the fallback on every CPU): the generic vector kernel.
#define CD_UK_ISA scalar
#include "ukernels/f32-bnrelu-gather/generic.inc"
