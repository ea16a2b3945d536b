/*
 * A team of threads for fork-join parallelism inside one call: the caller
 * is lane 0 and helper threads, started once, are lanes 1..size-1. A run
 * hands every lane the same function and waits for all of them; lanes of
 * a run can meet at a barrier. Inference splits batches this way, and
 * training splits each step's images and meets at batch-norm statistics.
 */
#ifndef AE_TEAM_H
#define AE_TEAM_H

typedef struct ae_team ae_team;

/* threads >= 1 (1 starts no helper). NULL when out of memory or threads. */
ae_team *ae_team_new(int threads);
/* Stops and joins the helpers. Accepts NULL. */
void ae_team_free(ae_team *t);
int ae_team_size(const ae_team *t);

/* Runs fn(arg, k) for k in [0, lanes), lanes <= size, and returns when
 * every lane has returned. One run at a time per team. */
void ae_team_run(ae_team *t, int lanes, void (*fn)(void *arg, int k), void *arg);

/* Inside a run: returns once every lane of the run has called it as often. */
void ae_team_barrier(ae_team *t);

#endif
