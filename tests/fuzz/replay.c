/*
 * Corpus replay: feeds every file of the directories (or the files) named on the command
 * line to the harness's LLVMFuzzerTestOneInput, the way libFuzzer would, so that a corpus
 * is an ordinary test under the build's sanitizers (SQLite's fuzzcheck, h2o's fuzz/). Each
 * input sits in a buffer of exactly its size, so a read past its end is AddressSanitizer's
 * to report. Exits 0 after every input ran; 1 when an argument cannot be read or names no
 * input at all (an empty corpus must not pass for a tested one).
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Run one file; 0, or -1 when it cannot be read. */
static int
run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long len;
	int rc = -1;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0)
		goto out;
	/* malloc(0) may answer NULL; one byte keeps the empty input a real pointer. */
	if ((buf = malloc(len > 0 ? (size_t)len : 1)) == NULL ||
	    fread(buf, 1, (size_t)len, f) != (size_t)len)
		goto out;
	(void)LLVMFuzzerTestOneInput(buf, (size_t)len);
	rc = 0;
out:
	if (rc != 0)
		fprintf(stderr, "replay: cannot read %s\n", path);
	free(buf);
	if (f != NULL)
		fclose(f);
	return rc;
}

static int
by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Run every regular file of dir, in name order; the count, or -1. */
static long
run_dir(const char *dir)
{
	char **names = NULL, path[4096];
	size_t n = 0, cap = 0;
	struct dirent *e;
	struct stat st;
	long ran = 0;
	DIR *d;

	if ((d = opendir(dir)) == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		char **grown;
		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			if ((grown = realloc(names, cap * sizeof(*names))) == NULL)
				break;
			names = grown;
		}
		if ((names[n] = strdup(e->d_name)) == NULL)
			break;
		n++;
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof(*names), by_name);
	for (size_t i = 0; i < n && ran >= 0; i++) {
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, names[i]) >= sizeof(path) ||
		    stat(path, &st) != 0)
			ran = -1;
		else if (S_ISREG(st.st_mode))
			ran = run_file(path) == 0 ? ran + 1 : -1;
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return ran;
}

int
main(int argc, char **argv)
{
	struct stat st;
	long total = 0, ran;

	for (int i = 1; i < argc; i++) {
		if (stat(argv[i], &st) != 0)
			ran = -1;
		else if (S_ISDIR(st.st_mode))
			ran = run_dir(argv[i]);
		else
			ran = run_file(argv[i]) == 0 ? 1 : -1;
		if (ran < 0) {
			fprintf(stderr, "replay: cannot read %s\n", argv[i]);
			return 1;
		}
		total += ran;
	}
	printf("replay: %ld input(s)\n", total);
	return total > 0 ? 0 : 1;
}
