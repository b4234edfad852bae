/*
 * harness.h: a small will-it-scale-like harness for smpmem's calibration.
 *
 * A test defines
 *     const char *testcase_description;
 *     void testcase(unsigned long *iterations, unsigned long nr);
 * (optionally testcase_prepare / testcase_cleanup), exactly as will-it-scale's
 * tests do, and includes this file. `./test -t TASKS -m process|thread -s SECONDS
 * [-z BYTES]` starts TASKS copies pinned to CPUs 0..TASKS-1 (modulo the CPU
 * count), lets them run, and prints one JSON line: total operations, operations
 * per second, nanoseconds per operation per task, and the deltas of
 * /proc/vmstat (every counter) and of /proc/interrupts (TLB shootdowns,
 * function-call IPIs, rescheduling IPIs) over the measured interval.
 *
 * Written for smpmem (calibration/README in docs/fidelity.md); not will-it-scale's code.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern const char *testcase_description;
void testcase(unsigned long *iterations, unsigned long nr);
void testcase_prepare(unsigned long nr_tasks) __attribute__((weak));
void testcase_cleanup(void) __attribute__((weak));

static unsigned long memsize = 128UL << 20; /* -z: the test's MEMSIZE */
static int nr_cpus;

#define MAX_TASKS 256
#define CACHELINE 128 /* pad counters apart (two lines: adjacent-line prefetch) */

struct counter { unsigned long v; long tid; char pad[CACHELINE - 2 * sizeof(long)]; };
static struct counter *counters;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu % nr_cpus, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		perror("sched_setaffinity");
}

struct task_arg { unsigned long nr; };

static void *task_main(void *p)
{
	unsigned long nr = ((struct task_arg *)p)->nr;
	pin((int)nr);
	__atomic_store_n(&counters[nr].tid, (long)gettid(), __ATOMIC_RELEASE);
	testcase(&counters[nr].v, nr);
	return NULL;
}

/* --- /proc snapshots -------------------------------------------------------------------- */

#define MAXSTAT 512
struct stat_snap { int n; char name[MAXSTAT][48]; long long val[MAXSTAT]; };

static void read_vmstat(struct stat_snap *s)
{
	FILE *f = fopen("/proc/vmstat", "r");
	s->n = 0;
	if (!f)
		return;
	while (s->n < MAXSTAT && fscanf(f, "%47s %lld", s->name[s->n], &s->val[s->n]) == 2)
		s->n++;
	fclose(f);
}

/* Sum over CPUs of one /proc/interrupts row ("TLB:", "CAL:", "RES:"). */
static long long read_irq(const char *row)
{
	char line[4096];
	long long sum = 0;
	FILE *f = fopen("/proc/interrupts", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *p = line;
		while (*p == ' ')
			p++;
		if (strncmp(p, row, strlen(row)))
			continue;
		p += strlen(row);
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

/* CPU time a task has run, in ns: the first field of /proc/<tid>/schedstat (sum_exec_runtime).
 * Unlike wall time it does not grow while the task waits for a CPU that other work holds (in this
 * guest or, with steal-time accounting, on the host): a per-operation cost that load does not inflate.
 * It does not count time asleep (a task blocked on mmap_lock), which wall time does. */
static long long task_cpu_ns(long tid)
{
	char path[64];
	long long ns = -1;
	snprintf(path, sizeof(path), "/proc/%ld/schedstat", tid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%lld", &ns) != 1)
		ns = -1;
	fclose(f);
	return ns;
}

static void usage(const char *prog)
{
	fprintf(stderr, "usage: %s [-t TASKS] [-m process|thread] [-s SECONDS] [-z MEMSIZE_BYTES]\n", prog);
	exit(2);
}

int main(int argc, char **argv)
{
	int tasks = 1, opt, threads = 0;
	double seconds = 1.0;
	const char *mode = "process";
	pid_t pids[MAX_TASKS];
	pthread_t tids[MAX_TASKS];
	struct task_arg args[MAX_TASKS];

	nr_cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
	while ((opt = getopt(argc, argv, "t:m:s:z:")) != -1) {
		switch (opt) {
		case 't': tasks = atoi(optarg); break;
		case 'm': mode = optarg; break;
		case 's': seconds = atof(optarg); break;
		case 'z': memsize = strtoul(optarg, NULL, 0); break;
		default: usage(argv[0]);
		}
	}
	if (tasks < 1 || tasks > MAX_TASKS || seconds <= 0)
		usage(argv[0]);
	if (!strcmp(mode, "thread") || !strcmp(mode, "threads"))
		threads = 1;
	else if (strcmp(mode, "process") && strcmp(mode, "processes"))
		usage(argv[0]);

	counters = mmap(NULL, sizeof(struct counter) * MAX_TASKS, PROT_READ | PROT_WRITE,
			MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (counters == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	if (testcase_prepare)
		testcase_prepare(tasks);

	for (int i = 0; i < tasks; i++) {
		args[i].nr = i;
		if (threads) {
			if (pthread_create(&tids[i], NULL, task_main, &args[i])) {
				perror("pthread_create");
				return 1;
			}
		} else {
			pids[i] = fork();
			if (pids[i] == 0) {
				task_main(&args[i]);
				_exit(0);
			}
		}
	}
	/* Warm up (as will-it-scale discards its first interval), then measure. */
	usleep(200000);
	for (int i = 0; i < tasks; i++)
		while (!__atomic_load_n(&counters[i].tid, __ATOMIC_ACQUIRE))
			usleep(1000);
	long long cpu0[MAX_TASKS], cpu1[MAX_TASKS];
	struct stat_snap *v0 = malloc(sizeof(*v0)), *v1 = malloc(sizeof(*v1));
	unsigned long c0[MAX_TASKS], c1[MAX_TASKS];
	long long tlb0 = read_irq("TLB:"), cal0 = read_irq("CAL:"), res0 = read_irq("RES:");
	read_vmstat(v0);
	for (int i = 0; i < tasks; i++) {
		c0[i] = __atomic_load_n(&counters[i].v, __ATOMIC_RELAXED);
		cpu0[i] = task_cpu_ns(counters[i].tid);
	}
	double t0 = now_s();
	usleep((useconds_t)(seconds * 1e6));
	for (int i = 0; i < tasks; i++) {
		c1[i] = __atomic_load_n(&counters[i].v, __ATOMIC_RELAXED);
		cpu1[i] = task_cpu_ns(counters[i].tid);
	}
	double t1 = now_s();
	read_vmstat(v1);
	long long tlb1 = read_irq("TLB:"), cal1 = read_irq("CAL:"), res1 = read_irq("RES:");

	unsigned long total = 0, mn = ~0UL, mx = 0;
	long long cpu_total = 0;
	for (int i = 0; i < tasks; i++) {
		unsigned long d = c1[i] - c0[i];
		cpu_total += cpu1[i] - cpu0[i];
		total += d;
		mn = d < mn ? d : mn;
		mx = d > mx ? d : mx;
	}
	double dt = t1 - t0;
	printf("{\"test\": \"%s\", \"mode\": \"%s\", \"tasks\": %d, \"cpus\": %d, \"memsize\": %lu, "
	       "\"seconds\": %.6f, \"ops\": %lu, \"min_task_ops\": %lu, \"max_task_ops\": %lu, "
	       "\"ops_per_sec\": %.1f, \"ns_per_op_per_task\": %.3f, \"cpu_ns_per_op\": %.3f, "
	       "\"concurrency\": %.3f, "
	       "\"interrupts\": {\"TLB\": %lld, \"CAL\": %lld, \"RES\": %lld}, \"vmstat\": {",
	       testcase_description, threads ? "threads" : "processes", tasks, nr_cpus, memsize, dt, total, mn, mx,
	       total / dt, total ? dt * 1e9 * tasks / total : 0.0, total ? (double)cpu_total / total : 0.0,
	       cpu_total / (dt * 1e9), tlb1 - tlb0, cal1 - cal0, res1 - res0);
	int first = 1;
	for (int i = 0; i < v1->n; i++) {
		long long before = 0;
		for (int j = 0; j < v0->n; j++)
			if (!strcmp(v0->name[j], v1->name[i])) {
				before = v0->val[j];
				break;
			}
		if (v1->val[i] - before == 0)
			continue;
		printf("%s\"%s\": %lld", first ? "" : ", ", v1->name[i], v1->val[i] - before);
		first = 0;
	}
	printf("}}\n");
	fflush(stdout);

	if (threads) {
		/* The threads loop forever: exit the process (as will-it-scale does). */
		_exit(0);
	}
	for (int i = 0; i < tasks; i++)
		kill(pids[i], SIGKILL);
	for (int i = 0; i < tasks; i++)
		waitpid(pids[i], NULL, 0);
	if (testcase_cleanup)
		testcase_cleanup();
	return 0;
}
