/*
 * replay.c: a main() for the fuzz targets where libFuzzer is not (gcc, or
 * FUZZ_ENGINE=replay): runs LLVMFuzzerTestOneInput once on each file
 * named, and on each file of each directory named; options (-runs=0 and
 * the like) are passed over.  A finding aborts, as under libFuzzer.
 */
#define _GNU_SOURCE
#include <sys/stat.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int
run_file(const char *path)
{
	unsigned char *buf = NULL;
	size_t len = 0, cap = 0, n;
	FILE *f;

	if ((f = fopen(path, "rb")) == NULL) {
		perror(path);
		return -1;
	}
	do {
		if (len == cap) {
			cap = cap ? cap * 2 : 65536;
			if ((buf = realloc(buf, cap)) == NULL) {
				perror(path);
				exit(1);
			}
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
	} while (n > 0);
	fclose(f);
	/* An exact-size copy, so that a read past the input is seen. */
	unsigned char *exact = malloc(len ? len : 1);

	if (exact == NULL) {
		perror(path);
		exit(1);
	}
	memcpy(exact, buf, len);
	free(buf);
	LLVMFuzzerTestOneInput(exact, len);
	free(exact);
	return 0;
}

int
main(int argc, char *argv[])
{
	int rc = 0, runs = 0;

	for (int i = 1; i < argc; i++) {
		struct stat sb;

		if (argv[i][0] == '-')
			continue;
		if (stat(argv[i], &sb) == -1) {
			perror(argv[i]);
			rc = 1;
			continue;
		}
		if (!S_ISDIR(sb.st_mode)) {
			rc |= run_file(argv[i]) == -1;
			runs++;
			continue;
		}
		struct dirent **names;
		int n = scandir(argv[i], &names, NULL, alphasort);

		for (int k = 0; k < n; k++) {
			char path[4096];

			snprintf(path, sizeof(path), "%s/%s", argv[i],
			    names[k]->d_name);
			if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
				rc |= run_file(path) == -1;
				runs++;
			}
			free(names[k]);
		}
		free(names);
	}
	printf("replay: %d inputs\n", runs);
	return rc;
}
