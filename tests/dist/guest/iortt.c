// Port I/O round trip measured in the guest, for the distributed VM's
// performance run (issue 12; tests/dist/dist_perf.cc): a static program in
// the test initramfs, run by init with ssihv.perf=SECONDS. Pinned to one
// CPU, it reads a device's port ROUNDS times (ioperm: init runs as root)
// and times each read. Every device is on node 0: from a CPU of node 0 a
// read is a VM exit served in that process; from a CPU of another node the
// read is forwarded to node 0 and the vCPU waits for the value.
//
// Each read is timed with the TSC, converted to nanoseconds by the
// CLOCK_MONOTONIC time of the whole loop: clock_gettime around every read
// would read the vDSO's data page, which the timekeeping CPU writes at
// every tick, so on another node a read after a tick would pay a remote
// page fault inside the timed window, and the median would measure the
// tick's page traffic as much as the forwarded I/O.
//
//   iortt ROUNDS CPU PORT       e.g. iortt 200 3 0x64 (the i8042's status)
// Prints "SSIHV iortt cpu=C port=0xP rounds=R ns_median=M ns_p90=Q
// ns_min=N timer=tsc" and exits 0, or a failure line and 1.
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <time.h>
#include <x86intrin.h>

static int64_t NowNs(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

// The TSC, ordered after what came before it (lfence: rdtsc alone may run
// ahead of the port read it times).
static uint64_t Tsc(void) {
  _mm_lfence();
  const uint64_t t = __rdtsc();
  _mm_lfence();
  return t;
}

static int Cmp(const void* a, const void* b) {
  int64_t x = *(const int64_t*)a, y = *(const int64_t*)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char** argv) {
  if (argc != 4) {
    printf("SSIHV iortt failed: usage: iortt ROUNDS CPU PORT\n");
    return 1;
  }
  const long rounds = strtol(argv[1], NULL, 0);
  const int cpu = (int)strtol(argv[2], NULL, 0);
  const long port = strtol(argv[3], NULL, 0);
  if (rounds < 1 || rounds > 1000000 || port < 0 || port > 0xffff) {
    printf("SSIHV iortt failed: ROUNDS 1..1000000, PORT 0..0xffff\n");
    return 1;
  }
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof(set), &set) != 0 ||
      ioperm((unsigned long)port, 1, 1) != 0) {
    printf("SSIHV iortt failed: cpu=%d: %s\n", cpu, strerror(errno));
    return 1;
  }
  int64_t* ns = calloc((size_t)rounds, sizeof(int64_t));
  if (!ns) return 1;
  volatile unsigned sink = 0;  // the reads must happen
  const int64_t start_ns = NowNs();
  const uint64_t start_tsc = Tsc();
  for (long i = 0; i < rounds; ++i) {
    const uint64_t t0 = Tsc();
    sink += inb((unsigned short)port);
    ns[i] = (int64_t)(Tsc() - t0);  // cycles until converted below
  }
  const uint64_t cycles = Tsc() - start_tsc;
  const int64_t elapsed_ns = NowNs() - start_ns;
  if (cycles == 0 || elapsed_ns <= 0) {
    printf("SSIHV iortt failed: cpu=%d: the TSC or the clock did not advance\n",
           cpu);
    return 1;
  }
  const double ns_per_cycle = (double)elapsed_ns / (double)cycles;
  for (long i = 0; i < rounds; ++i) ns[i] = (int64_t)(ns[i] * ns_per_cycle);
  qsort(ns, (size_t)rounds, sizeof(int64_t), Cmp);
  printf(
      "SSIHV iortt cpu=%d port=0x%lx rounds=%ld ns_median=%lld "
      "ns_p90=%lld ns_min=%lld timer=tsc\n",
      cpu, port, rounds, (long long)ns[rounds / 2],
      (long long)ns[rounds * 9 / 10], (long long)ns[0]);
  return 0;
}
