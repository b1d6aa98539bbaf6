/* An IPI round trip measured inside the guest (static, in the Linux boot
 * test's initramfs; init runs it when the command line has ssihv.ipi=N).
 *
 *   ipi-pingpong ROUNDS CPU_A CPU_B
 *
 * Two threads pinned to two CPUs wake each other through a futex, ROUNDS
 * times. Each waiter sleeps in the kernel, so its CPU goes idle (HLT), and
 * each wake-up of a thread on the other, idle CPU is a reschedule IPI: one
 * round trip is two IPIs, two wake-ups from HLT and two context switches.
 * Prints "SSIHV ipi rounds=N cpus=A,B rtt_ns_median=M rtt_ns_mean=X
 * rtt_ns_p90=P" (CLOCK_MONOTONIC: kvmclock in the guest). */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static _Atomic uint32_t turn; /* odd: B's turn, even: A's */
static long rounds;
static int cpu_a, cpu_b;

static void futex_wait(_Atomic uint32_t* addr, uint32_t val) {
  syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t* addr) {
  syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof(set), &set) != 0) {
    perror("ipi-pingpong: sched_setaffinity");
    exit(1);
  }
}

/* Waits until `turn` is `want`, sleeping in the kernel (no spinning: the
 * CPU must go idle for the wake-up to need an IPI). */
static void wait_for(uint32_t want) {
  uint32_t t;
  while ((t = atomic_load(&turn)) != want) futex_wait(&turn, t);
}

static void* player_b(void* arg) {
  (void)arg;
  pin(cpu_b);
  for (long i = 0; i < rounds; ++i) {
    wait_for(2 * (uint32_t)i + 1);
    atomic_store(&turn, 2 * (uint32_t)i + 2);
    futex_wake(&turn);
  }
  return NULL;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int compare(const void* a, const void* b) {
  uint64_t x = *(const uint64_t*)a, y = *(const uint64_t*)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char** argv) {
  if (argc != 4 || (rounds = atol(argv[1])) <= 0) {
    fprintf(stderr, "usage: ipi-pingpong ROUNDS CPU_A CPU_B\n");
    return 2;
  }
  cpu_a = atoi(argv[2]);
  cpu_b = atoi(argv[3]);
  uint64_t* rtt = calloc((size_t)rounds, sizeof(*rtt));
  pthread_t b;
  if (rtt == NULL || pthread_create(&b, NULL, player_b, NULL) != 0) {
    fprintf(stderr, "ipi-pingpong: cannot start the second thread\n");
    return 1;
  }
  pin(cpu_a);
  uint64_t sum = 0;
  for (long i = 0; i < rounds; ++i) {
    const uint64_t start = now_ns();
    atomic_store(&turn, 2 * (uint32_t)i + 1);
    futex_wake(&turn);
    wait_for(2 * (uint32_t)i + 2);
    rtt[i] = now_ns() - start;
    sum += rtt[i];
  }
  pthread_join(b, NULL);
  qsort(rtt, (size_t)rounds, sizeof(*rtt), compare);
  printf(
      "SSIHV ipi rounds=%ld cpus=%d,%d rtt_ns_median=%llu rtt_ns_mean=%llu "
      "rtt_ns_p90=%llu\n",
      rounds, cpu_a, cpu_b, (unsigned long long)rtt[rounds / 2],
      (unsigned long long)(sum / (uint64_t)rounds),
      (unsigned long long)rtt[rounds * 9 / 10]);
  return 0;
}
