/*
 * The model repository: which file a model name stands for, and loading,
 * reloading and unloading by name, from the command line at start-up, from
 * the repository routes and from SIGHUP.
 *
 * A name stands for NAME.safetensors in one of the model folders (the
 * first that has it), or for a model file named on the command line. Names
 * are one path segment of a restricted alphabet and the file they resolve
 * to must lie inside its folder, so no name reaches any other file.
 *
 * A load reads and checks the whole file (checksums, shapes, metadata) and
 * starts the new model's workers before the model is put in the registry;
 * until then, and whenever it fails, the model it would replace keeps
 * serving. Every outcome is logged, counted and kept for the index.
 */
#include "server.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define EXT ".safetensors"

int srv_model_name_ok(const char *name)
{
	size_t n = strlen(name);
	return n > 0 && n < 64 && name[0] != '.' &&
	       strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

static int has_ext(const char *n)
{
	size_t a = strlen(n), b = strlen(EXT);
	return a > b && strcmp(n + a - b, EXT) == 0;
}

static int is_dir(const char *p)
{
	struct stat sb;
	return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* The name a model file is served under: its base name without the
 * extension; "" if that is no valid name. */
static void name_of_file(const char *path, char *name, size_t cap)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	size_t len = strlen(base);
	if (has_ext(base)) len -= strlen(EXT);
	snprintf(name, cap, "%.*s", (int)(len < cap ? len : 0), base);
	if (!srv_model_name_ok(name)) name[0] = '\0';
}

/* Whether path, resolved, lies inside the folder dir, resolved. */
static int inside(const char *dir, const char *path)
{
	char rd[PATH_MAX], rp[PATH_MAX];
	if (!realpath(dir, rd) || !realpath(path, rp)) return 0;
	size_t n = strlen(rd);
	return strncmp(rd, rp, n) == 0 && (rp[n] == '/' || (n == 1 && rd[0] == '/'));
}

/* The file for a name: a file named on the command line, else
 * NAME.safetensors in the first folder that has it. 0, or -1 with f set. */
static int resolve(const srv_state *s, const char *name, char *path, size_t cap, srv_fail *f)
{
	if (!srv_model_name_ok(name))
		return srv_fail_set(f, 400, "bad_model_name",
		                    "'%.80s' is not a model name: letters, digits, '.', '_' and '-', at most 63, "
		                    "not starting with '.'",
		                    name);
	char n[64];
	for (int i = 0; i < s->cfg.n_paths; i++) {
		const char *p = s->cfg.paths[i];
		if (is_dir(p)) continue;
		name_of_file(p, n, sizeof n);
		if (strcmp(n, name) == 0) {
			snprintf(path, cap, "%s", p);
			return 0;
		}
	}
	for (int i = 0; i < s->cfg.n_paths; i++) {
		const char *d = s->cfg.paths[i];
		if (!is_dir(d)) continue;
		snprintf(path, cap, "%s/%s%s", d, name, EXT);
		struct stat sb;
		if (stat(path, &sb) != 0) continue;
		if (!S_ISREG(sb.st_mode) || !inside(d, path))
			return srv_fail_set(f, 400, "bad_model_file",
			                    "model '%s': %s is not a regular file inside the model folder", name, path);
		return 0;
	}
	return srv_fail_set(f, 404, "model_not_found", "no model file for '%s' in the model folders", name);
}

static void note(srv_state *s, const char *name, const char *reason)
{
	srv_load_note *free_slot = NULL;
	for (size_t i = 0; i < sizeof s->notes / sizeof *s->notes; i++) {
		srv_load_note *n = &s->notes[i];
		if (strcmp(n->name, name) == 0) {
			if (reason)
				snprintf(n->reason, sizeof n->reason, "%s", reason);
			else
				n->name[0] = '\0';
			return;
		}
		if (!n->name[0] && !free_slot) free_slot = n;
	}
	if (reason && free_slot) {
		snprintf(free_slot->name, sizeof free_slot->name, "%s", name);
		snprintf(free_slot->reason, sizeof free_slot->reason, "%s", reason);
	}
}

/* Caller holds load_mu. */
static int load_locked(srv_state *s, const char *name, srv_fail *f)
{
	char path[1024];
	srv_model *m = NULL;
	if (resolve(s, name, path, sizeof path, f) == 0 && (m = srv_model_open(&s->cfg, name, path, f)) &&
	    srv_registry_put(s, m) != 0) {
		srv_model_release(m);
		m = NULL;
		srv_fail_set(f, 507, "too_many_models", "model '%s': %d models are loaded, the most there can be", name,
		             SRV_MAX_MODELS);
	}
	if (!m) {
		atomic_fetch_add(&s->loads_failed, 1);
		if (srv_model_name_ok(name)) note(s, name, f->msg);
		fprintf(stderr, "aeserve: load of model '%s' failed: %s\n", srv_model_name_ok(name) ? name : "?",
		        f->msg);
		return -1;
	}
	atomic_fetch_add(&s->loads_ok, 1);
	note(s, name, NULL);
	fprintf(stderr, "aeserve: model '%s' loaded from %s (checksum %s)\n", name, path, m->m->checksum);
	return 0;
}

int srv_repo_load(srv_state *s, const char *name, srv_fail *f)
{
	pthread_mutex_lock(&s->load_mu);
	int rc = load_locked(s, name, f);
	pthread_mutex_unlock(&s->load_mu);
	return rc;
}

int srv_repo_unload(srv_state *s, const char *name, srv_fail *f)
{
	if (strcmp(name, s->default_name) == 0)
		return srv_fail_set(f, 409, "default_model",
		                    "model '%s' is the default model of the /v1 routes and stays loaded", name);
	pthread_mutex_lock(&s->load_mu);
	int rc = srv_registry_remove(s, name);
	pthread_mutex_unlock(&s->load_mu);
	if (rc) return srv_fail_set(f, 404, "model_not_found", "no model named '%.80s' is loaded", name);
	atomic_fetch_add(&s->unloads, 1);
	fprintf(stderr, "aeserve: model '%s' unloaded\n", name);
	return 0;
}

int srv_repo_refresh(srv_state *s)
{
	srv_model *ms[SRV_MAX_MODELS];
	int n = srv_models_snapshot(s, ms), failed = 0;
	for (int i = 0; i < n; i++) {
		srv_fail f = { 0 };
		if (srv_model_file_changed(ms[i])) failed += srv_repo_load(s, ms[i]->name, &f) != 0;
	}
	srv_models_release_snapshot(ms, n);
	return failed;
}

/* Every name the folders and files offer, loaded or not, for the index. */
typedef struct names {
	char v[SRV_MAX_MODELS * 4][64];
	int n;
} names;

static void add_name(names *ns, const char *name)
{
	if (!name[0] || ns->n >= (int)(sizeof ns->v / sizeof *ns->v)) return;
	for (int i = 0; i < ns->n; i++)
		if (strcmp(ns->v[i], name) == 0) return;
	snprintf(ns->v[ns->n++], sizeof ns->v[0], "%s", name);
}

static void offered(const srv_state *s, names *ns)
{
	char n[64];
	for (int i = 0; i < s->cfg.n_paths; i++) {
		const char *p = s->cfg.paths[i];
		if (!is_dir(p)) {
			name_of_file(p, n, sizeof n);
			add_name(ns, n);
			continue;
		}
		DIR *d = opendir(p);
		for (struct dirent *e; d && (e = readdir(d));)
			if (has_ext(e->d_name)) {
				name_of_file(e->d_name, n, sizeof n);
				add_name(ns, n);
			}
		if (d) closedir(d);
	}
}

static int by_name(const void *a, const void *b)
{
	return strcmp(a, b);
}

char *srv_repo_index(srv_state *s, int ready_only, size_t *len)
{
	static names ns; /* large: one index at a time, under load_mu */
	pthread_mutex_lock(&s->load_mu);
	ns.n = 0;
	srv_model *ms[SRV_MAX_MODELS];
	int n = srv_models_snapshot(s, ms);
	for (int i = 0; i < n; i++)
		add_name(&ns, ms[i]->name);
	offered(s, &ns);
	qsort(ns.v, (size_t)ns.n, sizeof ns.v[0], by_name);
	json_t *a = json_array();
	for (int i = 0; a && i < ns.n; i++) {
		const srv_model *m = NULL;
		for (int k = 0; k < n; k++)
			if (strcmp(ms[k]->name, ns.v[i]) == 0) m = ms[k];
		if (ready_only && !m) continue;
		const char *reason = m ? "" : "not loaded";
		for (size_t k = 0; k < sizeof s->notes / sizeof *s->notes; k++)
			if (strcmp(s->notes[k].name, ns.v[i]) == 0) reason = s->notes[k].reason;
		json_t *o = json_pack("{s:s, s:s, s:s}", "name", ns.v[i], "version", "1", "state",
		                      m ? "READY" : "UNAVAILABLE");
		if (o && reason[0]) json_object_set_new(o, "reason", json_string(reason));
		json_array_append_new(a, o);
	}
	pthread_mutex_unlock(&s->load_mu);
	srv_models_release_snapshot(ms, n);
	char *out = a ? json_dumps(a, JSON_COMPACT) : NULL;
	json_decref(a);
	if (out) *len = strlen(out);
	return out;
}

/* ------------------------------------------------------------- start-up */

static int load_path(srv_state *s, const char *path)
{
	char name[64];
	name_of_file(path, name, sizeof name);
	if (!name[0]) {
		fprintf(stderr,
		        "aeserve: %s: a model's name (its file name) may hold only letters, digits, '.', '_' and '-', "
		        "and not start with '.'\n",
		        path);
		return -1;
	}
	srv_model *have = srv_model_hold(s, name);
	srv_model_release(have);
	if (have) {
		fprintf(stderr, "aeserve: %s: a model named '%s' is already loaded\n", path, name);
		return -1;
	}
	srv_fail f = { 0 };
	srv_model *m = srv_model_open(&s->cfg, name, path, &f);
	if (!m) {
		fprintf(stderr, "aeserve: model '%s' failed to load: %s\n", name, f.msg);
		return -1;
	}
	if (srv_registry_put(s, m) != 0) {
		fprintf(stderr, "aeserve: %s: more than %d models\n", path, SRV_MAX_MODELS);
		srv_model_release(m);
		return -1;
	}
	atomic_fetch_add(&s->loads_ok, 1);
	return 0;
}

static int load_folder(srv_state *s, const char *dir)
{
	struct dirent **ents;
	int n = scandir(dir, &ents, NULL, alphasort), found = 0, rc = 0;
	for (int k = 0; k < n; k++) {
		if (has_ext(ents[k]->d_name)) {
			char full[2048];
			snprintf(full, sizeof full, "%s/%s", dir, ents[k]->d_name);
			rc |= load_path(s, full);
			found++;
		}
		free(ents[k]);
	}
	if (n >= 0) free(ents);
	if (!found) {
		fprintf(stderr, "aeserve: %s: no .safetensors model files\n", dir);
		return -1;
	}
	return rc;
}

int srv_models_load(srv_state *s)
{
	int rc = 0;
	for (int i = 0; i < s->cfg.n_paths; i++) {
		const char *p = s->cfg.paths[i];
		struct stat sb;
		if (stat(p, &sb) != 0) {
			fprintf(stderr, "aeserve: %s: %s\n", p, strerror(errno));
			rc = -1;
		} else
			rc |= S_ISDIR(sb.st_mode) ? load_folder(s, p) : load_path(s, p);
	}
	if (rc) return -1;
	if (s->n_models == 0) {
		fprintf(stderr, "aeserve: no models to serve\n");
		return -1;
	}
	if (s->cfg.default_model[0]) {
		srv_model *d = srv_model_hold(s, s->cfg.default_model);
		srv_model_release(d);
		if (!d) {
			fprintf(stderr, "aeserve: --default: no model named '%s' is loaded\n", s->cfg.default_model);
			return -1;
		}
	}
	snprintf(s->default_name, sizeof s->default_name, "%s",
	         s->cfg.default_model[0] ? s->cfg.default_model : s->models[0]->name);
	return 0;
}
