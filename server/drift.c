/*
 * Drift: what the anomaly scores a model served say about the data coming
 * in. A histogram of the images' mean squared errors (whichever score the
 * answer gave), a count of the images answered as anomalous, and the share
 * of the last N scored images whose error is over the model's held-out p99: about 0.01 while the data looks like the training data,
 * near 1 when it no longer does, which a Prometheus alert can watch.
 */
#include "server.h"

#include <math.h>
#include <stdlib.h>

/* Reconstruction MSE of 28x28 images runs from about 0.001 (a clean digit)
 * to 0.1 (another kind of image); the buckets cover that span. */
const double srv_score_le[SRV_SCORE_BUCKETS] = {
	0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5, 1.0
};

struct srv_drift {
	atomic_long bucket[SRV_SCORE_BUCKETS + 1];
	_Atomic double sum;
	atomic_long anomalies;
	double p99;
	pthread_mutex_t mu;  /* the window */
	unsigned char *over; /* ring: 1 if that image was over p99 */
	int window, at, filled, n_over;
};

srv_drift *srv_drift_new(int window, double p99)
{
	srv_drift *d = calloc(1, sizeof *d);
	if (!d || !(d->over = calloc((size_t)window, 1))) {
		free(d);
		return NULL;
	}
	d->window = window;
	d->p99 = p99;
	pthread_mutex_init(&d->mu, NULL);
	return d;
}

void srv_drift_free(srv_drift *d)
{
	if (!d) return;
	pthread_mutex_destroy(&d->mu);
	free(d->over);
	free(d);
}

void srv_drift_observe(srv_drift *d, const float *scores, int n, int anomalies)
{
	if (!d) return;
	double sum = 0;
	atomic_fetch_add(&d->anomalies, anomalies);
	for (int i = 0; i < n; i++) {
		int b = 0;
		while (b < SRV_SCORE_BUCKETS && scores[i] > srv_score_le[b])
			b++;
		atomic_fetch_add(&d->bucket[b], 1);
		sum += scores[i];
	}
	double old = atomic_load(&d->sum);
	while (!atomic_compare_exchange_weak(&d->sum, &old, old + sum))
		;
	pthread_mutex_lock(&d->mu);
	for (int i = 0; i < n; i++) {
		unsigned char o = scores[i] > d->p99;
		if (d->filled == d->window)
			d->n_over -= d->over[d->at];
		else
			d->filled++;
		d->over[d->at] = o;
		d->n_over += o;
		d->at = (d->at + 1) % d->window;
	}
	pthread_mutex_unlock(&d->mu);
}

void srv_drift_read(srv_drift *d, srv_drift_view *v)
{
	long acc = 0;
	for (int b = 0; b <= SRV_SCORE_BUCKETS; b++)
		v->bucket[b] = acc += atomic_load(&d->bucket[b]);
	v->sum = atomic_load(&d->sum);
	v->anomalies = atomic_load(&d->anomalies);
	pthread_mutex_lock(&d->mu);
	v->filled = d->filled;
	v->share = d->filled ? (double)d->n_over / d->filled : NAN;
	pthread_mutex_unlock(&d->mu);
}
