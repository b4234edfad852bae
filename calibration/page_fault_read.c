/* page_fault_read: mmap anonymous memory, read one byte per page, munmap.
 * A read fault on untouched anonymous memory maps the shared zero page: no page is
 * allocated or cleared, so this isolates the fault path's fixed cost (exception
 * entry, find_vma, handle_mm_fault, the PTE) from page allocation and clear_page.
 * One operation = one page. Written for smpmem. */
#include "harness.h"

const char *testcase_description = "page_fault_read";

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
			(void)c[i];
			(*iterations)++;
		}
		munmap((void *)c, memsize);
	}
}
