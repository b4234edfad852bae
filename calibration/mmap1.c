/* mmap1: mmap and munmap MEMSIZE (128 MiB) of anonymous memory, never touched.
 * As will-it-scale's mmap1, written for smpmem. One operation = one mmap + munmap. */
#include "harness.h"

const char *testcase_description = "mmap1";

void testcase(unsigned long *iterations, unsigned long nr)
{
	(void)nr;
	for (;;) {
		char *c = mmap(NULL, memsize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (c == MAP_FAILED) {
			perror("mmap");
			exit(1);
		}
		munmap(c, memsize);
		(*iterations)++;
	}
}
