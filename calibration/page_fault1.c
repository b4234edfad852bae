/* page_fault1: mmap anonymous memory, write one byte per page (a fault each), munmap.
 * As will-it-scale's page_fault1 (MEMSIZE 128 MiB, -z to change), written for smpmem.
 * One operation = one page faulted in (and, amortised, its share of the munmap). */
#include "harness.h"

const char *testcase_description = "page_fault1";

void testcase(unsigned long *iterations, unsigned long nr)
{
	unsigned long pgsize = (unsigned long)getpagesize();

	(void)nr;
	for (;;) {
		char *c = mmap(NULL, memsize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (c == MAP_FAILED) {
			perror("mmap");
			exit(1);
		}
		madvise(c, memsize, MADV_NOHUGEPAGE); /* 4 KiB faults, as the model */
		for (unsigned long i = 0; i < memsize; i += pgsize) {
			c[i] = 0;
			(*iterations)++;
		}
		munmap(c, memsize);
	}
}
