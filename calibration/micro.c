/*
 * micro: microbenchmarks for smpmem's cost model, one per cost it calibrates.
 *
 *   ./micro TEST [-r REPEATS]     prints one JSON line {"test": ..., "ns": best, "runs": [...]}
 *
 *   syscall   getppid() by syscall(2): entry + exit                      -> syscall_entry
 *   memset4k  memset of 4 KiB into cold (never cached) memory, per page   -> clear_page
 *   memcpy4k  memcpy of 4 KiB between cold buffers, per page              -> copy_page
 *   lock      an uncontended lock/unlock pair (lock cmpxchg + release store) on a private line -> lock_acquire
 *   bounce    one cache line passed back and forth between CPU 0 and CPU 1 (spin on it), per one-way
 *             transfer                                                   -> cacheline_bounce (+ spin_handoff)
 *   ctxsw     two processes on one CPU passing a byte through two pipes, per switch (one-way)
 *                                                                        -> context_switch (+ 2 small syscalls)
 *   wakeup    the same across CPU 0 and CPU 1: a sleeping task woken from the other CPU, per one-way
 *                                                                        -> sleep_wakeup
 *   ipi       membarrier(PRIVATE_EXPEDITED) from CPU 0 while a thread of the same mm spins on CPU 1
 *             (one IPI and its acknowledgement per call, when the kernel does send one: the output
 *             says how many it sent per call, from /proc/interrupts), minus the same call with
 *             CPU 1 idle                                                 -> ipi_send + ipi_latency + ipi_handle
 *
 * Each test prints every run, the best (lowest; interference from other work on the machine
 * only ever adds time) and the median. Written for smpmem.
 */
#define _GNU_SOURCE
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

static int nr_cpus(void) { return (int)sysconf(_SC_NPROCESSORS_ONLN); }

/* --- syscall --------------------------------------------------------------------------- */
static double t_syscall(void)
{
	const long n = 2000000;
	double t0 = now_ns();
	for (long i = 0; i < n; i++)
		syscall(SYS_getppid);
	return (now_ns() - t0) / n;
}

/* --- memset4k / memcpy4k ------------------------------------------------------------------- */
#define BIG (512UL << 20) /* larger than any cache: each page is cold when touched */
static char *big_a, *big_b;

static char *prefaulted(void)
{
	char *p = mmap(NULL, BIG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	memset(p, 1, BIG);
	return p;
}

static double t_memset4k(void)
{
	if (!big_a)
		big_a = prefaulted();
	const unsigned long pages = BIG / 4096;
	double t0 = now_ns();
	for (unsigned long i = 0; i < pages; i++)
		memset(big_a + i * 4096, 0, 4096);
	__asm__ volatile("" ::: "memory");
	return (now_ns() - t0) / pages;
}

static double t_memcpy4k(void)
{
	if (!big_a)
		big_a = prefaulted();
	if (!big_b)
		big_b = prefaulted();
	const unsigned long pages = BIG / 4096;
	double t0 = now_ns();
	for (unsigned long i = 0; i < pages; i++)
		memcpy(big_b + i * 4096, big_a + i * 4096, 4096);
	__asm__ volatile("" ::: "memory");
	return (now_ns() - t0) / pages;
}

/* --- lock ------------------------------------------------------------------------------------- */
static double t_lock(void)
{
	static volatile int lockword __attribute__((aligned(128)));
	const long n = 20000000;
	double t0 = now_ns();
	for (long i = 0; i < n; i++) {
		int expected = 0;
		while (!__atomic_compare_exchange_n(&lockword, &expected, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			expected = 0;
		__atomic_store_n(&lockword, 0, __ATOMIC_RELEASE);
	}
	return (now_ns() - t0) / n;
}

/* --- bounce ----------------------------------------------------------------------------------- */
static volatile int turn __attribute__((aligned(128)));
static const long bounces = 2000000;

static void *bounce_peer(void *p)
{
	(void)p;
	pin(1);
	for (long i = 0; i < bounces; i++) {
		while (__atomic_load_n(&turn, __ATOMIC_ACQUIRE) != 1)
			__builtin_ia32_pause();
		__atomic_store_n(&turn, 0, __ATOMIC_RELEASE);
	}
	return NULL;
}

static double t_bounce(void)
{
	pthread_t t;
	pin(0);
	turn = 0;
	pthread_create(&t, NULL, bounce_peer, NULL);
	usleep(1000);
	double t0 = now_ns();
	for (long i = 0; i < bounces; i++) {
		while (__atomic_load_n(&turn, __ATOMIC_ACQUIRE) != 0)
			__builtin_ia32_pause();
		__atomic_store_n(&turn, 1, __ATOMIC_RELEASE);
	}
	while (__atomic_load_n(&turn, __ATOMIC_ACQUIRE) != 0)
		__builtin_ia32_pause();
	double dt = now_ns() - t0;
	pthread_join(t, NULL);
	return dt / (2.0 * bounces);
}

/* --- ctxsw / wakeup: pipe ping-pong ------------------------------------------------------------- */
static double pingpong(int cpu_a, int cpu_b)
{
	int ab[2], ba[2];
	const long n = 100000;
	char c = 0;
	if (pipe(ab) || pipe(ba)) {
		perror("pipe");
		exit(1);
	}
	pid_t pid = fork();
	if (pid == 0) {
		pin(cpu_b);
		for (long i = 0; i < n; i++) {
			if (read(ab[0], &c, 1) != 1 || write(ba[1], &c, 1) != 1)
				_exit(1);
		}
		_exit(0);
	}
	pin(cpu_a);
	usleep(1000);
	double t0 = now_ns();
	for (long i = 0; i < n; i++) {
		if (write(ab[1], &c, 1) != 1 || read(ba[0], &c, 1) != 1)
			exit(1);
	}
	double dt = now_ns() - t0;
	waitpid(pid, NULL, 0);
	close(ab[0]); close(ab[1]); close(ba[0]); close(ba[1]);
	return dt / (2.0 * n);
}

static double t_ctxsw(void) { return pingpong(0, 0); }
static double t_wakeup(void) { return pingpong(0, 1); }

/* --- ipi: membarrier private expedited ------------------------------------------------------------- */
static volatile int spin_stop;

static void *spinner(void *p)
{
	(void)p;
	pin(1);
	while (!__atomic_load_n(&spin_stop, __ATOMIC_RELAXED))
		__builtin_ia32_pause();
	return NULL;
}

static double membarrier_loop(void)
{
	const long n = 100000;
	double t0 = now_ns();
	for (long i = 0; i < n; i++)
		syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
	return (now_ns() - t0) / n;
}

/* Function-call IPIs received by all CPUs so far (/proc/interrupts "CAL:"). */
static long long cal_irqs(void)
{
	char line[4096];
	long long sum = 0;
	FILE *f = fopen("/proc/interrupts", "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		char *p = line;
		while (*p == ' ')
			p++;
		if (strncmp(p, "CAL:", 4))
			continue;
		p += 4;
		for (;;) {
			char *end;
			long long v = strtoll(p, &end, 10);
			if (end == p)
				break;
			sum += v;
			p = end;
		}
	}
	fclose(f);
	return sum;
}

static double ipis_per_call = -1; /* of the last t_ipi run */

static double t_ipi(void)
{
	static int registered;
	pthread_t t;
	if (!registered) {
		if (syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0)) {
			perror("membarrier register");
			exit(1);
		}
		registered = 1;
	}
	pin(0);
	double alone = membarrier_loop(); /* CPU 1 does not run this mm: no IPI */
	spin_stop = 0;
	pthread_create(&t, NULL, spinner, NULL);
	usleep(2000);
	long long c0 = cal_irqs();
	double with = membarrier_loop(); /* CPU 1 runs this mm: one IPI per call */
	ipis_per_call = (cal_irqs() - c0) / 100000.0;
	spin_stop = 1;
	pthread_join(t, NULL);
	return with - alone;
}

struct test { const char *name; double (*fn)(void); int cpus; };
static const struct test tests[] = {
	{"syscall", t_syscall, 1}, {"memset4k", t_memset4k, 1}, {"memcpy4k", t_memcpy4k, 1},
	{"lock", t_lock, 1}, {"bounce", t_bounce, 2}, {"ctxsw", t_ctxsw, 1}, {"wakeup", t_wakeup, 2},
	{"ipi", t_ipi, 2},
};

int main(int argc, char **argv)
{
	int repeats = 7;
	if (argc < 2) {
		fprintf(stderr, "usage: %s TEST [-r REPEATS]; tests:", argv[0]);
		for (unsigned i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
			fprintf(stderr, " %s", tests[i].name);
		fprintf(stderr, "\n");
		return 2;
	}
	if (argc >= 4 && !strcmp(argv[2], "-r"))
		repeats = atoi(argv[3]);
	for (unsigned i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		if (strcmp(argv[1], tests[i].name))
			continue;
		if (tests[i].cpus > nr_cpus()) {
			printf("{\"test\": \"%s\", \"ns\": null, \"error\": \"needs %d CPUs\"}\n", tests[i].name, tests[i].cpus);
			return 0;
		}
		double best = 1e30, runs[64];
		if (repeats > 64)
			repeats = 64;
		double ipis[64];
		printf("{\"test\": \"%s\", \"runs\": [", tests[i].name);
		for (int r = 0; r < repeats; r++) {
			runs[r] = tests[i].fn();
			ipis[r] = ipis_per_call;
			printf("%s%.2f", r ? ", " : "", runs[r]);
			if (runs[r] < best)
				best = runs[r];
		}
		printf("]");
		if (ipis_per_call >= 0) {
			printf(", \"ipis_per_call\": [");
			for (int r = 0; r < repeats; r++)
				printf("%s%.4f", r ? ", " : "", ipis[r]);
			printf("]");
		}
		/* The median too: a difference of two timings (ipi) has noise on both sides, and its
		 * minimum is biased low. */
		for (int a = 0; a < repeats; a++)
			for (int b = a + 1; b < repeats; b++)
				if (runs[b] < runs[a]) {
					double t = runs[a];
					runs[a] = runs[b];
					runs[b] = t;
				}
		printf(", \"ns\": %.2f, \"median\": %.2f}\n", best, runs[repeats / 2]);
		return 0;
	}
	fprintf(stderr, "%s: unknown test %s\n", argv[0], argv[1]);
	return 2;
}
