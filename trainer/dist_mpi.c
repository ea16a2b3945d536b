/*
 * Training over MPI (see dist.h), for aetrain-mpi. A launcher (mpirun,
 * srun, the MPI Operator's mpirun) starts the processes; without one this
 * is a single process that never touches MPI.
 *
 * Sums: batch norm's per-channel sums and the per-step loss are small, and
 * go by MPI_Allgather, every process adding the parts in rank order, so
 * every process gets the same bits whatever algorithm MPI picks. The
 * gradients are large: MPI_Iallreduce per bucket as the backward pass
 * finishes layers (progressed by MPI_Testall between layers, since Open
 * MPI moves a non-blocking collective only inside MPI calls), then a
 * wait. Open MPI's reductions give every process the same result, and
 * dist_check_same compares the weights every DIST_CHECK_EVERY steps.
 *
 * Every wait (wait_all) polls for SPIN_NS, then yields the core between
 * polls, then sleeps between them: MPI's own waits spin, and where
 * processes share cores with others (more processes than cores, a loaded
 * machine) a spinning rank takes the time slice the rank it waits for
 * needs. On two cores loaded by other work, 2 processes x 1 thread (not
 * bound to cores) trained digits at 115 images/s with MPI's blocking
 * calls and at 570 with polls and sleeps (1 process x 2 threads: 790).
 * Sleeping at once cost a sum over TCP 3-4 ms at the least where
 * spinning took 0.8; yielding first keeps that (0.7). On an idle node
 * most sums end within the spin.
 *
 * Failure: a process that dies makes mpirun end the job. Where nothing
 * does (srun without --kill-on-bad-exit, a process stopped rather than
 * dead, a network gone), a watchdog thread ends this process when one
 * MPI call has waited longer than --dist-timeout: the last checkpoint is
 * whole, and --resume continues from it.
 */
#define _GNU_SOURCE /* CPU_COUNT, sched_getaffinity */
#include "dist.h"
#include "cli.h"

#include <limits.h>
#include <mpi.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

/* The exit status of a process the watchdog ends: EX_TEMPFAIL, since the
 * run can be resumed. */
#define WATCHDOG_STATUS 75
/* Gradient buckets on their way at once (a step has fewer runs). */
#define MAX_PENDING (2 * AE_MAX_LAYERS)
/* A wait polls for SPIN_NS, then yields the core between polls up to
 * YIELD_NS, then sleeps SLEEP_NS between them. */
#define SPIN_NS  (100 * 1000)
#define YIELD_NS (1000 * 1000)
#define SLEEP_NS (20 * 1000)

static struct {
	int on; /* MPI initialised */
	int rank, size, local_size;
	MPI_Comm comm;
	ae_reducer red;
	MPI_Request pending[MAX_PENDING];
	int n_pending;
	double *parts; /* every process's part of a small sum */
	size_t parts_cap;
	/* the watchdog */
	int timeout;
	atomic_llong waiting_since; /* ns on CLOCK_MONOTONIC; 0: not in a watched call */
	atomic_int armed;           /* after the first sum: the processes have started */
	_Atomic(const char *) waiting_in;
	/* AE_DIST_STATS=1: time spent waiting inside MPI calls, said at the end */
	int stats;
	long long waited_ns, calls;
	unsigned long crc; /* the weights' checksum at the last check */
} D = { .rank = 0, .size = 1, .local_size = 1 };

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ------------------------------------------------------------ watchdog */

static void watch_begin(const char *what)
{
	D.waiting_in = what;
	atomic_store(&D.waiting_since, now_ns());
}

static void watch_end(void)
{
	if (D.stats) D.waited_ns += now_ns() - atomic_load(&D.waiting_since), D.calls++;
	atomic_store(&D.waiting_since, 0);
	atomic_store(&D.armed, 1);
}

static void *watchdog(void *arg)
{
	(void)arg;
	const struct timespec tick = { 0, 200 * 1000 * 1000 };
	for (;;) {
		nanosleep(&tick, NULL);
		long long since = atomic_load(&D.waiting_since);
		if (!since || !atomic_load(&D.armed)) continue;
		double waited = (double)(now_ns() - since) * 1e-9;
		if (waited < D.timeout) continue;
		fprintf(stderr,
		        "aetrain: rank %d of %d: waited %.0f s in %s for the other processes (--dist-timeout %d):\n"
		        "one has died or hangs; stopping. The last checkpoint is whole: continue with --resume.\n",
		        D.rank, D.size, waited, D.waiting_in, D.timeout);
		/* Not exit(): the main thread is inside MPI, and atexit
		 * handlers would wait on it. */
		_exit(WATCHDOG_STATUS);
	}
	return NULL;
}

/* An MPI call's failure, said with the call's name, then the job ends:
 * the other processes would wait for this one. */
static int check(int rc, const char *what)
{
	if (rc == MPI_SUCCESS) return 0;
	char msg[MPI_MAX_ERROR_STRING];
	int len = 0;
	MPI_Error_string(rc, msg, &len);
	fprintf(stderr, "aetrain: rank %d of %d: %s failed: %s; another process has probably died\n", D.rank, D.size,
	        what, msg);
	MPI_Abort(D.comm, 1);
	return -1;
}

/* ------------------------------------------------------------- sums */

/* Waits for n requests (see the top of the file), under the watchdog as
 * `what`; 0, or the first failure's code. */
static int wait_all(int n, MPI_Request *req, const char *what)
{
	int done = 0, rc = MPI_SUCCESS;
	watch_begin(what);
	const long long t0 = now_ns();
	const struct timespec nap = { 0, SLEEP_NS };
	while ((rc = MPI_Testall(n, req, &done, MPI_STATUSES_IGNORE)) == MPI_SUCCESS && !done) {
		const long long waited = now_ns() - t0;
		if (waited > YIELD_NS)
			nanosleep(&nap, NULL);
		else if (waited > SPIN_NS)
			sched_yield();
	}
	watch_end();
	return rc;
}

/* n values of every process into D.parts, rank after rank. */
static int gather_parts(const void *buf, size_t n, MPI_Datatype type, size_t size)
{
	const size_t need = n * (size_t)D.size * size;
	if (n > INT_MAX / 8) return -1;
	if (need > D.parts_cap) {
		free(D.parts);
		D.parts = malloc(need);
		D.parts_cap = D.parts ? need : 0;
		if (!D.parts) {
			fprintf(stderr, "aetrain: out of memory for a sum across processes\n");
			return -1;
		}
	}
	MPI_Request req;
	int rc = MPI_Iallgather(buf, (int)n, type, D.parts, (int)n, type, D.comm, &req);
	if (rc == MPI_SUCCESS) rc = wait_all(1, &req, "MPI_Iallgather");
	return check(rc, "MPI_Iallgather");
}

int dist_sum(double *buf, size_t n)
{
	if (!D.on) return 0;
	if (gather_parts(buf, n, MPI_DOUBLE, sizeof(double))) return -1;
	const double *p = D.parts;
	for (size_t i = 0; i < n; i++) {
		double s = 0.0;
		for (int r = 0; r < D.size; r++)
			s += p[(size_t)r * n + i];
		buf[i] = s;
	}
	return 0;
}

static int red_sum(void *ctx, void *buf, size_t n, int type)
{
	(void)ctx;
	if (type == AE_RED_F64) return dist_sum(buf, n);
	if (n > INT_MAX) return -1;
	MPI_Request req;
	int rc = MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, D.comm, &req);
	if (rc == MPI_SUCCESS) rc = wait_all(1, &req, "MPI_Iallreduce");
	return check(rc, "MPI_Iallreduce");
}

static int red_finish(void *ctx)
{
	(void)ctx;
	if (!D.n_pending) return 0;
	int rc = wait_all(D.n_pending, D.pending, "the gradients' MPI_Iallreduce");
	D.n_pending = 0;
	return check(rc, "MPI_Iallreduce");
}

static int red_start(void *ctx, float *buf, size_t n)
{
	if (n > INT_MAX) return -1;
	if (D.n_pending == MAX_PENDING && red_finish(ctx)) return -1;
	return check(MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, D.comm, &D.pending[D.n_pending++]),
	             "MPI_Iallreduce");
}

static void red_progress(void *ctx)
{
	(void)ctx;
	int done = 0;
	if (D.n_pending && check(MPI_Testall(D.n_pending, D.pending, &done, MPI_STATUSES_IGNORE), "MPI_Testall") == 0 &&
	    done)
		D.n_pending = 0;
}

/* ------------------------------------------------------------- setup */

/* Was this process started by a launcher (Open MPI's mpirun, PMIx or
 * PMI: srun, the MPI Operator)? */
static int launched(void)
{
	return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK");
}

/* AE_DIST_OVERLAP=0 sums the gradients in one blocking call after the
 * backward pass; AE_DIST_BUCKET_KB sets the bucket (make mpi-bench
 * compares them); AE_DIST_STATS=1 says at the end how long the process
 * waited inside MPI calls, and its weights' checksum at the last check. */
static void reducer_init(void)
{
	const char *ov = getenv("AE_DIST_OVERLAP"), *kb = getenv("AE_DIST_BUCKET_KB");
	D.red = (ae_reducer){ .sum = red_sum };
	if (!ov || strcmp(ov, "0") != 0) {
		D.red.start = red_start;
		D.red.progress = red_progress;
		D.red.finish = red_finish;
	}
	if (kb) D.red.bucket = (size_t)strtoul(kb, NULL, 10) * 1024 / sizeof(float);
	D.stats = getenv("AE_DIST_STATS") && strcmp(getenv("AE_DIST_STATS"), "1") == 0;
}

int dist_init(int timeout)
{
	if (!launched()) return 0;
	int provided = 0;
	if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
		fprintf(stderr, "aetrain: MPI_Init_thread failed\n");
		return -1;
	}
	D.on = 1;
	MPI_Comm_dup(MPI_COMM_WORLD, &D.comm);
	/* errors come back to check(), which names the call */
	MPI_Comm_set_errhandler(D.comm, MPI_ERRORS_RETURN);
	MPI_Comm_rank(D.comm, &D.rank);
	MPI_Comm_size(D.comm, &D.size);
	MPI_Comm local;
	MPI_Comm_split_type(D.comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local);
	MPI_Comm_size(local, &D.local_size);
	MPI_Comm_free(&local);
	if (provided < MPI_THREAD_FUNNELED) {
		fprintf(stderr, "aetrain: this MPI gives no thread support (MPI_THREAD_FUNNELED)\n");
		return -1;
	}
	reducer_init();
	D.timeout = timeout;
	pthread_t th;
	if (pthread_create(&th, NULL, watchdog, NULL) != 0) {
		fprintf(stderr, "aetrain: cannot start the watchdog thread\n");
		return -1;
	}
	pthread_detach(th);
	return 0;
}

void dist_end(int status)
{
	if (!D.on) return;
	if (D.stats)
		fprintf(stderr, "aetrain-mpi: rank %d of %d: %.3f s waiting in %lld MPI calls; weights crc32 %08lx\n",
		        D.rank, D.size, (double)D.waited_ns * 1e-9, D.calls, D.crc);
	/* A failure all processes agreed on (a stop, a bad loss) ends each
	 * alike; any other failure leaves the others waiting for this one. */
	if (status != 0 && status != 130 && D.size > 1)
		MPI_Abort(D.comm, status);
	else
		MPI_Finalize();
	free(D.parts);
	D.on = 0;
}

int dist_rank(void)
{
	return D.rank;
}

int dist_size(void)
{
	return D.size;
}

const ae_reducer *dist_reducer(void)
{
	return D.on ? &D.red : NULL;
}

/* The CPUs a cgroup v2 quota allows (a container's CPU limit), or 0. */
static long cgroup_cpus(void)
{
	FILE *f = fopen("/sys/fs/cgroup/cpu.max", "r");
	long quota = 0, period = 0;
	char word[32] = "";
	if (!f) return 0;
	if (fscanf(f, "%31s %ld", word, &period) == 2 && strcmp(word, "max") != 0 && period > 0)
		quota = strtol(word, NULL, 10);
	fclose(f);
	return quota > 0 ? (quota + period - 1) / period : 0;
}

int dist_threads(long requested)
{
	if (requested > 0 || !D.on) return cli_threads(requested);
	/* The cores this process may run on (the launcher may have bound it
	 * to some), and no more than its share of the machine's, or of the
	 * container's CPU limit. */
	cpu_set_t set;
	long cores = sysconf(_SC_NPROCESSORS_ONLN), quota = cgroup_cpus();
	if (quota > 0 && quota < cores) cores = quota;
	long mine = cores;
	if (sched_getaffinity(0, sizeof set, &set) == 0) mine = CPU_COUNT(&set);
	long share = cores / D.local_size;
	long n = mine < share ? mine : share;
	return cli_threads(n > 0 ? n : 1);
}

int dist_check_same(const ae_model *m, long step)
{
	if (!D.on) return 0;
	uLong crc = crc32(0L, Z_NULL, 0);
	crc = crc32_z(crc, (const Bytef *)m->params, m->net.n_params * sizeof(float));
	crc = crc32_z(crc, (const Bytef *)m->state, m->net.n_state * sizeof(float));
	D.crc = crc;
	double mine = (double)crc; /* a 32-bit value, exact in a double */
	if (gather_parts(&mine, 1, MPI_DOUBLE, sizeof(double))) return -1;
	int bad = -1;
	for (int r = 0; r < D.size && bad < 0; r++)
		if (D.parts[r] != D.parts[0]) bad = r;
	if (bad < 0) return 0;
	if (D.rank == 0)
		fprintf(stderr,
		        "aetrain: the weights differ across processes at step %ld (checksum %08lx on rank 0, %08lx "
		        "on rank %d); stopping\n",
		        step, (unsigned long)D.parts[0], (unsigned long)D.parts[bad], bad);
	return -1;
}
