/*
 * One process (see dist.h): no sums to share. A process that a launcher
 * started as one of several would train a model of its own beside the
 * others, each writing the same files: it stops and names the build that
 * trains across them.
 */
#include "dist.h"
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>

/* The size of the run a launcher started this process in, from the
 * variables Open MPI's mpirun, PMI (Slurm's srun, MPICH) and srun itself
 * set; 1 when none is set. */
static long launched_size(void)
{
	static const char *vars[] = { "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS" };
	for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
		const char *v = getenv(vars[i]);
		long n = v ? strtol(v, NULL, 10) : 0;
		if (n > 1) return n;
	}
	return 1;
}

int dist_init(int timeout)
{
	(void)timeout;
	long n = launched_size();
	if (n > 1) {
		fprintf(stderr,
		        "aetrain: started as one of %ld processes (by mpirun or srun), but this aetrain is built "
		        "without MPI:\neach process would train a model of its own. Run aetrain-mpi instead: "
		        "make builds it where\nOpen MPI is installed (apt-get install openmpi-bin libopenmpi-dev); "
		        "see docs/distributed.md.\n",
		        n);
		return -1;
	}
	return 0;
}

void dist_end(int status)
{
	(void)status;
}

int dist_rank(void)
{
	return 0;
}

int dist_size(void)
{
	return 1;
}

int dist_threads(long requested)
{
	return cli_threads(requested);
}

const ae_reducer *dist_reducer(void)
{
	return NULL;
}

int dist_sum(double *buf, size_t n)
{
	(void)buf, (void)n;
	return 0;
}

int dist_check_same(const ae_model *m, long step)
{
	(void)m, (void)step;
	return 0;
}
