/*
 * OpenBLAS's kernels, checked against the CPU. OpenBLAS picks them when it
 * is loaded, from the CPU's family and model; a CPU newer than the library,
 * or a virtual machine that hides its model, gets the oldest x86-64 set
 * (Prescott: SSE3), which runs training's matrix products at half the
 * speed or less of what the vector units allow. The choice can only be
 * changed before the library loads, by OPENBLAS_CORETYPE.
 */
#ifndef AE_BLAS_H
#define AE_BLAS_H

/* The OpenBLAS core this CPU should have ("SkylakeX" with AVX-512, "Haswell"
 * with AVX2 and FMA), or NULL if the loaded one already uses them, the
 * CPU has neither, or OPENBLAS_CORETYPE is set (the user's choice stands). */
const char *ae_blas_better_core(void);

/* If there is a better core, sets OPENBLAS_CORETYPE to it and executes the
 * program again (argv as given); returns only if there is none or the exec
 * failed, and the program then runs on the kernels it has. Call first in
 * main, before any thread starts. */
void ae_blas_tune(char **argv);

/* The core in use ("SkylakeX", "Prescott", ...). */
const char *ae_blas_core(void);

#endif
