// A CPU-bound benchmark for the distributed VM's performance run (issue 12;
// tests/dist/dist_perf.cc): a static program in the test initramfs, run by
// init with ssihv.perf=SECONDS. One thread per online CPU, pinned with
// sched_setaffinity, each working on its own 256 KiB bound to its CPU's
// NUMA node with mbind(MPOL_BIND): node-local data, no sharing, so a
// distributed VM should run it as fast as one process (GiantVM's measure:
// CoreMark, 83-99% of one machine). The work is integer mixing with loads
// and stores into the buffer (cache-resident after the first pass).
//
// Like CoreMark, a worker reads the clock only when it starts and stops:
// the main thread sleeps SECONDS and raises a flag alone on its page. With
// --clock a worker instead reads the clock every 64 Ki operations (what
// this program did first): each read goes through the vDSO's data page,
// which the timekeeping CPU rewrites at every tick, so on a distributed VM
// that mode also measures one remote read of that page per tick per CPU.
//
//   cpubench SECONDS [--clock]
// Prints one "SSIHV cpubench cpu=C node=K mops=X" line per thread, then
// "SSIHV cpubench threads=N seconds=S ops_per_s=X min_thread=Y
// max_thread=Z" (millions of operations per second, summed over threads;
// the slowest and fastest thread); "cpubench-clock" instead of "cpubench"
// with --clock. Exits 0, or prints a line saying what failed and exits 1.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_CPUS 1024
#define MPOL_BIND 2
#define BUF_BYTES (256u << 10)
#define CHUNK 65536  // operations between two clock reads

static int num_cpus;
static int cpus[MAX_CPUS];
static int nodes[MAX_CPUS];
static double seconds;
static int clock_mode;         // --clock
static double rate[MAX_CPUS];  // operations per second, per thread
static pthread_barrier_t start;
// Read by every worker after each chunk, written once by the main thread:
// alone on its page (the alignment makes the object a whole page) so that
// nothing else written during the run moves it.
static struct { volatile int stop; } control __attribute__((aligned(4096)));

static double Now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static void Die(const char* what, int cpu) {
  printf("SSIHV cpubench failed: %s cpu=%d: %s\n", what, cpu, strerror(errno));
  exit(1);
}

// The NUMA node of `cpu` (its /sys nodeN link), -1 without NUMA.
static int NodeOf(int cpu) {
  char path[96];
  snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d", cpu);
  DIR* d = opendir(path);
  if (!d) return -1;
  int node = -1;
  for (struct dirent* e; (e = readdir(d)) != NULL;) {
    if (strncmp(e->d_name, "node", 4) == 0 && e->d_name[4] >= '0' &&
        e->d_name[4] <= '9') {
      node = atoi(e->d_name + 4);
    }
  }
  closedir(d);
  return node;
}

static uint64_t* LocalBuffer(int cpu, int node) {
  void* p = mmap(NULL, BUF_BYTES, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) Die("mmap", cpu);
  if (node >= 0) {
    unsigned long mask[16] = {0};
    mask[node / 64] = 1ul << (node % 64);
    if (syscall(SYS_mbind, p, BUF_BYTES, MPOL_BIND, mask, 1024, 0) != 0) {
      Die("mbind", cpu);
    }
  }
  memset(p, 1, BUF_BYTES);  // first touch by the pinned thread
  return p;
}

static uint64_t Chunk(uint64_t* buf, uint64_t x) {
  const uint64_t words = BUF_BYTES / sizeof(uint64_t);
  for (int i = 0; i < CHUNK; ++i) {
    x ^= x << 13;  // xorshift64: the next index and value
    x ^= x >> 7;
    x ^= x << 17;
    uint64_t* w = &buf[x % words];
    *w = (*w + x) * 0xff51afd7ed558ccdull;
  }
  return x;
}

static void* Worker(void* arg) {
  const long t = (long)arg;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpus[t], &set);
  if (sched_setaffinity(0, sizeof(set), &set) != 0) {
    Die("sched_setaffinity", cpus[t]);
  }
  nodes[t] = NodeOf(cpus[t]);
  uint64_t* buf = LocalBuffer(cpus[t], nodes[t]);
  uint64_t x = 0x9e3779b97f4a7c15ull ^ (uint64_t)t, ops = 0;
  pthread_barrier_wait(&start);
  const double t0 = Now();
  double now = t0;
  if (clock_mode) {
    for (; now - t0 < seconds; now = Now()) {
      x = Chunk(buf, x);
      ops += CHUNK;
    }
  } else {
    while (!control.stop) {
      x = Chunk(buf, x);
      ops += CHUNK;
    }
    now = Now();
  }
  rate[t] = ops / (now - t0);
  // Keep the result alive so the loop is not optimised away.
  if (buf[x % (BUF_BYTES / sizeof(uint64_t))] == 42)
    printf("SSIHV cpubench unlikely\n");
  return NULL;
}

static int OnlineCpus(void) {
  FILE* f = fopen("/sys/devices/system/cpu/online", "r");
  if (!f) return -1;
  char line[4096];
  int n = 0;
  if (fgets(line, sizeof(line), f)) {
    for (char* p = line; *p && *p != '\n' && n < MAX_CPUS;) {
      long a = strtol(p, &p, 10), b = a;
      if (*p == '-') b = strtol(p + 1, &p, 10);
      for (long i = a; i <= b && n < MAX_CPUS; ++i) cpus[n++] = (int)i;
      if (*p == ',') ++p;
    }
  }
  fclose(f);
  return n;
}

int main(int argc, char** argv) {
  seconds = argc > 1 ? atof(argv[1]) : 0;
  clock_mode = argc > 2 && strcmp(argv[2], "--clock") == 0;
  if (seconds <= 0 || seconds > 3600 || argc > 3 || (argc > 2 && !clock_mode)) {
    printf(
        "SSIHV cpubench failed: usage: cpubench SECONDS (0 < S <= 3600) "
        "[--clock]\n");
    return 1;
  }
  const char* name = clock_mode ? "cpubench-clock" : "cpubench";
  num_cpus = OnlineCpus();
  if (num_cpus <= 0) Die("reading /sys/devices/system/cpu/online", -1);
  // The main thread waits at the barrier too: the workers' time starts
  // when it starts sleeping.
  pthread_barrier_init(&start, NULL, (unsigned)num_cpus + 1);
  pthread_t threads[MAX_CPUS];
  for (long t = 0; t < num_cpus; ++t) {
    if (pthread_create(&threads[t], NULL, Worker, (void*)t) != 0) {
      Die("pthread_create", cpus[t]);
    }
  }
  pthread_barrier_wait(&start);
  if (!clock_mode) {
    struct timespec d = {(time_t)seconds,
                         (long)((seconds - (time_t)seconds) * 1e9)};
    while (nanosleep(&d, &d) != 0 && errno == EINTR) {
    }
    control.stop = 1;
  }
  double total = 0, lo = 1e300, hi = 0;
  for (long t = 0; t < num_cpus; ++t) {
    pthread_join(threads[t], NULL);
    total += rate[t];
    if (rate[t] < lo) lo = rate[t];
    if (rate[t] > hi) hi = rate[t];
  }
  for (long t = 0; t < num_cpus; ++t) {
    printf("SSIHV %s cpu=%d node=%d mops=%.3f\n", name, cpus[t], nodes[t],
           rate[t] / 1e6);
  }
  printf(
      "SSIHV %s threads=%d seconds=%g ops_per_s=%.3f min_thread=%.3f "
      "max_thread=%.3f\n",
      name, num_cpus, seconds, total / 1e6, lo / 1e6, hi / 1e6);
  return 0;
}
