/* tlb_flush2: a 1 MiB anonymous mapping (-z to change); per page: write it, MADV_DONTNEED
 * it (the page is freed and the TLB entry flushed, by IPI on every other CPU that runs
 * this mm), read it back (a read fault); munmap after each pass.
 * As smpmem's built-in tlb_flush2 (after will-it-scale's tlb_flush2), written for smpmem.
 * One operation = one page. In threads mode each madvise shoots down the other
 * threads' CPUs: /proc/interrupts "TLB" counts the IPIs received. */
#include "harness.h"

const char *testcase_description = "tlb_flush2";

void testcase(unsigned long *iterations, unsigned long nr)
{
	unsigned long pgsize = (unsigned long)getpagesize();

	(void)nr;
	for (;;) {
		volatile char *c = mmap(NULL, memsize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (c == MAP_FAILED) {
			perror("mmap");
			exit(1);
		}
		madvise((void *)c, memsize, MADV_NOHUGEPAGE);
		for (unsigned long i = 0; i < memsize; i += pgsize) {
			c[i] = 1;
			madvise((void *)(c + i), pgsize, MADV_DONTNEED);
			(void)c[i];
			(*iterations)++;
		}
		munmap((void *)c, memsize);
	}
}
