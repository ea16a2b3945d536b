/*
 * Training over several processes: who this process is among them, how
 * many threads it takes, and the sums they share. aetrain links
 * dist_single.c (one process; started by mpirun or srun as one of several,
 * it says how to get aetrain-mpi and stops); aetrain-mpi links
 * dist_mpi.c, which runs over MPI when a launcher started it and as one
 * process otherwise. Nothing else in the trainer knows which it has.
 */
#ifndef TRAINER_DIST_H
#define TRAINER_DIST_H

#include <stddef.h>

#include "ae/modelfile.h"
#include "ae/train.h"

/* How long a process waits inside one sum before it decides that another
 * has died or hangs (seconds; --dist-timeout). */
#define DIST_TIMEOUT_DEFAULT 60
#define DIST_TIMEOUT_MAX     86400

/* Steps between checks that every process holds the same weights. */
#define DIST_CHECK_EVERY 100

/* Joins the run (MPI_Init where a launcher started this process), with
 * timeout seconds as the bound on a sum. 0, or -1 after saying why. */
int dist_init(int timeout);
/* Leaves it (MPI_Finalize); status is the process's exit status. */
void dist_end(int status);

int dist_rank(void);
int dist_size(void);
/* Threads for this process: requested if > 0, else the cores it may run
 * on shared among the processes on its machine (at least 1). */
int dist_threads(long requested);

/* The trainer's reducer, or NULL for one process. Borrowed. */
const ae_reducer *dist_reducer(void);

/* Sums n doubles in place across the processes, the same bits on each
 * (added in rank order). 0, or -1 after saying why. */
int dist_sum(double *buf, size_t n);

/* Every process compares a checksum of m's weights and batch-norm
 * statistics with the others' at `step`: 0 when all agree, else -1 after
 * saying which differ (on every process). */
int dist_check_same(const ae_model *m, long step);

#endif
