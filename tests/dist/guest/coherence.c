// In-guest coherence stress for the distributed VM (issue 12): a static
// program in the test initramfs. One thread per online CPU, each pinned
// with sched_setaffinity; for every NUMA node a block of memory bound to it
// with mbind(MPOL_BIND). In every block:
//   - a spinlock (xchg) guarding two counters that are incremented together:
//     a holder that finds them unequal saw a broken mutual exclusion;
//   - a counter incremented with lock xadd;
//   - a seqlock: one writer thread stores the same value into four words,
//     readers on the other CPUs check that a stable read never mixes values.
// At the end every counter must equal threads x rounds exactly. Prints
// "SSIHV_COHERENCE ok ..." or "SSIHV_COHERENCE FAIL ..." and exits 0 / 1.
//
//   coherence [--rounds N] [--seconds S]
// --rounds: increments per thread per node (default 2000); --seconds caps
// the run (default 120): a thread past the deadline stops early, and the
// totals are checked against what the threads report they did.
#define _GNU_SOURCE
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

#define MAX_NODES 64
#define MAX_CPUS 1024
#define MPOL_BIND 2
#define BLOCK_BYTES (2u << 20)

struct block {
  // Each field on its own cache line; the lock and its counters share one
  // page, the rest are on others, so several pages of the block move.
  volatile uint32_t lock __attribute__((aligned(64)));
  volatile uint64_t guarded_a __attribute__((aligned(64)));
  volatile uint64_t guarded_b __attribute__((aligned(64)));
  uint64_t broken __attribute__((aligned(64)));  // mutual exclusion seen broken
  uint64_t xadd __attribute__((aligned(4096)));
  volatile uint64_t seq __attribute__((aligned(4096)));
  volatile uint64_t words[4];
};

static int num_nodes;
static struct block* blocks[MAX_NODES];
static int num_cpus;
static int cpus[MAX_CPUS];
static long rounds = 2000;
static double deadline;
static volatile int writer_done;
static uint64_t done_per_thread[MAX_CPUS];
static uint64_t seq_reads, seq_torn, seq_writes;

static double Now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static void Lock(volatile uint32_t* l) {
  while (__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE)) {
    while (__atomic_load_n(l, __ATOMIC_RELAXED)) __builtin_ia32_pause();
  }
}

static void Unlock(volatile uint32_t* l) {
  __atomic_store_n(l, 0, __ATOMIC_RELEASE);
}

static int ReadList(const char* path, int* out, int max) {
  FILE* f = fopen(path, "r");
  if (!f) return -1;
  char buf[4096];
  int n = 0;
  if (fgets(buf, sizeof(buf), f)) {
    char* p = buf;
    while (*p && *p != '\n' && n < max) {
      long a = strtol(p, &p, 10), b = a;
      if (*p == '-') b = strtol(p + 1, &p, 10);
      for (long i = a; i <= b && n < max; ++i) out[n++] = (int)i;
      if (*p == ',') ++p;
    }
  }
  fclose(f);
  return n;
}

static void Pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof(set), &set) != 0) {
    fprintf(stderr, "sched_setaffinity cpu %d: %s\n", cpu, strerror(errno));
    exit(1);
  }
}

static void* Worker(void* arg) {
  long t = (long)arg;
  Pin(cpus[t]);
  uint64_t done = 0;
  for (long r = 0; r < rounds && Now() < deadline; ++r) {
    for (int n = 0; n < num_nodes; ++n) {
      struct block* b = blocks[(n + t) % num_nodes];
      Lock(&b->lock);
      uint64_t a = b->guarded_a;
      if (a != b->guarded_b) b->broken++;
      b->guarded_a = a + 1;
      b->guarded_b = a + 1;
      Unlock(&b->lock);
      __atomic_fetch_add(&b->xadd, 1, __ATOMIC_SEQ_CST);
    }
    ++done;
  }
  done_per_thread[t] = done;
  return NULL;
}

// The seqlock writer (on the first CPU) writes block 0's record (node 0's
// memory); readers run on every other CPU until it is done.
static void* SeqWriter(void* arg) {
  Pin(cpus[0]);
  struct block* b = blocks[0];
  for (uint64_t v = 1; Now() < deadline && v <= (uint64_t)rounds * 4; ++v) {
    __atomic_store_n(&b->seq, b->seq + 1, __ATOMIC_RELEASE);  // odd
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    for (int i = 0; i < 4; ++i) b->words[i] = v;
    __atomic_store_n(&b->seq, b->seq + 1, __ATOMIC_RELEASE);  // even
    __atomic_fetch_add(&seq_writes, 1, __ATOMIC_RELAXED);
  }
  writer_done = 1;
  return arg;
}

static void* SeqReader(void* arg) {
  long t = (long)arg;
  Pin(cpus[t]);
  struct block* b = blocks[0];
  uint64_t reads = 0, torn = 0;
  while (!__atomic_load_n(&writer_done, __ATOMIC_ACQUIRE)) {
    uint64_t s1 = __atomic_load_n(&b->seq, __ATOMIC_ACQUIRE);
    if (s1 & 1) continue;
    uint64_t w[4];
    for (int i = 0; i < 4; ++i) w[i] = b->words[i];
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (__atomic_load_n(&b->seq, __ATOMIC_RELAXED) != s1) continue;
    ++reads;
    if (w[0] != w[1] || w[1] != w[2] || w[2] != w[3]) ++torn;
  }
  __atomic_fetch_add(&seq_reads, reads, __ATOMIC_RELAXED);
  __atomic_fetch_add(&seq_torn, torn, __ATOMIC_RELAXED);
  return NULL;
}

static void Run(void* (*fn)(void*), long first, long count) {
  pthread_t th[MAX_CPUS];
  for (long t = 0; t < count; ++t) {
    if (pthread_create(&th[t], NULL, fn, (void*)(first + t)) != 0) {
      fprintf(stderr, "pthread_create failed\n");
      exit(1);
    }
  }
  for (long t = 0; t < count; ++t) pthread_join(th[t], NULL);
}

static void MapBlocks(void) {
  for (int n = 0; n < MAX_NODES; ++n) {
    char path[128];
    snprintf(path, sizeof(path), "/sys/devices/system/node/node%d", n);
    if (access(path, F_OK) != 0) break;
    num_nodes = n + 1;
  }
  if (num_nodes == 0) num_nodes = 1;
  for (int n = 0; n < num_nodes; ++n) {
    void* p = mmap(NULL, BLOCK_BYTES, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      perror("mmap");
      exit(1);
    }
    unsigned long mask[MAX_NODES / 64] = {0};
    mask[n / 64] = 1ul << (n % 64);
    if (syscall(SYS_mbind, p, BLOCK_BYTES, MPOL_BIND, mask, MAX_NODES, 0) !=
        0) {
      fprintf(stderr, "mbind node %d: %s\n", n, strerror(errno));
      exit(1);
    }
    memset(p, 0, BLOCK_BYTES);  // first touch: allocated on node n
    blocks[n] = p;
  }
}

int main(int argc, char** argv) {
  double seconds = 120;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--rounds"))
      rounds = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--seconds"))
      seconds = atof(argv[i + 1]);
  }
  num_cpus = ReadList("/sys/devices/system/cpu/online", cpus, MAX_CPUS);
  if (num_cpus < 1) {
    fprintf(stderr, "cannot read the online CPUs\n");
    return 1;
  }
  MapBlocks();
  printf("SSIHV_COHERENCE start cpus=%d nodes=%d rounds=%ld\n", num_cpus,
         num_nodes, rounds);
  fflush(stdout);
  double start = Now();
  deadline = start + seconds;
  Run(Worker, 0, num_cpus);
  double counters_s = Now() - start;
  if (num_cpus > 1) {
    pthread_t w;
    pthread_create(&w, NULL, SeqWriter, NULL);
    Run(SeqReader, 1, num_cpus - 1);
    pthread_join(w, NULL);
  }
  uint64_t want = 0;
  for (int t = 0; t < num_cpus; ++t) want += done_per_thread[t];
  int ok = 1;
  for (int n = 0; n < num_nodes; ++n) {
    struct block* b = blocks[n];
    if (b->guarded_a != want || b->guarded_b != want || b->xadd != want ||
        b->broken != 0) {
      ok = 0;
      printf(
          "SSIHV_COHERENCE node=%d spin_a=%llu spin_b=%llu xadd=%llu "
          "want=%llu broken=%llu\n",
          n, (unsigned long long)b->guarded_a, (unsigned long long)b->guarded_b,
          (unsigned long long)b->xadd, (unsigned long long)want,
          (unsigned long long)b->broken);
    }
  }
  if (seq_torn != 0) ok = 0;
  printf(
      "SSIHV_COHERENCE %s cpus=%d nodes=%d increments=%llu per_counter "
      "seq_writes=%llu seq_reads=%llu torn=%llu counters_s=%.2f\n",
      ok ? "ok" : "FAIL", num_cpus, num_nodes, (unsigned long long)want,
      (unsigned long long)seq_writes, (unsigned long long)seq_reads,
      (unsigned long long)seq_torn, counters_s);
  return ok ? 0 : 1;
}
